"""A runtime that aborts under an allocator: the cell names the signal, libc's line and a hint; the matrix goes on.

The aborting runtime is a throwaway adapter (registered through the entry point) whose compile
hands glibc's own free() a pointer glibc never allocated, the same error the OpenVINO wheel's
RTLD_DEEPBIND load makes; glibc then aborts with "free(): invalid pointer" on any machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stress_tests.crashes import allocator_message, explain, python_frame
from stress_tests.runner import run_cells
from stress_tests.spec import CellSpec

from .conftest import install_distribution, installed_allocators

CRASHY = '''
from __future__ import annotations

import ctypes
from typing import Any

from stress_tests.adapters import Adapter


class WrongFree(Adapter):
    name = "wrong-free"

    def version(self) -> str:
        return "1"

    def create_core(self, options: Any) -> Any:
        return options

    def compile(self, core: Any, model: Any, mode: str) -> Any:
        glibc_free = ctypes.CDLL("libc.so.6").free  # glibc's own, whatever LD_PRELOAD interposes
        glibc_free.argtypes = [ctypes.c_void_p]
        # Zeroed memory as the "chunk header": size 0 sends glibc to its "free(): invalid pointer"
        # check whichever allocator owns the buffer (a real header's bits would pick the message).
        buffer = ctypes.create_string_buffer(64)
        glibc_free(ctypes.addressof(buffer) + 16)
        return model

    def infer(self, request: Any, feeds: Any) -> Any:
        return None

    @classmethod
    def crash_hint(cls, allocator: str, stderr: str) -> str:
        return f"wrong-free frees with glibc under {allocator}"
'''

FAULTHANDLER = """free(): invalid pointer
Fatal Python error: Aborted

Thread 0x00007f (most recent call first):
  File "/usr/lib/python3.11/selectors.py", line 415 in select

Current thread 0x00007e (most recent call first):
  File "/x/adapters/openvino.py", line 73 in create_core
  File "/x/pipelines.py", line 79 in create_core
"""


def test_the_last_libc_or_allocator_line_is_found() -> None:
    assert allocator_message(FAULTHANDLER) == "free(): invalid pointer"
    assert allocator_message("x\nmunmap_chunk(): invalid pointer\n") == "munmap_chunk(): invalid pointer"
    assert allocator_message("double free or corruption (out)") == "double free or corruption (out)"
    assert allocator_message("<jemalloc>: size mismatch detected") == "<jemalloc>: size mismatch detected"
    assert allocator_message("Traceback (most recent call last):\nValueError: no") == ""


def test_the_crashing_threads_frame_not_another_threads() -> None:
    assert python_frame(FAULTHANDLER) == 'File "/x/adapters/openvino.py", line 73 in create_core'
    assert python_frame("no traceback here") == ""


def test_explain_adds_a_generic_hint_under_a_preloaded_allocator_only() -> None:
    text = explain("builtin", "jemalloc", "Segmentation fault")
    assert "Hint:" in text and "--allocator glibc" in text
    assert explain("builtin", "glibc", "Segmentation fault") == ""
    assert explain("openvino", "mimalloc", FAULTHANDLER).startswith('; stderr says "free(): invalid pointer" at File')


@pytest.mark.stress
@pytest.mark.parametrize("allocator", installed_allocators())
def test_an_aborting_runtime_is_explained_and_the_next_cell_runs(allocator: str, site: Path, tmp_path: Path,
                                                                tiny_model_path: Path) -> None:
    install_distribution(site, {"wrong-free": "memgate_crashy:WrongFree"}, CRASHY, module="memgate_crashy")
    specs = [CellSpec(pipeline="recompile", model=str(tiny_model_path), runtime=r, allocator=allocator,
                      iterations=2, timeout=120) for r in ("wrong-free", "builtin")]
    crashed, fine = run_cells(specs, workdir=tmp_path)
    assert crashed.status == "crashed" and crashed.signal == "SIGABRT", crashed.reason
    assert crashed.reason.startswith("killed by SIGABRT (during stage iter1 compile)")
    assert 'stderr says "free(): invalid pointer"' in crashed.reason
    assert "in compile" in crashed.reason  # the innermost Python frame
    assert f"Hint: wrong-free frees with glibc under {allocator}" in crashed.reason
    assert crashed.stages and crashed.applied is not None and crashed.applied.verified
    assert fine.status in ("ok", "leak") and len(fine.series["VmRSS"]) == 2
