"""The ``memgate`` command line: check, doctor, run, matrix, hunt, compare, baseline, report.

Exit codes: 0 all good, 1 a leak or a failure was found, 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .options import CELL, CORE, GATE, OUTPUT, add_options, check, spec_from_args, specs_from_matrix_args

EXIT_OK, EXIT_FOUND, EXIT_USAGE = 0, 1, 2

_EXAMPLES = {
    "doctor": "example:\n  memgate doctor\n  memgate doctor --require-allocators   # exit 2 if one is missing",
    "run": ("example:\n  memgate run --pipeline recompile --model u2netp --mode arena --allocator jemalloc \\\n"
            "      --tunable arena_max=1 --iterations 300 --json out.json\n"
            "  memgate run --model mlp --inject-leak 64KiB --iterations 100   # self-test: must say leak\n"
            "  memgate run --target app/cache.py:Cache --target-arg size=4096 --python .venv/bin/python \\\n"
            "      --iterations 300   # your own callable, under your venv"),
    "matrix": ("example:\n  memgate matrix --model mlp,u2netp --mode all --pipeline reinfer,recompile \\\n"
               "      --allocator all --tunable arena_max=default,1 --iterations 200 -j 2 --json results.json\n"
               "  memgate matrix --target app/cache.py:Cache,app.parse:parse --allocator all --iterations 200\n"
               "  memgate matrix ... --shard 2/4 --json shard-2.json   # one of 4 CI jobs; the same on every machine"),
    "hunt": ("example:\n  memgate hunt --pipeline reinfer --model mlp --iterations 60\n"
             "  memgate hunt --model mlp --inject-leak 16KiB --frames 3   # the injected leak's file:line\n"
             "  memgate hunt --target app/cache.py:Cache --frames 5           # where your code's memory grows\n"
             "  memgate hunt --model mlp --native   # C extensions and libraries too (pip install 'memgate[native]')"),
    "check": ("example:\n  memgate check                  # quick gating set, every installed allocator\n"
              "  memgate check --allocators jemalloc --profile arena1 --models u2netp,mlp\n"
              "  memgate check --repeat 3 && memgate baseline update memgate-report/results.json\n"
              "  memgate check --full -j 2 --out nightly-report\n"
              "  memgate check --project ../myapp   # its pyproject.toml [tool.memgate]: targets, allocators, "
              "profiles,\n                                     # iterations, baselines folder (found in the working "
              "folder too)\n"
              "  memgate check --full --allocators glibc,jemalloc --shard 3/8 --out shard-3   # one CI job of 8"),
    "compare": ("example:\n  memgate compare memgate-report/results.json --baselines baselines/ --strict\n\n"
                "exit codes: 0 no regression, 1 a regression (or, with --strict, a cell without baseline)"),
    "baseline": ("example:\n  memgate baseline update memgate-report/results.json\n"
                 "  memgate baseline merge shard-*/results.json --out baselines/"),
    "report": ("example:\n  memgate report results.json --out memgate-report\n"
               "  memgate report shard-*/results.json --out memgate-report   # shards combined\n"
               "  memgate report results.json --out memgate-report --baselines baselines/\n\n"
               "writes summary.md, junit.xml, plots/*.png and index.html into --out;\n"
               "without --baselines the report shows the verdicts only\n\n"
               "exit codes: 0 written, 2 unreadable results or baselines"),
}


class UsageError(Exception):
    """A problem with what was asked: exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memgate", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Memory leak and footprint checks of inference runtimes, one isolated process per cell.",
        epilog="example:\n  memgate doctor\n  memgate run --pipeline recompile --model mlp --iterations 200\n\n"
               "exit codes: 0 all good, 1 leak or failure found, 2 usage or environment error",
    )
    parser.add_argument("-V", "--version", action="version", version=f"memgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    helps = {"doctor": "what this machine offers: allocators, probes, versions",
             "run": "run one cell and print its verdict",
             "matrix": "run the cross-product of models, modes, pipelines, allocators and tunables",
             "hunt": "rerun a cell under tracemalloc and list the allocation sites that grow"}
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text, epilog=_EXAMPLES[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == "doctor":
            add_options(p, ("require_allocators",))
            continue
        add_options(p, CELL, multi=name == "matrix", title="cell")
        add_options(p, CORE, title="runtime Core")
        add_options(p, OUTPUT + (("jobs", "shard") if name == "matrix" else ()), title="output")
        if name == "hunt":
            p.add_argument("--frames", type=int, default=1, metavar="N",
                           help="tracemalloc frames per site (more shows the callers)")
            p.add_argument("--native", action="store_true",
                           help="also run memray with native traces (extra 'native'): sites in C extensions and "
                                "shared libraries, which tracemalloc cannot see")
    _add_gate_parsers(sub)
    text = "write the report of a results file: Markdown summary, JUnit XML, PNG plots, one HTML page"
    p = sub.add_parser("report", help=text, description=text, epilog=_EXAMPLES["report"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", metavar="RESULTS.json", help="several (shards') files are combined")
    add_options(p, ("out", "baselines"))
    p.set_defaults(out="memgate-report")
    return parser


def _add_gate_parsers(sub: Any) -> None:
    """check, compare and baseline update|merge (the gate over stored baselines)."""
    fmt = argparse.RawDescriptionHelpFormatter
    text = "run the gating set, compare with the baselines, write the report (the main job)"
    p = sub.add_parser("check", help=text, description=text, epilog=_EXAMPLES["check"], formatter_class=fmt)
    add_options(p, GATE)
    p.add_argument("--require-allocators", action="store_true", help="a named allocator that is missing fails")
    p.set_defaults(out="memgate-report", jobs=None, profile=None)
    text = "compare a results file with the baselines: a table per metric, exit 1 on a regression"
    p = sub.add_parser("compare", help=text, description=text, epilog=_EXAMPLES["compare"], formatter_class=fmt)
    p.add_argument("results", metavar="RESULTS.json")
    add_options(p, ("baselines", "project", "strict", "gate_latency"))
    p.add_argument("--changes-only", action="store_true", help="leave out the rows within tolerance")
    text = "record results as baselines (update) or combine shards' and machines' results (merge)"
    p = sub.add_parser("baseline", help=text, description=text, epilog=_EXAMPLES["baseline"], formatter_class=fmt)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    u = actions.add_parser("update", help="write the entries that were run into the baselines folder")
    u.add_argument("results", nargs="+", metavar="RESULTS.json", help="repeats of a cell are pooled")
    add_options(u, ("baselines", "project"))
    g = actions.add_parser("merge", help="results (and baseline) files from several machines or shards -> DIR")
    g.add_argument("inputs", nargs="+", metavar="FILE.json")
    add_options(g, ("out",))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arglist = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(arglist)
    args.argv = arglist
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    command: Callable[[argparse.Namespace], int] = COMMANDS[args.command]
    try:
        return command(args)
    except UsageError as e:
        print(f"memgate {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"memgate {args.command}: interrupted", file=sys.stderr)
        return 130


def _console(stderr: bool = False) -> Any:
    import os

    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # logs and CI: 80 columns would fold every table
    return console


def _checked(make: Callable[[], Any]) -> Any:
    """Turn the harness's validation errors into UsageError (exit 2)."""
    from .allocators import AllocatorError
    from .models import ModelError
    from .spec import SpecError

    try:
        return make()
    except (SpecError, AllocatorError, ModelError) as e:
        raise UsageError(str(e)) from None


def _exit_code(results: Sequence[Any]) -> int:
    return EXIT_FOUND if any(r.bad for r in results) else EXIT_OK


def _save(path: str | None, results: Sequence[Any], argv: Sequence[str]) -> None:
    if not path:
        return
    from .environment import fingerprint
    from .results import write_results

    write_results(path, results, fingerprint(), ["memgate", *argv])
    _console(stderr=True).print(f"results written to {path}")


def _workdir(args: argparse.Namespace) -> Any:
    from pathlib import Path

    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        return Path(args.workdir)
    return None


def _named_allocators(args: argparse.Namespace) -> list[str] | None:
    """The allocators the user named (``--allocator``, else ``MEMGATE_ALLOCATOR``), or None for the default.

    A named allocator must exist: a CI line that names jemalloc and runs nothing must not go green.
    ``--allocator all`` names none in particular (every installed one).
    """
    import os

    from .allocators import ALLOCATORS
    from .options import split_list
    from .profiles import ENV_ALLOCATOR

    flagged = any(a == "--allocator" or a.startswith("--allocator=") for a in getattr(args, "argv", []))
    text = args.allocator if flagged else os.environ.get(ENV_ALLOCATOR, "").strip()
    if not text or text == "all":
        return None
    return _checked(lambda: split_list(text, ALLOCATORS, "allocator"))


def _require_installed(args: argparse.Namespace, names: Sequence[str] | None) -> None:
    """Exit 2 with the install hint for a named allocator that is missing."""
    from .allocators import find

    for name in names or ():
        found = find(name, getattr(args, "allocator_path", None))
        if not found.installed:
            raise UsageError(f"{found.hint} (it was asked for by name: a skipped run would pass without "
                             f"running anything)")


def _run_one(args: argparse.Namespace, **overrides: Any) -> Any:
    from .runner import run_cells

    named = _named_allocators(args)
    if named is not None and "allocator" not in overrides:
        if len(named) != 1:
            raise UsageError(f"{args.command} runs one cell: name one allocator, not {', '.join(named)}")
        overrides["allocator"] = named[0]
    _require_installed(args, named)
    spec = _checked(lambda: spec_from_args(args, **overrides))
    _checked(lambda: check(spec))
    err = _console(stderr=True)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task(spec.id, total=spec.total_iterations)
        [result] = run_cells([spec], workdir=_workdir(args), require_allocators=args.require_allocators,
                             on_progress=lambda s, done, total: progress.update(task, completed=done))
    return result


def cmd_run(args: argparse.Namespace) -> int:
    from .display import summary

    result = _run_one(args)
    summary(result, _console())
    _save(args.json, [result], args.argv)
    return _exit_code([result])


def cmd_hunt(args: argparse.Namespace) -> int:
    from .display import hunt_report, summary

    if args.native:
        from .native import INSTALL_HINT, available

        if not available():
            raise UsageError(INSTALL_HINT)
    result = _run_one(args, tracemalloc=max(1, args.frames), native=args.native)
    summary(result, _console())
    hunt_report(result, _console())
    _save(args.json, [result], args.argv)
    return _exit_code([result])


def cmd_matrix(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .display import matrix_table
    from .runner import run_cells

    named = _named_allocators(args)
    if named is not None and not any(a == "--allocator" or a.startswith("--allocator=") for a in args.argv):
        args.allocator = ",".join(named)  # MEMGATE_ALLOCATOR stands in for the flag
    _require_installed(args, named)
    specs = _checked(lambda: specs_from_matrix_args(args))
    for spec in specs:
        _checked(functools.partial(check, spec))
    err = _console(stderr=True)
    specs = _shard(specs, args.shard, err)
    if not specs:
        return EXIT_OK
    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=not err.is_terminal) as progress:
        overall = progress.add_task(f"{len(specs)} cells", total=len(specs))

        def started(spec: Any) -> None:
            tasks[spec.id] = progress.add_task(f"  {spec.id}", total=spec.total_iterations)

        def advanced(spec: Any, done: int, total: int) -> None:
            if spec.id in tasks:
                progress.update(tasks[spec.id], completed=done)

        def finished(result: Any) -> None:
            task = tasks.pop(result.spec.id, None)
            if task is not None:
                progress.remove_task(task)
            progress.advance(overall)
            if not err.is_terminal:
                err.print(f"{result.status:8} {result.spec.id} {result.reason}", markup=False)

        results = run_cells(specs, jobs=args.jobs, workdir=_workdir(args), require_allocators=args.require_allocators,
                            on_start=started, on_done=finished, on_progress=advanced)
    matrix_table(results, _console())
    _save(args.json or "memgate-results.json", results, args.argv)
    return _exit_code(results)


def _shard(specs: list[Any], shard: Any, err: Any) -> list[Any]:
    """The cells of ``--shard K/N`` (all without it), saying how the whole list split."""
    if shard is None:
        return specs
    from .shard import describe, select

    parts = describe(specs, shard.count)
    mine = select(specs, shard)
    err.print(f"shard {shard}: {len(mine)} of {len(specs)} cells; expected seconds per shard: "
              + ", ".join(f"{i + 1}: {cells} cells ~{cost:.0f} s" for i, (cells, cost) in enumerate(parts)),
              markup=False, highlight=False)
    if not mine:  # more shards than cells: this job has nothing to do, which is not an error
        err.print(f"shard {shard} is empty ({len(specs)} cells for {shard.count} shards): nothing to run",
                  markup=False, highlight=False)
    return mine


def cmd_doctor(args: argparse.Namespace) -> int:
    from .display import doctor_report
    from .doctor import diagnose
    from .profiles import platform_key

    info = diagnose(require_allocators=args.require_allocators)
    doctor_report(info, _console())
    _console().print(f"baseline key: {platform_key(info['fingerprint'])}-<allocator>-<profile>  "
                     f"(e.g. {platform_key(info['fingerprint'])}-glibc-default)", markup=False, highlight=False)
    return EXIT_USAGE if info["problems"] and info["fatal"] else EXIT_OK


def _project(args: argparse.Namespace) -> Any:
    """The project's gating set: ``--project``, else the working folder's pyproject.toml [tool.memgate], else None."""
    from .project import ProjectError, find

    try:
        return find(getattr(args, "project", None))
    except ProjectError as e:
        raise UsageError(str(e)) from None


def _baselines_dir(args: argparse.Namespace) -> str:
    from pathlib import Path

    if args.baselines:
        return str(args.baselines)
    project = _project(args)
    if project is not None:  # a project with a gating set keeps its own baselines
        return str(project.baselines)
    here = Path("baselines")
    checkout = Path(__file__).resolve().parent.parent / "baselines"
    return str(here if here.is_dir() or not checkout.is_dir() else checkout)


def cmd_check(args: argparse.Namespace) -> int:
    from . import gate
    from .allocators import discover
    from .models import check_model
    from .options import split_list
    from .profiles import PROFILE_NAMES, env_key

    found = discover()
    installed = [f.name for f in found if f.installed]
    project = _project(args)
    if project is not None and (args.models or args.full or args.blas_kernels):
        raise UsageError(f"--models, --full and --blas-kernels choose from memgate's own gating set; "
                         f"{project.file} has its own")
    listed = args.allocators or (",".join(project.allocators) if project and project.allocators else None)
    allocators = _checked(lambda: split_list(listed, [f.name for f in found], "allocator")
                          ) if listed else installed
    absent = [f for f in found if not f.installed and not listed]
    profile = args.profile or (",".join(project.profiles) if project else "default")
    profiles = _checked(lambda: split_list(profile, PROFILE_NAMES, "profile"))
    if project is not None:
        specs = _checked(lambda: project.specs(allocators, profiles, repeat=args.repeat))
    else:
        models = split_list(args.models) if args.models else None
        for model in models or ():
            _checked(functools.partial(check_model, model))
        rows = gate.gating_set(models, full=args.full)
        if not rows:
            raise UsageError("the gating set is empty")
        from .environment import check_blas_kernels, runnable_kernels

        kernels = (runnable_kernels() if args.blas_kernels == "auto"
                   else split_list(args.blas_kernels) if args.blas_kernels else ())
        _checked(functools.partial(check_blas_kernels, kernels))
        specs = _checked(lambda: gate.specs(rows, allocators, profiles, repeat=args.repeat, blas_kernels=kernels))
    if not specs:
        raise UsageError("no cells to run: no allocator installed or selected")
    if args.shard is not None and not args.allocators:
        _console(stderr=True).print("note: --shard without --allocators splits the cells of the allocators "
                                    "installed here; give every job the same --allocators", markup=False)
    specs = _shard(specs, args.shard, _console(stderr=True))
    if not specs:
        return EXIT_OK
    for spec in dict.fromkeys(specs):
        _checked(functools.partial(check, spec))
    baselines = _baselines_dir(args)
    out, err = _console(), _console(stderr=True)
    from .environment import fingerprint

    fp = fingerprint(allocators=False)
    keys = sorted({env_key(fp, s.allocator, s.tunables, s.trim) for s in specs})
    tier = f"the gating set of {project.file}" if project else f"{'full' if args.full else 'quick'} tier"
    out.print(f"memgate check: {len(specs)} cells ({tier}), baselines {baselines}/ for {', '.join(keys)}",
              markup=False, highlight=False)
    outcome = gate.run(specs, jobs=args.jobs or gate.default_jobs(), baselines=baselines, out_dir=args.out,
                       command=["memgate", *args.argv], console=out, err=err, workdir=_workdir(args),
                       require_allocators=args.require_allocators or bool(listed),
                       gate_latency=args.gate_latency, cwd=project.root if project else None)
    gate.comparison_tables(outcome.comparison, out, only_changes=True)
    gate.check_summary(outcome.results, outcome.comparison, out)
    for f in absent:  # "every installed allocator": what is not installed is skipped, and said so
        out.print(f"skipped, not installed: {f.hint}", markup=False, highlight=False)
    gate.comparison_footer(outcome.comparison, out, strict=args.strict)
    out.print(f"results: {outcome.results_path}", markup=False)
    out.print(f"report: {outcome.report_path}", markup=False)
    code = outcome.exit_code(args.strict)
    out.print("[bold red]FAILED[/bold red]" if code else "[bold green]PASSED[/bold green]")
    return code


def cmd_compare(args: argparse.Namespace) -> int:
    from . import gate
    from .baselines import BaselineError, compare
    from .results import ResultsError

    try:
        comparison = compare(args.results, _baselines_dir(args), gate_latency=args.gate_latency)
    except (BaselineError, ResultsError) as e:
        raise UsageError(str(e)) from None
    out = _console()
    gate.comparison_tables(comparison, out, only_changes=args.changes_only)
    gate.comparison_footer(comparison, out, strict=args.strict)
    return EXIT_FOUND if comparison.failed(args.strict) else EXIT_OK


def cmd_baseline(args: argparse.Namespace) -> int:
    from .baselines import BaselineError, merge, update
    from .results import ResultsError, read_results

    try:
        if args.action == "update":
            changes = update([read_results(p) for p in args.results], _baselines_dir(args))
        else:
            if not args.out:
                raise UsageError("merge needs --out DIR (where the merged baseline files go)")
            changes = merge(args.inputs, args.out)
    except (BaselineError, ResultsError) as e:
        raise UsageError(str(e)) from None
    out = _console()
    for change in changes:
        for line in change.lines():
            out.print(line, markup=False, highlight=False)
    if not changes:
        out.print("nothing recorded: no finished cells in the input", markup=False)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from .baselines import BaselineError
    from .report import SUMMARY, report_from_file
    from .results import ResultsError

    try:
        page, notes = report_from_file(args.results, args.out, args.baselines)
    except (ResultsError, BaselineError) as e:
        raise UsageError(str(e)) from None
    except OSError as e:  # the output folder: not writable, a file in the way, disk full
        raise UsageError(f"cannot write the report into {args.out}: {e}") from None
    out = _console()
    for note in notes:
        out.print(f"note: {note}", markup=False, highlight=False)
    out.print(f"summary: {page.parent / SUMMARY}\nreport: {page}", markup=False, highlight=False)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "doctor": cmd_doctor, "run": cmd_run, "matrix": cmd_matrix, "hunt": cmd_hunt,
    "check": cmd_check, "compare": cmd_compare, "baseline": cmd_baseline, "report": cmd_report,
}


if __name__ == "__main__":
    raise SystemExit(main())
