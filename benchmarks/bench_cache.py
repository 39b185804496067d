"""Compile-stage memory and time: cold compile, export, cache hits, mmap, shared pages.

Every figure comes from a fresh process. Times are the median of ``--repeat`` processes (one
compile each: a single run of VGG-19's cold compile moved 0.1-0.9 s). For each model:
- cold: compile without a cache; compile+export: compile into an empty cache_dir;
- hit (model) / hit (path): compile from the warm cache via core.read_model(path) / the path;
- RSS, RssAnon, RssFile after compile and after the first inference, with mmap on and off
  (the "delta" columns subtract the process's figures after imports, before compiling);
- two processes serving the same cached, mmap'd model: each one's VmHWM and RSS, and their
  summed PSS (shared pages are counted once between them).

    python benchmarks/bench_cache.py --models u2net light:resnet50 light:vgg19 light:densenet121 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from fresh import MARK, PRELUDE, ROOT, markdown_table, mib, run_fresh, save_model

CHILD = """
import runtime as rt
path, cache, how, mmap_on = {path!r}, {cache!r}, {how!r}, {mmap!r}
base = status()
core = rt.Core(cache_dir=cache, enable_mmap=mmap_on)
t = time.perf_counter()
src = core.read_model(path) if how == "model" else path
compiled = core.compile_model(src)
seconds = time.perf_counter() - t
rt.release_memory()
after_compile = status()
compiled.infer(feeds_for(compiled))
after_infer = status()
emit(seconds=seconds, info=compiled.compile_info, weights=compiled.memory_stats()["weights_bytes"],
     base=base, compile=after_compile, infer=after_infer)
"""

SERVE = """
import runtime as rt
core = rt.Core(cache_dir={cache!r}, enable_mmap=True)
compiled = core.compile_model({path!r})
compiled.infer(feeds_for(compiled))
rt.release_memory()
emit(pid=os.getpid(), status=status())
sys.stdin.readline()
"""


def _pss(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def two_processes(path: Path, cache: Path) -> dict[str, int]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    code = PRELUDE + SERVE.format(cache=str(cache), path=str(path))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    figures = []
    try:
        for p in procs:
            for line in p.stdout:  # type: ignore[union-attr]
                if line.startswith(MARK):
                    figures.append(json.loads(line[len(MARK):]))
                    break
        pss = sum(_pss(f["pid"]) for f in figures)
    finally:
        for p in procs:
            p.communicate("\n", timeout=60)
    return {"hwm": max(f["status"]["VmHWM"] for f in figures), "rss": sum(f["status"]["VmRSS"] for f in figures),
            "pss": pss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["u2net", "light:resnet50", "light:vgg19", "light:densenet121"])
    ap.add_argument("--repeat", type=int, default=3, help="fresh processes per timed figure (median)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    folder = Path(tempfile.gettempdir()) / "memgate-bench-models"
    time_rows, mem_rows, share_rows = [], [], []
    for name in args.models:
        path = save_model(name, folder)
        root = Path(tempfile.mkdtemp(prefix="memgate-cache-"))
        try:
            def run(how: str, cache_dir: Path | None, mmap: bool = True) -> dict:
                return run_fresh(CHILD.format(path=str(path), cache=str(cache_dir) if cache_dir else None,
                                              how=how, mmap=mmap))

            def median(runs: list[dict], key: str = "seconds") -> float:
                return statistics.median(float(r[key]) for r in runs)

            colds = [run("path", None) for _ in range(args.repeat)]
            exports = [run("path", root / f"export-{i}") for i in range(args.repeat)]  # each into an empty folder
            cache = root / f"export-{args.repeat - 1}"  # the hits read the last export
            hit_models = [run("model", cache) for _ in range(args.repeat)]
            hit_paths = [run("path", cache) for _ in range(args.repeat)]
            cold, hit_path = colds[0], hit_paths[0]
            hit_nommap = run("path", cache, mmap=False)
            cold_nommap = run("path", None, mmap=False)
            weights = cold["weights"]
            export_s = statistics.median(float(r["info"].get("export_seconds") or 0) for r in exports)
            time_rows.append([
                name, mib(weights), f"{median(colds):.3f}", f"{median(exports):.3f}", f"{export_s:.3f}",
                f"{median(hit_models):.3f}", f"{median(hit_paths):.4f}", f"{median(colds) / median(hit_paths):.0f}x",
            ])
            for label, r in (("cold, mmap", cold), ("cold, no mmap", cold_nommap), ("hit, mmap", hit_path),
                             ("hit, no mmap", hit_nommap)):
                b, c, i = r["base"], r["compile"], r["infer"]
                anon_delta = c["RssAnon"] - b["RssAnon"]
                mem_rows.append([
                    name, label, mib(c["VmRSS"]), mib(anon_delta), mib(c["RssFile"] - b["RssFile"]),
                    f"{100 * anon_delta / weights:.1f}%", mib(i["VmRSS"]), mib(i["RssAnon"] - b["RssAnon"]),
                    mib(i["RssFile"] - b["RssFile"]), mib(i["VmHWM"]),
                ])
            shared = two_processes(path, cache)
            share_rows.append([name, mib(weights), mib(shared["hwm"]), mib(shared["rss"]), mib(shared["pss"])])
            print(time_rows[-1], mem_rows[-4:], share_rows[-1], flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    out = "\n\n".join([
        markdown_table(["model", "weights MiB", "cold s", "compile+export s", "export s", "hit via model s",
                        "hit via path s", "cold / hit"], time_rows),
        markdown_table(["model", "compile", "RSS MiB", "RssAnon +MiB", "RssFile +MiB", "RssAnon / weights",
                        "RSS after 1st infer", "RssAnon +MiB", "RssFile +MiB", "VmHWM MiB"], mem_rows),
        markdown_table(["model", "weights MiB", "VmHWM of each", "RSS summed", "PSS summed"], share_rows),
    ])
    print(out)
    if args.out:
        args.out.write_text(out + "\n")


if __name__ == "__main__":
    main()
