"""A project's own gating set: ``[tool.memgate]`` in its pyproject.toml drives ``memgate check`` and its baselines."""

from __future__ import annotations

from pathlib import Path

import pytest

from stress_tests import cli
from stress_tests.project import ProjectError, find
from stress_tests.results import read_results

pytestmark = pytest.mark.stress  # every test here runs harness children

PYPROJECT = """
[project]
name = "myapp"

[tool.memgate]
iterations = 40
allocators = ["glibc"]
profiles = ["default"]
baselines = "memgate-baselines"

[[tool.memgate.targets]]
target = "src/myapp/cache.py:Cache"
args = {{ size = 4096, name = "lru", tag = "16" }}

[[tool.memgate.targets]]
target = "myapp.cache:{function}"
iterations = 60
"""
CACHE = '''
KEPT = []

class Cache:
    def __init__(self, size, name, tag):
        assert (size, name, tag) == (4096, "lru", "16"), (size, name, tag)
        self.data = {}

    def __call__(self):
        self.data["k"] = b"v" * 4096

def lookup():
    b"w" * 8192

def lookup_leaky():
    KEPT.append(b"w" * 32768)
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "src" / "myapp").mkdir(parents=True)
    (tmp_path / "src" / "myapp" / "__init__.py").write_text("")
    (tmp_path / "src" / "myapp" / "cache.py").write_text(CACHE)
    # the package imports from the project folder, where the children run: src/ is its import root here
    (tmp_path / "myapp").symlink_to(tmp_path / "src" / "myapp")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.format(function="lookup"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_table_becomes_target_cells_with_their_args_and_settings(project: Path) -> None:
    p = find()
    assert p is not None and p.baselines == project / "memgate-baselines"
    specs = p.specs(["glibc"], ["default", "arena1"])
    assert [s.id for s in specs] == [
        "target/cache.py:Cache[size=4096,name=lru,tag='16']/glibc",
        "target/cache.py:Cache[size=4096,name=lru,tag='16']/glibc/arena_max=1",
        "target/myapp.cache:lookup/glibc",
        "target/myapp.cache:lookup/glibc/arena_max=1",
    ]
    assert [s.iterations for s in specs[1:3]] == [40, 60]
    assert specs[0].target == f"{project / 'src/myapp/cache.py'}:Cache"  # relative to the project
    text = (project / "pyproject.toml").read_text().replace("iterations = 40\n", "iterations = 40\npython = "
                                                            "\".venv/bin/python\"\nwarmup = 5\n", 1)
    (project / "pyproject.toml").write_text(text)
    p = find(project / "pyproject.toml")
    assert p is not None and p.python == str(project / ".venv" / "bin" / "python") and p.warmup == 5
    assert {s.python for s in p.specs(["glibc"], ["default"])} == {p.python}  # every cell's child interpreter


def test_check_runs_the_projects_set_and_baseline_update_records_into_its_folder(
        project: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "--strict"]) == 1  # nothing recorded yet: strict fails on new cells
    text = capsys.readouterr().out
    assert "2 cells (the gating set of" in text and "memgate-baselines/" in text
    results = read_results(project / "memgate-report" / "results.json").cells
    assert [r.status for r in results] == ["ok", "ok"], [r.reason + r.stderr_tail for r in results]
    assert cli.main(["baseline", "update", "memgate-report/results.json"]) == 0
    [recorded] = list((project / "memgate-baselines").glob("*-glibc-default.json"))
    assert "target/myapp.cache:lookup/default/python" in recorded.read_text()
    assert cli.main(["check", "--strict"]) == 0
    # from elsewhere, naming the project: the same set, the same baselines
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    assert cli.main(["check", "--project", str(project), "--strict", "--out", str(elsewhere / "out")]) == 0


def test_a_leak_in_the_project_fails_check(project: Path) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT.format(function="lookup_leaky"))
    assert cli.main(["check"]) == 1
    leaky = read_results(project / "memgate-report" / "results.json").cells[1]
    assert leaky.status == "leak" and leaky.spec.target == "myapp.cache:lookup_leaky"


@pytest.mark.parametrize("table, message", [
    ("[tool.memgate]\n", "targets must be a non-empty list"),
    ("[tool.memgate]\ntargets = ['a.py:f']\nallocator = ['glibc']\n", "unknown key(s) allocator; known:"),
    ("[tool.memgate]\ntargets = ['a.py:f']\nallocators = ['ptmalloc']\n", "allocators: unknown ptmalloc"),
    ("[tool.memgate]\ntargets = ['a.py:f']\niterations = 0\n", "iterations: expected a whole number of at least 1"),
    ("[tool.memgate]\ntargets = [{target = 'nocolon'}]\n", "targets[0]: target 'nocolon': expected FILE.py:NAME"),
    ("[tool.memgate]\ntargets = [{target = 'a.py:f', args = 3}]\n", "targets[0]: args must be a table"),
])
def test_a_bad_table_is_a_usage_error_naming_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        table: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(table)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectError) as e:
        find()
    assert message in str(e.value) and "pyproject.toml" in str(e.value)
    assert cli.main(["check"]) == 2 and message in capsys.readouterr().err


def test_no_table_means_memgates_own_set_and_a_named_project_must_have_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.chdir(tmp_path)
    assert find() is None  # memgate check then runs its own gating set
    with pytest.raises(ProjectError, match=r"has no \[tool.memgate\] table"):
        find(tmp_path)
    with pytest.raises(ProjectError, match="no pyproject.toml there"):
        find(tmp_path / "nowhere")
