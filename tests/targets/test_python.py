"""``--python``: a target runs under another interpreter, a venv without memgate, and imports that venv's packages.

Two venvs (``--without-pip``: a second each) get a tiny package ``shadowpkg`` in different
versions and a package of the user's own named ``runtime``, the name of memgate's runtime. The
parent's PYTHONPATH carries memgate's checkout, as an uninstalled run would have it: the child
must not see it. Where a CPython 3.10 is on this machine the second venv uses it (the child runs
on any CPython 3.10+).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stress_tests import cli
from stress_tests.results import read_results
from stress_tests.runner import PACKAGE_ROOT

pytestmark = pytest.mark.stress  # every test here runs harness children

PROBE = '''
import sys

def check(expect, owner="user"):
    import runtime
    import shadowpkg

    assert shadowpkg.__version__ == expect, f"shadowpkg {shadowpkg.__version__} from {shadowpkg.__file__}"
    assert getattr(runtime, "OWNER", None) == owner, f"runtime from {runtime.__file__}"
    ours = ("numpy", "psutil", "onnx", "scipy", "stress_tests", "tests", "benchmarks")
    leaked = [m for m in ours if m in sys.modules]
    assert not leaked, f"memgate's imports in the child: {leaked}"
    try:
        import stress_tests  # noqa: F401
    except ModuleNotFoundError:
        return
    raise AssertionError(f"stress_tests importable in the user's venv: {stress_tests.__file__}")
'''


def _second_interpreter() -> str:
    """A CPython 3.10 if this machine has one (pyenv, PATH), else this interpreter."""
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))
    found = [*pyenv, shutil.which("python3.10")]
    for python in filter(None, found):  # a pyenv shim may name a version it will not run
        if subprocess.run([python, "-c", "import venv"], capture_output=True).returncode == 0:
            return python
    return sys.executable


def _venv(where: Path, base: str, version: str) -> str:
    subprocess.run([base, "-m", "venv", "--without-pip", str(where)], check=True)
    python = str(where / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    for name, body in (("shadowpkg", f"__version__ = {version!r}\n"), ("runtime", "OWNER = 'user'\n")):
        (Path(purelib) / name).mkdir()
        (Path(purelib) / name / "__init__.py").write_text(body)
    return python


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("venvs")
    return {"1.0": _venv(tmp / "one", sys.executable, "1.0"), "2.0": _venv(tmp / "two", _second_interpreter(), "2.0")}


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "probe_versions.py").write_text(PROBE)
    monkeypatch.setenv("PYTHONPATH", PACKAGE_ROOT)  # an uninstalled checkout's run: the child must drop it
    return f"{tmp_path / 'probe_versions.py'}:check"


def _run(tmp_path: Path, python: str, target: str, expect: str) -> tuple[int, object]:
    out = tmp_path / f"r-{expect}-{Path(python).parent.parent.name}.json"
    code = cli.main(["run", "--target", target, "--target-arg", f"expect={expect!r}", "--python", python,
                     "--iterations", "5", "--json", str(out)])
    return code, read_results(out).cells[0]


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_a_target_imports_its_own_venvs_packages_not_memgates(
        venvs: dict[str, str], probe: str, tmp_path: Path, version: str) -> None:
    code, result = _run(tmp_path, venvs[version], probe, version)
    assert code == 0, f"{result.reason}\n{result.stderr_tail}"  # type: ignore[attr-defined]
    child = result.probe["child"]  # type: ignore[attr-defined]
    assert child["executable"].startswith(str(Path(venvs[version]).parent))
    assert child["foreign_modules"] == []  # only the standard library and ours before the target
    assert result.spec.python == venvs[version]  # type: ignore[attr-defined]


def test_the_other_venvs_version_is_not_what_the_child_sees(venvs: dict[str, str], probe: str, tmp_path: Path) -> None:
    """The check has teeth: venv 1.0 asked for 2.0 fails the cell with the version it found."""
    code, result = _run(tmp_path, venvs["1.0"], probe, "2.0")
    assert code == 1
    assert "AssertionError: shadowpkg 1.0 from" in result.reason  # type: ignore[attr-defined]


def test_the_second_interpreter_runs_the_child(venvs: dict[str, str], probe: str, tmp_path: Path) -> None:
    code, result = _run(tmp_path, venvs["2.0"], probe, "2.0")
    want = subprocess.run([venvs["2.0"], "-c", "import platform; print(platform.python_version())"],
                          check=True, capture_output=True, text=True).stdout.strip()
    assert code == 0 and result.probe["child"]["python"] == want  # type: ignore[attr-defined]
