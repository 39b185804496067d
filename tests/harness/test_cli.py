"""The CLI surface: usage errors exit 2 with a clear message, every --help has an example."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stress_tests import cli
from stress_tests.options import OPTIONS, add_options, specs_from_matrix_args, tunable_sets


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse exits on its own errors
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("argv, message", [
    ((), "usage: memgate"),
    (("run", "--frobnicate"), "unrecognized arguments: --frobnicate"),
    (("run", "--iterations", "0"), "expected 1 or more"),
    (("run", "--pipeline", "explode"), "invalid choice: 'explode'"),
    (("run", "--tunable", "arena_max"), "is not KEY=VALUE"),
    (("run", "--tunable", "dirty_decay_ms=0"), "unknown tunable 'dirty_decay_ms' for glibc"),
    (("run", "--inject-leak", "lots"), "not a size"),
    (("run", "--model", "no-such-model"), "unknown model 'no-such-model'"),
    (("run", "--allocator", "jemalloc", "--allocator-path", "/no/such/lib.so"), "does not exist"),
    (("run", "--allocator-path", "/bin/sh"), "needs --allocator jemalloc"),
    (("matrix", "--mode", "default,fast"), "unknown mode fast"),
    (("run", "--static-memory-policy", "2"), "use --mode arena"),
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str) -> None:
    code, text = run(capsys, *argv)
    assert code == 2
    assert message in text


@pytest.mark.parametrize("command", ["doctor", "run", "matrix", "hunt"])
def test_every_help_has_an_example(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, text = run(capsys, command, "--help")
    assert code == 0 and "example:" in text and f"memgate {command}" in text


def test_top_level_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert "exit codes" in run(capsys, "--help")[1]
    assert run(capsys, "--version")[1].startswith("memgate ")


def test_run_keeps_the_contract_flags() -> None:
    """Scripts rely on these names; renaming one is a breaking change."""
    flags = {f for o in OPTIONS.values() for f in o.flags}
    assert {"--pipeline", "--model", "--mode", "--allocator", "--allocator-path", "--tunable", "--iterations",
            "--warmup", "--runtime", "--json"} <= flags


def test_matrix_is_a_cross_product(tiny_model_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, [*OPTIONS], multi=True)
    ns = parser.parse_args(["--model", f"mlp,{tiny_model_path}", "--mode", "all", "--pipeline", "reinfer",
                            "--allocator", "glibc,jemalloc", "--tunable", "arena_max=default,1", "--iterations", "7"])
    specs = specs_from_matrix_args(ns)
    assert len(specs) == 2 * 4 * 1 * 2 * 2
    assert {s.tunables for s in specs} == {(("arena_max", "default"),), (("arena_max", "1"),)}
    assert all(s.iterations == 7 for s in specs) and len({s.id for s in specs}) == len(specs)


def test_tunable_sets() -> None:
    assert tunable_sets([("a", "1,2"), ("b", "x")]) == [(("a", "1"), ("b", "x")), (("a", "2"), ("b", "x"))]
    assert tunable_sets([]) == [()]


class FakePytestGroup:
    """pytest's option groups take argparse-style arguments through ``addoption``."""

    def __init__(self) -> None:
        self.added: list[tuple[tuple[str, ...], dict]] = []

    def addoption(self, *flags: str, **kwargs: object) -> None:
        self.added.append((flags, kwargs))


def test_a_flag_is_defined_once_and_reusable_with_a_prefix() -> None:
    group = FakePytestGroup()
    OPTIONS["iterations"].add_to(group, prefix="memgate-")
    OPTIONS["jobs"].add_to(group, prefix="memgate-")
    assert group.added[0][0] == ("--memgate-iterations",) and group.added[0][1]["dest"] == "memgate_iterations"
    assert group.added[1][0] == ("--memgate-jobs",)  # short flags are not prefixed, so they are dropped


def _missing(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``name`` look uninstalled, whatever this machine has."""
    from stress_tests import allocators

    real = allocators.find

    def find(n: str, path: str | None = None) -> allocators.Found:
        return allocators.Found(n, None, False, "missing") if n == name and path is None else real(n, path)

    monkeypatch.setattr(allocators, "find", find)
    monkeypatch.setattr(allocators, "discover", lambda: [find(n) for n in allocators.ALLOCATORS])


@pytest.mark.parametrize("command", ["run", "hunt", "matrix"])
def test_a_named_allocator_that_is_missing_exits_2_with_the_install_hint(
        command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _missing(monkeypatch, "jemalloc")
    monkeypatch.delenv("MEMGATE_ALLOCATOR", raising=False)
    code, text = run(capsys, command, "--allocator", "jemalloc", "--iterations", "5")
    assert code == 2 and "jemalloc is not installed" in text and "apt-get install libjemalloc2" in text
    monkeypatch.setenv("MEMGATE_ALLOCATOR", "jemalloc")  # named by the environment: the same
    code, text = run(capsys, command, "--iterations", "5")
    assert code == 2 and "apt-get install libjemalloc2" in text


def test_check_skips_absent_allocators_and_lists_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from stress_tests import allocators

    for name in ("jemalloc", "tcmalloc", "mimalloc"):
        _missing(monkeypatch, name)
    assert [f.name for f in allocators.discover() if f.installed] == ["glibc"]
    code, text = run(capsys, "check", "--models", "mlp", "--out", str(tmp_path / "r"), "--baselines",
                     str(tmp_path / "none"))
    assert code == 0, text
    for hint in ("libjemalloc2", "libtcmalloc-minimal4", "libmimalloc2.0"):
        assert "skipped, not installed: " in text and hint in text
