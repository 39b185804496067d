"""Cache stress: concurrent compiles into one cache folder, and blobs corrupted while workers use them.

Workers (threads or processes) compile the same model from one ``cache_dir`` again and again and
check every output against a reference, while the test damages the blob: replaced by a truncated
copy, by garbage, by a copy with a flipped header byte (each through a rename, as a concurrent
writer would), flipped in place in its header, or deleted. Every compile must succeed (warning
and recompiling when the blob is bad), every output must be right, and the cache must heal.

Left out on purpose: truncating a blob *in place* while it is mapped. Any mmap user gets SIGBUS
when a mapped file shrinks; the runtime itself only ever replaces blobs by rename.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import runtime as rt

pytestmark = pytest.mark.stress
WORKER = r"""
import sys, warnings
import numpy as np
import runtime as rt
cache, model, feeds, rounds, mode, lockstep = sys.argv[1:7]
data = np.load(feeds)
inputs = {k[3:]: data[k] for k in data.files if k.startswith("in_")}
ref = {k[4:]: data[k] for k in data.files if k.startswith("out_")}
seen = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", rt.CacheWarning)
    for i in range(int(rounds)):
        if lockstep == "1" and not sys.stdin.readline():  # the test damages the blob between rounds
            break
        compiled = rt.Core(cache_dir=cache).compile_model(model, memory_mode=mode)
        out = compiled.infer(inputs)
        for name, want in ref.items():
            if not np.array_equal(out[name], want):
                print(f"round {i}: output {name} differs", flush=True)
                sys.exit(1)
        seen[compiled.compile_info["cache"]] = seen.get(compiled.compile_info["cache"], 0) + 1
        if lockstep == "1":
            print("round", i, flush=True)
warned = len([w for w in caught if issubclass(w.category, rt.CacheWarning)])
print("ok", warned, seen, flush=True)
"""


def blobs(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.mgblob"))


def replace(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".damage")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def damage(path: Path, how: int) -> None:
    """One of five kinds of damage, chosen by ``how``; a missing blob is left missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    kind = how % 5
    if kind == 0:
        replace(path, data[: len(data) // 2])
    elif kind == 1:
        replace(path, bytes(len(data)))
    elif kind == 2:
        replace(path, data[:20] + bytes([data[20] ^ 0xFF]) + data[21:])
    elif kind == 3:
        with open(path, "r+b") as f:  # in place, inside the header checksum: readers must notice
            f.seek(30)
            f.write(bytes([data[30] ^ 0x55]))
    else:
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def model(zoo_model, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """(model path, npz with inputs and reference outputs, reference outputs)."""
    path, feeds = zoo_model("mobilenetv2", size=64)
    ref = rt.Core().compile_model(str(path)).infer(feeds)
    npz = tmp_path_factory.mktemp("ref") / "ref.npz"
    arrays = {**{f"in_{k}": v for k, v in feeds.items()}, **{f"out_{k}": v for k, v in ref.items()}}
    np.savez(npz, **arrays)  # type: ignore[arg-type]
    return path, npz, {k: v.copy() for k, v in ref.items()}


def workers(cache: Path, model: Path, npz: Path, n: int, rounds: int, mode: str = "default",
            lockstep: bool = False) -> list[subprocess.Popen]:
    argv = [sys.executable, "-c", WORKER, str(cache), str(model), str(npz), str(rounds), mode, str(int(lockstep))]
    return [subprocess.Popen(argv, stdin=subprocess.PIPE if lockstep else subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(n)]


def finish(procs: list[subprocess.Popen]) -> list[str]:
    outs = []
    for p in procs:
        assert p.stdout is not None and p.stderr is not None
        out, err = p.stdout.read(), p.stderr.read()  # not communicate(): readline() may have buffered the end
        p.wait(timeout=900)
        assert p.returncode == 0, f"worker exit {p.returncode}: {out}\n{err[-3000:]}"
        outs.append(out.strip())
    return outs


def inputs(npz: Path) -> dict[str, np.ndarray]:
    with np.load(npz) as data:
        return {k[3:]: data[k] for k in data.files if k.startswith("in_")}


def healed(cache: Path, model: Path, npz: Path, ref: dict[str, np.ndarray], mode: str = "default") -> None:
    """A compile after the storm heals the cache; the next one hits it without a warning, and is right."""
    rt.Core(cache_dir=cache).compile_model(str(model), memory_mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error", rt.CacheWarning)
        compiled = rt.Core(cache_dir=cache).compile_model(str(model), memory_mode=mode)
    assert compiled.compile_info["cache"] == "hit"
    out = compiled.infer(inputs(npz))
    for name, want in ref.items():
        np.testing.assert_array_equal(out[name], want)
    assert not list(cache.glob("*.tmp")), "temporary files left behind"


@pytest.mark.parametrize("n, rounds", [(2, 3), pytest.param(4, 40, marks=pytest.mark.full)])
def test_concurrent_cold_compiles_agree_and_leave_one_blob_per_mode(model, tmp_path: Path, n: int,
                                                                     rounds: int) -> None:
    path, npz, ref = model
    cache = tmp_path / "cache"
    procs = workers(cache, path, npz, n, rounds) + workers(cache, path, npz, n, rounds, mode="arena")
    results: list[dict] = []

    def in_thread() -> None:  # and threads of this process join the race
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rt.CacheWarning)
            compiled = rt.Core(cache_dir=cache).compile_model(str(path))
        results.append(compiled.infer(inputs(npz)))

    threads = [threading.Thread(target=in_thread) for _ in range(n)]
    for t in threads:
        t.start()
    outs = finish(procs)
    for t in threads:
        t.join()
    assert all(o.startswith("ok") for o in outs), outs
    assert len(results) == n and all(np.array_equal(r[k], ref[k]) for r in results for k in ref)
    assert len(blobs(cache)) == 2, [b.name for b in blobs(cache)]
    healed(cache, path, npz, ref)
    healed(cache, path, npz, ref, mode="arena")


@pytest.mark.parametrize("n, rounds", [(2, 6), pytest.param(4, 301, marks=pytest.mark.full)])
def test_blobs_damaged_under_load_never_break_a_compile(model, tmp_path: Path, n: int, rounds: int) -> None:
    """Lockstep: damage, then every worker compiles at once (racing to read, warn, recompile and store)."""
    path, npz, ref = model
    cache = tmp_path / "cache"
    rt.Core(cache_dir=cache).compile_model(str(path))
    [blob] = blobs(cache)
    procs = workers(cache, path, npz, n, rounds, lockstep=True)
    warning_kinds = 0
    try:
        for i in range(rounds):
            if i:
                damage(blob, i - 1)
                warning_kinds += (i - 1) % 5 != 4  # a deleted blob is a plain miss
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            for p in procs:
                assert p.stdout is not None
                line = p.stdout.readline()
                assert line.startswith("round"), f"worker: {line}{p.stderr.read() if p.stderr else ''}"
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
                p.stdin = None  # communicate() must not flush it again
    outs = finish(procs)
    assert all(o.startswith("ok") for o in outs), outs
    # whoever read first after a damage saw it: at least one warning per damage that leaves a bad blob
    assert sum(int(o.split()[1]) for o in outs) >= warning_kinds, outs
    healed(cache, path, npz, ref)
