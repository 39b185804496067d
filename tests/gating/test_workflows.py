"""The CI workflows parse, and every tox environment or label they name exists in tox.ini."""

from __future__ import annotations

import configparser
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # a test extra: the workflows are always linted, never skipped

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
_BRACES = re.compile(r"\{([^{}]*,[^{}]*)\}")


def expand(pattern: str) -> list[str]:
    """tox's generative names: ``{a,b}-{x,y}`` -> a-x, a-y, b-x, b-y; top-level commas separate patterns."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(pattern + ","):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            one = pattern[start:i].strip()
            start = i + 1
            if one:
                parts = _BRACES.split(one)
                choices = [[p] if k % 2 == 0 else [c.strip() for c in p.split(",")] for k, p in enumerate(parts)]
                out += ["".join(combo) for combo in itertools.product(*choices)]
    return out


def tox_config() -> tuple[set[str], set[str]]:
    """(environment names, labels) declared by tox.ini."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    envs: set[str] = set()
    for line in ini.get("tox", "env_list", fallback="").split():
        envs.update(expand(line.strip().rstrip(",")))
    labels: set[str] = set()
    for section in ini.sections():
        if section.startswith("testenv:"):
            envs.update(expand(section.split(":", 1)[1]))
            labels.update(x.strip() for x in ini.get(section, "labels", fallback="").replace(",", " ").split())
    return envs, labels


def matrix_values(job: dict[str, Any]) -> list[dict[str, str]]:
    """The matrix's combinations, less its ``exclude`` entries (as GitHub Actions expands it)."""
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    axes = {k: v for k, v in matrix.items() if isinstance(v, list) and k not in ("exclude", "include")}
    combos = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    excluded = matrix.get("exclude") or []
    return [c for c in combos if not any(all(c.get(k) == v for k, v in e.items()) for e in excluded)] or [{}]


def tox_calls(run: str, values: dict[str, str]) -> list[tuple[str, str]]:
    """("env", name) and ("label", name) for every tox call in a step's script, matrix expanded."""
    for key, value in values.items():
        run = re.sub(r"\$\{\{\s*matrix\." + re.escape(key) + r"\s*\}\}", str(value), run)
    calls = []
    for m in re.finditer(r"\btox\b(?:\s+(?:p|parallel|exec)\b)?((?:\s+-[em]\s+\S+|\s+--?\S+)*)", run):
        for flag, names in re.findall(r"-([em])\s+(\S+)", m.group(1)):
            calls += [("env" if flag == "e" else "label", n) for n in names.split(",") if n]
    return calls


def test_there_are_workflows() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "baselines.yml"} <= names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_parses_and_names_only_existing_tox_envs(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict) and doc.get("name"), f"{path.name}: no name"
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers, f"{path.name}: no trigger"
    jobs = doc.get("jobs")
    assert isinstance(jobs, dict) and jobs, f"{path.name}: no jobs"
    envs, labels = tox_config()
    for job_name, job in jobs.items():
        assert job.get("runs-on") and job.get("steps"), f"{path.name}: job {job_name} lacks runs-on or steps"
        for need in [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", []):
            assert need in jobs, f"{path.name}: job {job_name} needs unknown job {need}"
        for step in job["steps"]:
            assert "run" in step or "uses" in step, f"{path.name}: {job_name} has a step that does nothing"
            for values in matrix_values(job):
                for kind, name in tox_calls(step.get("run", ""), values):
                    known = envs if kind == "env" else labels
                    assert name in known, f"{path.name}: job {job_name} runs tox {kind} {name!r}, not in tox.ini"


def test_the_gate_matrix_is_the_tox_matrix() -> None:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    envs, labels = tox_config()
    jobs = {f"{v['allocator']}-{v['profile']}" for v in matrix_values(doc["jobs"]["gate"])}
    assert jobs == {e for e in envs if e.split("-")[0] in ("glibc", "jemalloc", "tcmalloc", "mimalloc")}
    assert "gate" in labels


def test_the_expansion_follows_tox_and_actions() -> None:
    assert expand("{a,b}-{x,y},c-{x,z}") == ["a-x", "a-y", "b-x", "b-y", "c-x", "c-z"]
    job = {"strategy": {"matrix": {"a": [1, 2], "b": ["x", "y"], "exclude": [{"a": 2, "b": "y"}]}}}
    assert matrix_values(job) == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}]


def test_the_linter_catches_an_unknown_env() -> None:
    assert tox_calls("tox -e glibc-defualt", {}) == [("env", "glibc-defualt")]
    assert tox_calls("tox p -m gate && tox -e ${{ matrix.a }}-x", {"a": "jemalloc"}) == [
        ("label", "gate"), ("env", "jemalloc-x")]
    assert "glibc-defualt" not in tox_config()[0]
