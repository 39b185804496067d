"""``memgate hunt --native``: native leaks (a C extension, a library called with ctypes) found with memray's
native traces and missed by tracemalloc; libc's malloc through a ctypes function pointer, which memray
cannot hook, said as such; a missing memray is an environment error with the install hint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from rich.console import Console

from stress_tests import cli, native
from stress_tests.display import hunt_report
from stress_tests.runner import run_cell
from stress_tests.spec import CellResult, CellSpec

pytestmark = pytest.mark.stress
INJECT = Path(__file__).with_name("native_inject")
LEAK = 16 << 10
EXT = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>
static void **kept; static size_t nkept, cap;
static PyObject *leak(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "n", &n)) return NULL;
    void *p = malloc((size_t)n);
    if (p == NULL) return PyErr_NoMemory();
    memset(p, 0xa5, (size_t)n);
    if (nkept == cap) { cap = cap ? 2 * cap : 64; kept = realloc(kept, cap * sizeof(void *)); }
    kept[nkept++] = p;
    Py_RETURN_NONE;
}
static PyMethodDef methods[] = {{"leak", leak, METH_VARARGS, "keep n bytes"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "leakext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_leakext(void) { return PyModule_Create(&module); }
"""
LIB = r"""
#include <stdlib.h>
#include <string.h>
void *leak_bytes(size_t n) { void *p = malloc(n); if (p) memset(p, 0x5a, n); return p; }
"""


def compile_c(source: str, out: Path, *flags: str) -> Path:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler here (cc or $CC): the native leaks are built by the test; install one "
                    "(apt-get install gcc) rather than lose the only check of C-extension leak sites")
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run([cc, "-shared", "-fPIC", "-g", "-O1", *flags, str(src), "-o", str(out)], check=True,
                   capture_output=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not native.available():
        pytest.fail(native.INSTALL_HINT)  # CI installs the extra: a missing memray is not a pass
    d = tmp_path_factory.mktemp("native")
    compile_c(EXT, d / f"leakext{sysconfig.get_config_var('EXT_SUFFIX')}", f"-I{sysconfig.get_paths()['include']}")
    return {"ext": f"ext:{d}", "lib": f"lib:{compile_c(LIB, d / 'libleaklib.so')}", "libc": "libc"}


def hunt(how: str, tiny_model_path: Path, workdir: Path, native_traces: bool) -> CellResult:
    env = dict(os.environ, MEMGATE_TEST_NATIVE_LEAK=how,
               PYTHONPATH=os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")]))
    spec = CellSpec(pipeline="reinfer", model=str(tiny_model_path), iterations=40, inject_leak_bytes=LEAK,
                    tracemalloc=1, native=native_traces, timeout=300)
    r = run_cell(spec, workdir=workdir, base_env=env)
    assert r.status in ("ok", "leak"), (r.reason, r.stderr_tail)
    return r


def big(r: CellResult, source: str) -> list[dict]:
    return [s for s in r.hunt if s.get("source") == source and s["bytes_per_iteration"] >= LEAK / 2]


@pytest.mark.parametrize("how, where", [("ext", "leakext.c"), ("lib", "libleaklib.c")])
def test_native_leaks_are_found_with_native_and_missed_without(how: str, where: str, built: dict[str, str],
                                                                tiny_model_path: Path, workdir: Path) -> None:
    plain = hunt(built[how], tiny_model_path, workdir, native_traces=False)
    assert plain.verdict == "leak" and plain.verdicts["HeapLive"]["verdict"] == "leak"  # the heap counter sees it
    assert not big(plain, "tracemalloc") and not big(plain, "memray"), plain.hunt  # tracemalloc does not
    found = hunt(built[how], tiny_model_path, workdir, native_traces=True)
    sites = big(found, "memray")
    assert len(sites) == 1, [(s["site"], s["bytes_per_iteration"], s["traceback"][:4]) for s in sites]
    [site] = sites
    assert where in site["site"] and "sitecustomize.py" in site["site"], site  # native frame and Python caller
    assert LEAK <= site["bytes_per_iteration"] <= LEAK + 64 and 0.9 <= site["count_per_iteration"] <= 1.1
    assert not big(found, "tracemalloc")


def test_libc_malloc_through_a_ctypes_pointer_is_said_to_be_out_of_memrays_sight(
        built: dict[str, str], tiny_model_path: Path, workdir: Path) -> None:
    r = hunt(built["libc"], tiny_model_path, workdir, native_traces=True)
    assert r.verdicts["HeapLive"]["verdict"] == "leak"
    assert not big(r, "memray")  # a function pointer: no PLT entry for memray to hook
    console = Console(record=True, width=200)
    hunt_report(r, console)
    assert "function pointer" in console.export_text()


def test_missing_memray_exits_2_with_the_install_hint(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(native, "available", lambda python=None: False)
    assert cli.main(["hunt", "--native", "--iterations", "10"]) == 2
    err = capsys.readouterr().err
    assert "memray is not installed" in err and "pip install" in err


def test_windows_need_enough_iterations() -> None:
    assert native.windows(40, None) == (10, 20, 40)
    assert native.windows(100, 20) == (20, 46, 98)
    with pytest.raises(native.NativeHuntError, match="at least"):
        native.windows(3, None)
