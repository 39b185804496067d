"""Why a child died, in words: the allocator's or libc's last message from stderr, and a hint.

A runtime that aborts under a preloaded allocator leaves one line that says what happened
("free(): invalid pointer" from glibc, "<jemalloc>: ..." from jemalloc); the cell's reason
quotes it and adds a hint from the runtime's adapter (``Adapter.crash_hint``) or a generic one,
so a matrix row reads as a diagnosis, not as a bare signal.
"""

from __future__ import annotations

import re

#: glibc's malloc_printerr messages ("free(): invalid pointer", "double free or corruption (out)",
#: "malloc(): corrupted top size", "corrupted size vs. prev_size", ...), and the allocators' own.
_LIBC = re.compile(r"^(?:\w+\(\): .+|double free or corruption.*|corrupted .+|malloc_consolidate\(\): .+)$")
_ALLOCATOR = ("<jemalloc>:", "mimalloc: error", "tcmalloc: ", "src/tcmalloc.cc")
_FATAL_PYTHON = "Fatal Python error:"


def allocator_message(stderr: str) -> str:
    """The last line in ``stderr`` that libc or an allocator printed before the end; '' for none."""
    for line in reversed(stderr.splitlines()):
        text = line.strip()
        if _LIBC.match(text) or text.startswith(_ALLOCATOR):
            return text
    return ""


def python_frame(stderr: str) -> str:
    """faulthandler's innermost frame of the crashing thread ('File "x.py", line 3 in f'), if printed."""
    lines = [t.strip() for t in stderr.splitlines()]
    starts = [i for i, t in enumerate(lines) if t.startswith(("Current thread", _FATAL_PYTHON))]
    if not starts:
        return ""
    frames = [t for t in lines[starts[-1] + 1:] if t.startswith("File ")]  # "Current thread" comes last
    return frames[0] if frames else ""


def hint(runtime: str, allocator: str, stderr: str) -> str:
    """The runtime adapter's hint for this crash, else a generic one for a preloaded allocator."""
    from .adapters import AdapterError, adapter_class

    try:
        text = adapter_class(runtime).crash_hint(allocator, stderr)
    except AdapterError:
        text = ""
    if text or allocator == "glibc":
        return text
    return (f"a library of the runtime may free with glibc what the preloaded {allocator} allocated "
            f"(a dlopen with RTLD_DEEPBIND does that); rerun the cell under --allocator glibc to tell")


def explain(runtime: str, allocator: str, stderr: str) -> str:
    """``'; free(): invalid pointer (in File ...). Hint: ...'`` for a crash reason; '' when nothing is known."""
    parts = []
    message = allocator_message(stderr)
    if message:
        parts.append(f'; stderr says "{message}"')
    frame = python_frame(stderr)
    if frame:
        parts.append(f" at {frame}")
    advice = hint(runtime, allocator, stderr) if (message or allocator != "glibc") else ""
    if advice:
        parts.append(f". Hint: {advice}")
    return "".join(parts)
