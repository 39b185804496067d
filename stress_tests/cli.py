"""The ``memgate`` command line (placeholder until the harness lands: it prints the version)."""

from __future__ import annotations

import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("--version", "-V"):
        print(f"memgate {__version__}")
        return 0
    print(f"memgate {__version__}: the harness commands are not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
