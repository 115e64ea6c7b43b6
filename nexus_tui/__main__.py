"""`nexus`: the dashboard, the demo, and the engine's headless commands under one console script.

The dashboard never imports torch, so the engine's commands (train, resume, generate, eval) replace
this process with `python -m engine ...` (isolated: see protocol.engine_argv) instead of importing it here.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ENGINE_COMMANDS = ("train", "resume", "generate", "eval", "lr-preview")
TORCH_COMMANDS = ("train", "resume", "generate", "eval")
"""The engine commands that need torch (`lr-preview` does not): refused in one line without it."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("run", "shim-path"):
        return _run_with_shim(argv[1:]) if argv[0] == "run" else _print_out(str(_shim_dir()) + "\n")
    if argv and argv[0] in ENGINE_COMMANDS:
        from nexus_core import children  # torch-free; only Nexus's engine is importable there

        if argv[0] in TORCH_COMMANDS and not {"-h", "--help"} & set(argv) and _engine_missing():
            return 2

        children.become(children.nexus_argv("engine", *argv), env=children.child_env({"NEXUS_PROG": "nexus"}))

    parser = argparse.ArgumentParser(
        prog="nexus",
        description="Train small language models and watch and steer them live in the terminal.",
        epilog="Headless engine commands: nexus train|resume|generate|eval --help",
    )
    parser.add_argument("--root", default=None, help="folder holding one folder per run (default: ./runs)")
    # `--root` after a command too (`nexus runs --root DIR`): declared once, shared by those commands.
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument(
        "--root",
        dest="sub_root",
        default=None,
        metavar="DIR",
        help="folder holding the runs (default: --root before the command, ./runs)",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("dashboard", parents=[after], help="open the dashboard on the runs folder (the default)")
    demo = sub.add_parser(
        "demo", parents=[after], help="open the dashboard and launch two contrasting CPU/GPU demo runs"
    )
    demo.add_argument("--steps", type=int, default=0, help="steps per demo run (default: the presets')")
    demo.add_argument(
        "--simulate-gpus",
        type=int,
        default=0,
        metavar="N",
        help="show N simulated GPUs (a driver stand-in built with gcc) on a machine without one",
    )
    sub.add_parser(
        "runs", parents=[after], help="list the runs with state, step, best val loss, device and pid"
    )
    compare = sub.add_parser(
        "compare",
        parents=[after],
        help="print a markdown comparison of runs (results and config differences)",
    )
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run names under the root (or run folders)")
    compare.add_argument(
        "--markdown", action="store_true", help="GitHub markdown (the default and only format)"
    )
    report = sub.add_parser(
        "report", parents=[after], help="write a markdown training report of runs (to stdout or -o FILE)"
    )
    report.add_argument("runs", nargs="+", metavar="RUN", help="run names under the root (or run folders)")
    report.add_argument("-o", "--output", metavar="FILE", help="write the report here instead of to stdout")
    export = sub.add_parser(
        "export", parents=[after], help="write every point of runs' series as CSV or Parquet (long table)"
    )
    export.add_argument("runs", nargs="+", metavar="RUN", help="run names under the root (or run folders)")
    fmt = export.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--csv", action="store_true", help="CSV (to stdout, or -o FILE)")
    fmt.add_argument(
        "--parquet", action="store_true", help="Parquet (needs -o FILE and pip install 'nexus[export]')"
    )
    export.add_argument("-o", "--output", metavar="PATH", help="write here instead of to stdout")
    export.add_argument(
        "--wide", action="store_true", help="W&B's shape: one row per (run, step), one column per key"
    )
    export.add_argument(
        "--meta", metavar="FILE", help="also write each run's config and summary as JSON to FILE"
    )
    imp = sub.add_parser(
        "import-tb",
        parents=[after],
        help="make a TensorBoard log folder into a Nexus run (pip install 'nexus[tensorboard]')",
    )
    imp.add_argument("logdir", metavar="LOGDIR", help="the folder TensorBoard was given as --logdir")
    imp.add_argument("--name", default=None, help="the run's name (default: the log folder's name)")
    chk = sub.add_parser(
        "check",
        help="check run folders against docs/PROTOCOL.md (records, status, hello, "
        "and a live run's control socket); exit 1 if one breaks it",
    )
    chk.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (paths)")
    chk.add_argument("--steer", action="store_true", help="a live run: also ask for a checkpoint and an eval")
    chk.add_argument("--stop", action="store_true", help="a live run: also stop it (it must end `stopped`)")
    sub.add_parser(
        "run",
        help="nexus run [--name NAME] -- python train.py: `import wandb` in it (and in HF's "
        "and Lightning's W&B loggers) reports to Nexus",
        add_help=False,
    )
    sub.add_parser(
        "shim-path", help="print the folder that makes `import wandb` Nexus (put it first on PYTHONPATH)"
    )
    from nexus_tui.jobs.cli import JOB_COMMANDS, add_parsers, run_cli

    add_parsers(sub)  # queue, park, unpark, sweep
    for name in ENGINE_COMMANDS:
        sub.add_parser(
            name, help=f"headless: python -m engine {name} (see nexus {name} --help)", add_help=False
        )
    args = parser.parse_args(argv)
    given = getattr(args, "sub_root", None) or args.root
    root = Path(given or "runs")

    from nexus_core.safefile import describe_os_error  # torch-free, and light: the dashboard's first
    from nexus_core.text import clean_text  # frame waits for what is imported here

    if args.command in JOB_COMMANDS:
        return run_cli(args, root)

    if given and args.command in (None, "dashboard", "runs") and not root.is_dir():
        # A folder named on purpose that is not there is a typo far more often than a wish: one line,
        # nothing created. (`nexus demo --root DIR` makes it: it is about to start runs there.)
        what = "is not a folder" if root.exists() else "does not exist"
        print(
            clean_text(
                f"error: runs folder {root} {what}: check the path, or create it (mkdir -p {root}); "
                "`nexus demo --root DIR` creates it"
            ),
            file=sys.stderr,
        )
        return 2

    if args.command == "runs":
        from nexus_tui.documents.runs_index import format_runs_table, scan_runs

        try:
            table = format_runs_table(scan_runs(root))
        except OSError as e:  # the root itself cannot be listed (too long a name, no permission)
            print(clean_text(f"error: {describe_os_error(e)}"), file=sys.stderr)
            return 2
        return _print_out(clean_text(table, multiline=True) + "\n")

    if args.command == "compare":
        from nexus_tui.documents.comparison import UnknownRunError, comparison_markdown, load_runs

        try:
            store, names = load_runs(root, args.runs, warn=_warn_run)
        except UnknownRunError as e:
            print(f"error: {clean_text(e)}", file=sys.stderr)
            return 2
        except OSError as e:  # a metrics file we may not (or must not) read: say which, no traceback
            print(clean_text(f"error: cannot read {describe_os_error(e)}"), file=sys.stderr)
            return 2
        # Run names and config values come from run folders: cleaned again at the last step to stdout.
        return _print_out(clean_text(comparison_markdown(store, names), multiline=True))

    if args.command == "report":
        return _report(root, args.runs, args.output)

    if args.command == "export":
        return _export(
            root, args.runs, "parquet" if args.parquet else "csv", args.output, args.wide, args.meta
        )

    if args.command == "check":
        from nexus_core.check import check

        failed = False
        for run_dir in args.run_dirs:
            result = check(Path(run_dir), steer=args.steer, stop=args.stop)
            failed = failed or not result.ok
            _print_out(clean_text("\n".join(result.summary()), multiline=True) + "\n")
        return 1 if failed else 0

    if args.command == "import-tb":
        return _import_tb(root, args.logdir, args.name)

    if args.command == "demo" and _engine_missing():
        return 2
    if not root.is_dir():
        try:
            root.mkdir(parents=given is None)  # ./runs on a fresh clone; a named folder's parent must exist
        except OSError as e:
            print(
                clean_text(f"error: cannot create runs folder {root}: {describe_os_error(e)}"),
                file=sys.stderr,
            )
            return 2
    # Long histories with no columnar cache yet start decoding in a child process now, on the other
    # core, while this one imports Textual and draws the first frame.
    from nexus_tui.live.prebuild import Prebuild

    prebuild = Prebuild.start(root)
    simulation = None
    if getattr(args, "simulate_gpus", 0):
        from nexus_tui.telemetry.simulate import Simulation, SimulationError

        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nexus" / "simulated-gpus"
        try:  # before the dashboard's telemetry looks for the driver: it finds the stand-in
            simulation = Simulation(max(1, min(args.simulate_gpus, 8)), root, cache)
        except (SimulationError, OSError) as e:
            print(clean_text(f"error: {e}"), file=sys.stderr)
            return 2
    try:
        from nexus_tui.app import make_app

        app = make_app(
            root=root, demo=args.command == "demo", demo_steps=getattr(args, "steps", 0), prebuild=prebuild
        )
        app.run()
    finally:
        if prebuild is not None:
            prebuild.close()
        if simulation is not None:
            simulation.close()
    return app.return_code or 0


def _shim_dir() -> Path:
    """nexus/shim, found without importing the reporter (numpy and all) into this process."""
    import importlib.util

    spec = importlib.util.find_spec("nexus")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]).resolve() / "shim" if locations else Path("nexus-not-installed")


def _run_with_shim(argv: list[str]) -> int:
    """`nexus run [--root R] [--name NAME] -- command...`: the command replaces this process with the
    shim first on PYTHONPATH (so `import wandb` is Nexus) and, with --name, its run folder chosen."""
    parser = argparse.ArgumentParser(
        prog="nexus run",
        description="Run a script that logs to W&B (or whose libraries do) as a Nexus run, unchanged.",
    )
    parser.add_argument("--root", default="runs", help="the runs folder (default: ./runs)")
    parser.add_argument("--name", help="the run's folder name (default: what the script's init() says)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- python train.py ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("error: nothing to run: nexus run -- python train.py", file=sys.stderr)
        return 2
    shim = _shim_dir()
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(shim), *parts]),
        "NEXUS_WANDB": "1",
        "NEXUS_ROOT": str(Path(args.root).resolve()),
    }
    if args.name:
        from nexus_core.protocol import RUN_DIR_ENV, check_run_name

        if error := check_run_name(args.name):
            print(f"error: {error}", file=sys.stderr)
            return 2
        env[RUN_DIR_ENV] = str(Path(args.root) / args.name)
    try:
        from nexus_core import children

        children.become(command, env=env, search_path=True)
    except OSError as e:
        print(f"error: cannot run {command[0]!r}: {e.strerror or e}", file=sys.stderr)
        return 127
    return 0  # not reached


def _warn_run(run: str, text: str) -> None:
    """What reading a run skipped, on stderr (the table on stdout stays pasteable)."""
    from nexus_core.protocol import clean_text

    print(clean_text(f"warning: {run}: {text}"), file=sys.stderr)


def _report(root: Path, names: list[str], output: str | None) -> int:
    """`nexus report`: one markdown document; a bad name or folder is one `error:` line and exit 2."""
    from nexus_core.protocol import clean_text, describe_os_error
    from nexus_core.safefile import write_through
    from nexus_tui.documents.comparison import UnknownRunError
    from nexus_tui.documents.report.document import build_report

    try:
        text = build_report(root, names)
    except UnknownRunError as e:
        print(f"error: {clean_text(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a metrics file we may not (or must not) read: say which, no traceback
        print(
            clean_text(f"error: cannot read {describe_os_error(e) if e.filename else f'a run folder: {e}'}"),
            file=sys.stderr,
        )
        return 2
    if output is None:
        return _print_out(text)
    try:
        write_through(output, text)
    except OSError as e:
        print(clean_text(f"error: cannot write {output}: {e.strerror or e}"), file=sys.stderr)
        return 2
    print(f"wrote {output}", file=sys.stderr)
    return 0


def _export(
    root: Path, names: list[str], kind: str, output: str | None, wide: bool = False, meta: str | None = None
) -> int:
    """`nexus export`: every point, one long table (or wide, W&B's shape), config and summary with
    --meta; any failure is one `error:` line and exit 2."""
    from nexus_core.safefile import write_through, writing_through
    from nexus_tui.documents import export as X
    from nexus_tui.documents import export_wide as W
    from nexus_tui.documents.comparison import UnknownRunError
    from nexus_tui.documents.report.document import (
        load,  # the named runs, folded once, as the report folds them
    )

    if kind == "parquet" and output is None:
        print("error: Parquet is binary: give a file with -o PATH", file=sys.stderr)
        return 2
    try:
        runs = load(root, names)
        if meta is not None:
            text = W.meta_json(runs)
            write_through(meta, text)
        if wide and kind == "parquet":
            import pyarrow.parquet as pq

            table = W.wide_parquet_table(runs)
            with writing_through(str(output)) as f:  # parquet: an output was required above
                pq.write_table(table, f)
            count = table.num_rows
        elif wide and output is not None:
            X.csv_through(Path(output), lambda f: W.write_wide_csv(f, runs))
            count = len(W.wide_table(runs)[1])
        elif kind == "parquet" and output is not None:  # (parquet with no output was refused above)
            count = X.write_parquet(Path(output), runs)
        elif output is not None:
            count = X.write_csv_file(Path(output), runs)
        else:
            try:
                (W.write_wide_csv if wide else X.write_runs_csv)(sys.stdout, runs)
                sys.stdout.flush()
            except BrokenPipeError:
                _print_out("")
            return 0
    except (UnknownRunError, X.ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f"error: cannot {'write' if output else 'read'} {e.filename or output or 'a run folder'}: "
            f"{e.strerror or e}",
            file=sys.stderr,
        )
        return 2
    print(f"wrote {count} {'rows' if wide else 'points'} to {output}", file=sys.stderr)
    return 0


def _import_tb(root: Path, logdir: str, name: str | None) -> int:
    """`nexus import-tb`: a finished run folder per run in LOGDIR, or one `error:` line, exit 2 and no folder."""
    from nexus_tui.documents.import_tb import ImportTBError, import_logdir

    try:
        imported = import_logdir(logdir, root, name)
    except ImportTBError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write {e.filename or root}: {e.strerror or e}", file=sys.stderr)
        return 2
    for target, scalars in imported:
        steps = len(scalars.points)
        torn = f" (the cut-off last record of {', '.join(scalars.torn)} was left out)" if scalars.torn else ""
        kept = len(scalars.extra.records)
        more = f" and {kept} histograms/images/texts" if kept else ""
        print(
            f"imported {steps} steps{more} from {scalars.files} event file(s) into {target}{torn}",
            file=sys.stderr,
        )
    return 0


def _engine_missing() -> bool:
    """Say in one line (and return True) when this install cannot train: a dashboard-only install."""
    from nexus_core.engine_deps import engine_missing

    missing = engine_missing()
    if missing:
        print(f"error: {missing}", file=sys.stderr)
    return bool(missing)


def _print_out(text: str) -> int:
    """Print a listing; a reader that stops early (`nexus runs | head -1`) is normal, not an error."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain again flushing stdout at exit: point it at /dev/null first.
        from nexus_core.safefile import open_devnull_fd

        devnull = open_devnull_fd()
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


if __name__ == "__main__":
    sys.exit(main())
