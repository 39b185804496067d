"""The adapter registry: built-in runtimes, third-party ones through the ``memgate.runtimes`` entry point.

The entry point test installs docs/adapters.md's example adapter as a throwaway distribution
(a module and a ``.dist-info`` folder on sys.path and the child's PYTHONPATH), so the documented
example is the code that runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stress_tests import adapters
from stress_tests.adapters import Adapter, AdapterError, adapter_class, discover, get_adapter, runtime_names
from stress_tests.options import check
from stress_tests.runner import run_cell
from stress_tests.spec import CellSpec, SpecError

from .conftest import EXAMPLE, install_distribution

ROOT = Path(__file__).resolve().parents[2]


def example_source() -> str:
    """The first Python block of docs/adapters.md: the example third-party adapter."""
    text = (ROOT / "docs" / "adapters.md").read_text(encoding="utf-8")
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]


def test_builtin_runtimes_are_adapter_classes_loaded_without_their_runtime() -> None:
    assert runtime_names()[:4] == ("builtin", "onnxruntime", "reference", "openvino")
    for name in adapters.RUNTIMES:
        cls = adapter_class(name)
        assert issubclass(cls, Adapter) and cls.name == name
        assert set(cls.modes) <= set(adapters.MODES) and set(cls.features) <= set(adapters.FEATURES)


def test_unknown_runtime_is_a_typed_error_naming_the_choices() -> None:
    with pytest.raises(AdapterError, match=r"unknown runtime 'nope'.*builtin.*memgate\.runtimes"):
        get_adapter("nope")
    with pytest.raises(SpecError, match="unknown runtime 'nope'"):
        check(CellSpec(runtime="nope"))


def test_an_entry_point_adds_a_runtime_that_runs_in_a_child(site: Path, tmp_path: Path) -> None:
    install_distribution(site, {"ort-parallel": f"{EXAMPLE}:ParallelOnnxRuntime"}, example_source())
    assert "ort-parallel" in runtime_names()
    check(CellSpec(runtime="ort-parallel"))  # the CLI accepts it
    rows = {r.name: r for r in discover()[0]}
    assert rows["ort-parallel"].version and not rows["ort-parallel"].error
    assert rows["ort-parallel"].source == f"entry point {EXAMPLE}:ParallelOnnxRuntime"
    result = run_cell(CellSpec(pipeline="reinfer", model="mlp", runtime="ort-parallel", iterations=4, timeout=120),
                      workdir=tmp_path)
    assert result.status in ("ok", "leak"), result.reason + result.stderr_tail
    assert len(result.series["VmRSS"]) == 4 and [s.stage for s in result.stages][:3] == [
        "create_core", "read_model", "compile"]
    skipped = run_cell(CellSpec(pipeline="reinfer", model="mlp", runtime="ort-parallel", mode="arena", iterations=2,
                                timeout=120), workdir=tmp_path)
    assert skipped.status == "skipped" and "ort-parallel has no memory mode 'arena'" in skipped.reason


@pytest.mark.stress
def test_doctor_lists_every_runtime_with_its_version(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stress_tests.cli import main

    install_distribution(site, {"ort-parallel": f"{EXAMPLE}:ParallelOnnxRuntime"}, example_source())
    main(["doctor"])
    out = capsys.readouterr().out
    assert "runtimes (--runtime NAME)" in out
    import onnxruntime

    table = out[out.index("runtimes (--runtime NAME)"):]
    rows = {line.split()[0]: line for line in table.splitlines() if line.strip()}
    assert onnxruntime.__version__ in rows["onnxruntime"] and "built-in" in rows["onnxruntime"]
    assert onnxruntime.__version__ in rows["ort-parallel"] and f"entry point {EXAMPLE}" in rows["ort-parallel"]


def test_a_broken_entry_point_is_reported_not_raised(site: Path) -> None:
    install_distribution(site, {"not-an-adapter": "os:path", "missing": f"{EXAMPLE}_absent:Nope",
                                "builtin": "os:path"})
    with pytest.raises(AdapterError, match="os:path is not a stress_tests.adapters.Adapter subclass"):
        adapter_class("not-an-adapter")
    with pytest.raises(AdapterError, match="runtime 'missing' cannot be loaded: ModuleNotFoundError"):
        get_adapter("missing")
    rows, problems = discover()
    by_name = {r.name: r for r in rows}
    assert by_name["missing"].version is None and "ModuleNotFoundError" in by_name["missing"].error
    assert adapter_class("builtin").__module__ == "stress_tests.adapters.builtin", "a built-in name stays built-in"
    assert any("'builtin' is a built-in runtime" in p for p in problems)


def test_a_cell_on_a_broken_runtime_is_skipped_with_the_reason(site: Path, tmp_path: Path) -> None:
    install_distribution(site, {"missing": f"{EXAMPLE}_absent:Nope"})
    result = run_cell(CellSpec(pipeline="reinfer", model="mlp", runtime="missing", iterations=2, timeout=120),
                      workdir=tmp_path)
    assert result.status == "skipped" and "cannot be loaded" in result.reason


def test_the_openvino_adapter_asks_for_the_deepbind_workaround_under_preloaded_allocators() -> None:
    cls = adapter_class("openvino")  # no openvino import: the parent calls this
    assert cls.environment("glibc") == {}
    for allocator in ("jemalloc", "tcmalloc", "mimalloc"):
        assert cls.environment(allocator) == {"TBB_ENABLE_SANITIZERS": "1"}
        assert "RTLD_DEEPBIND" in cls.crash_hint(allocator, "free(): invalid pointer")
    assert cls.crash_hint("glibc", "") == ""
