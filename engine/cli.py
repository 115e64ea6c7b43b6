"""`python -m engine train|resume|generate|eval|lr-preview`: parse, validate, then hand over.

Torch is imported only inside the commands that need it, after the arguments and config are
checked: a typo costs a 0.1 s one-line error instead of a 2 s import first, and `lr-preview` (which the
dashboard's ramp dialog calls on every keystroke) never imports torch at all. Every error a user can
cause is an nexus_core.errors.NexusError, printed as one `error: ...` line with exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

from engine import checkpoint as ckpt
from engine.runlock import hold_run_folder, refuse_if_in_use
from nexus_core import children
from nexus_core import config as C
from nexus_core import protocol as P
from nexus_core.engine_deps import ENGINE_MODULES, missing_engine_message
from nexus_core.errors import ConfigError, NexusError
from nexus_core.names import RUN_NAME_RULE, run_name_ok
from nexus_core.safefile import atomic_write
from nexus_core.trust import TRUST_FLAG
from nexus_core.trust import check as trust_check

EXIT_USER_ERROR = 2
PROG_ENV = "NEXUS_PROG"
"""Set by the `nexus` console script before it execs us, so messages name the command the user typed."""


TRUST_HELP = (
    "act on a run folder that is not yours or reads data from outside your data roots (see docs/SECURITY.md)"
)


def prog() -> str:
    """The command a user would type to reach this engine: `nexus` when started through the console
    script (it sets NEXUS_PROG), else `python -m engine`. Advice in errors must be copy-pasteable."""
    return os.environ.get(PROG_ENV, "").strip() or "python -m engine"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is our one-line `error: ...` too."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=prog(), description="The Nexus training engine (headless).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="start a new run")
    train.add_argument("--preset", help=f"a shipped preset: {', '.join(C.preset_names())} (default tiny)")
    train.add_argument("--config", help="a TOML config file, applied over the preset")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one value, e.g. --set optim.lr=1e-3 (repeatable)",
    )
    train.add_argument("--steps", type=int, help="total steps of the schedule (train.steps)")
    train.add_argument("--name", help="run name (default: the run folder's name)")
    train.add_argument("--run-dir", help="run folder (default: runs/NAME)")
    train.add_argument(
        "--check",
        action="store_true",
        help="only validate the config, overrides and run folder; create nothing, print ok",
    )
    _common(train)

    resume = sub.add_parser("resume", help="continue a run from a checkpoint")
    resume.add_argument("--run-dir", required=True)
    resume.add_argument(
        "--from", dest="ckpt", help="checkpoint: latest (default), best, step_000200, 200 or a path"
    )
    resume.add_argument("--steps", type=int, help="new total steps (extends the schedule)")
    resume.add_argument("--lr", type=float, help="target LR, reached linearly over --ramp-steps")
    resume.add_argument("--ramp-steps", type=int, help="steps of the linear LR ramp (0 = jump)")
    resume.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)
    _common(resume)

    gen = sub.add_parser("generate", help="print a sample from a checkpoint")
    gen.add_argument("--run-dir", required=True)
    gen.add_argument("--prompt", default="")
    gen.add_argument("--tokens", type=int, default=200)
    gen.add_argument("--temperature", type=float, default=0.8)
    gen.add_argument("--top-k", type=int, default=40)
    gen.add_argument("--seed", type=int, help="repeatable sample (default: a fresh one)")
    gen.add_argument("--from", dest="ckpt")
    gen.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (default: cpu)")
    gen.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)

    ev = sub.add_parser("eval", help="print held-out CE loss and perplexity of a checkpoint")
    ev.add_argument("--run-dir", required=True)
    ev.add_argument("--from", dest="ckpt")
    ev.add_argument("--batches", type=int, help="eval batches (default: the run's train.eval_batches)")
    ev.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (default: cpu)")
    ev.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)

    prev = sub.add_parser("lr-preview", help="print the LR a resume with a ramp would follow, as JSON")
    prev.add_argument("--run-dir", required=True)
    prev.add_argument("--from", dest="ckpt")
    prev.add_argument("--lr", type=float, required=True)
    prev.add_argument("--ramp-steps", type=int, required=True)
    prev.add_argument("--steps", type=int, help="new total steps (default: the run's total)")
    prev.add_argument("--points", type=int, default=200)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--threads", type=int, help="torch CPU threads (0 = torch's default)")
    p.add_argument(
        "--stop-at", type=int, help="train only up to this step of the schedule, then checkpoint and exit"
    )
    p.add_argument("--metrics-fd", type=int, help="also stream records to this inherited pipe fd")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="processes for this one run (torchrun; one per GPU with --device cuda, gloo on the CPU)",
    )


def main(argv: list[str] | None = None) -> int:
    args = None
    if argv is None:  # a real engine process (not a test calling main): printing must never end it
        from engine.report import protect_output

        protect_output()
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        return COMMANDS[args.command](args)
    except NexusError as e:
        reason = P.clean_text(e)  # it may quote a planted folder or checkpoint name: no raw escapes
        print(f"error: {reason}", file=sys.stderr, flush=True)
        _tell_pipe(args, reason)
        return EXIT_USER_ERROR
    except OSError as e:  # a path the user gave or a run folder holds: too long, a FIFO, unreadable
        reason = P.clean_text(P.describe_os_error(e))
        print(f"error: {reason}", file=sys.stderr, flush=True)
        _tell_pipe(args, reason)
        return EXIT_USER_ERROR
    except ModuleNotFoundError as e:
        if e.name not in ENGINE_MODULES:
            raise
        message = missing_engine_message(e.name)  # a dashboard-only install (no `engine` extra)
        print(f"error: {P.clean_text(message)}", file=sys.stderr, flush=True)
        _tell_pipe(args, message)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _tell_pipe(args: argparse.Namespace | None, reason: str) -> None:
    """A launcher reading the pipe learns why the run never started (there is no metrics file): it
    `failed`, with the reason (the engine saw why; `crashed` is for a run that ended without saying)."""
    fd = getattr(args, "metrics_fd", None)
    if fd is None:
        return
    now = time.time()
    alert = {
        "type": P.ALERT,
        "kind": "crash",
        "step": 0,
        "text": f"could not start: {reason}",
        "seq": -1,
        "time": now,
    }
    state = {
        "type": P.STATE,
        "state": P.FAILED,
        "step": 0,
        "reason": reason,
        "exit_code": EXIT_USER_ERROR,
        "seq": -1,
        "time": now,
    }
    with contextlib.suppress(OSError):
        os.write(fd, P.pack(alert) + P.pack(state))


# -- train and resume ----------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    cfg = C.load_preset(args.preset or "tiny") if args.preset or not args.config else C.Config()
    if args.config:
        cfg = C.from_mapping(C.read_toml(args.config), origin=args.config, base=cfg)
    for text in args.set:
        C.apply_override(cfg, text)
    if args.steps is not None:
        cfg.train.steps = args.steps
    _apply_common(cfg, args)
    if args.name is not None and not run_name_ok(args.name):
        raise ConfigError(f"--name {args.name!r}: use {RUN_NAME_RULE}")
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / (args.name or _default_name(cfg))
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder; give a folder for the run")
    cfg.name = args.name or run_dir.name
    cfg.validate()
    if args.stop_at is not None and args.stop_at > cfg.train.steps:
        raise ConfigError(f"--stop-at {args.stop_at} is past the schedule's {cfg.train.steps} steps")
    _check_source(cfg)
    if args.nproc > 1:
        _relaunch_under_torchrun(args, run_dir)
    if _under_torchrun() and not (args.run_dir or args.name):
        raise ConfigError("under torchrun give --run-dir or --name: every rank must pick the same run folder")
    metrics = run_dir / P.METRICS_FILE
    _refuse_used(run_dir, metrics)  # before anything is created; again under the lock below
    if args.check:  # the dashboard's launch form asks this before it creates anything (torch-free)
        print(
            P.clean_text(f"ok: {run_dir} would train {cfg.preset or 'a config'} for {cfg.train.steps} steps")
        )
        return 0
    from engine.distributed import launch_rank

    writes = launch_rank() == 0  # under torchrun, rank 0 alone writes the run folder
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if writes:
            hold_run_folder(run_dir)  # before anything is written: a second engine stops here
            _refuse_used(run_dir, metrics, locked_by_us=True)  # under the lock: no other engine writes now
            _write_config(run_dir, cfg)
    except OSError as e:
        raise ConfigError(f"cannot write the run folder {run_dir}: {e.strerror or e}") from None

    from engine.trainer import Trainer

    trainer = Trainer(cfg, run_dir, pipe_fd=args.metrics_fd, stop_at=args.stop_at)
    if writes:
        _write_config(run_dir, cfg)  # again: the tokenizer resolved model.vocab_size
    return _ended(trainer.run())


def _refuse_used(run_dir: Path, metrics: Path, locked_by_us: bool = False) -> None:
    if not locked_by_us:
        refuse_if_in_use(run_dir)  # a live engine is named first: "already has metrics" would hide it
    if metrics.exists() and metrics.stat().st_size > 0:
        raise ConfigError(
            f"run folder {run_dir} already has metrics: use `{prog()} resume "
            f"--run-dir {run_dir}`, or another --run-dir"
        )


def cmd_resume(args: argparse.Namespace) -> int:
    run_dir = _existing_run(args.run_dir, write=True, command="resume", trust=args.trust_foreign)
    rank = int(os.environ.get("RANK", "0")) if _under_torchrun() else 0
    if (
        args.nproc <= 1 and rank == 0
    ):  # under torchrun rank 0 holds it; with --nproc, rank 0 after the relaunch
        hold_run_folder(run_dir)
    cfg = _run_config(run_dir)
    _apply_common(cfg, args)
    cfg.validate()
    if args.lr is not None and args.ramp_steps is None:
        raise ConfigError("--lr needs --ramp-steps K (the steps to reach it; 0 jumps straight there)")
    if args.ramp_steps is not None and args.lr is None:
        raise ConfigError("--ramp-steps needs --lr TARGET")
    _check_lr(args.lr)
    path = ckpt.resolve_checkpoint(run_dir, args.ckpt)
    ckpt.read_meta(path)  # a corrupt checkpoint fails here, before torch loads
    if args.nproc > 1:
        _relaunch_under_torchrun(args, run_dir)

    from engine.trainer import ResumeSpec, Trainer

    spec = ResumeSpec(path, args.steps, args.lr, args.ramp_steps or 0)
    return _ended(Trainer(cfg, run_dir, pipe_fd=args.metrics_fd, stop_at=args.stop_at, resume=spec).run())


def _check_lr(lr: float | None) -> None:
    """--lr within the limits a live `ramp` has (protocol.COMMAND_ARGS): one table for both paths."""
    if lr is not None and (err := P.COMMAND_ARGS[P.RAMP]["target_lr"].error("--lr", "", lr)):
        raise ConfigError(err.replace("--lr  must", "--lr must"))


def _ended(code: int) -> int:
    """A torchrun worker leaves at once (see distributed.exit_worker); a plain run returns its code."""
    if _under_torchrun():
        from engine.distributed import exit_worker

        exit_worker(code)
    return code


def _under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def _relaunch_under_torchrun(args: argparse.Namespace, run_dir: Path) -> None:
    """`--nproc N`: replace this process by `torchrun --standalone --nproc-per-node N -m engine ...`
    with the same arguments (and the run folder made explicit, so every rank picks the same one)."""
    if _under_torchrun():
        raise ConfigError(
            "--nproc starts torchrun itself; under torchrun give --nproc-per-node to torchrun instead"
        )
    if args.metrics_fd is not None:
        raise ConfigError(
            "--metrics-fd cannot reach torchrun's worker processes; leave it out and follow "
            f"{run_dir / P.METRICS_FILE} (the dashboard attaches to the run folder)"
        )
    rest, skip = [], False
    for a in args.argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    if args.command == "train" and not args.run_dir:
        rest += ["--run-dir", str(run_dir)]
    # Isolated like every engine launch (protocol.engine_argv): no worker imports from the cwd.
    cmd = [
        children.PYTHON,
        "-I",
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={args.nproc}",
        "--no-python",
        *children.nexus_argv("engine", *rest),
    ]
    sys.stdout.flush()
    children.become(cmd, env=children.child_env())


def _apply_common(cfg: C.Config, args: argparse.Namespace) -> None:
    if args.metrics_fd is not None:
        try:
            os.fstat(args.metrics_fd)
        except OSError:
            fd, args.metrics_fd = args.metrics_fd, None
            raise ConfigError(f"--metrics-fd {fd} is not an open file descriptor of this process") from None
    if args.nproc < 1:
        raise ConfigError(f"--nproc must be 1 or more, got {args.nproc}")
    if args.stop_at is not None and args.stop_at < 1:
        raise ConfigError(f"--stop-at must be a step of 1 or more, got {args.stop_at}")
    if args.device:
        cfg.train.device = args.device
    if args.threads is not None:
        cfg.train.threads = args.threads


def _default_name(cfg: C.Config) -> str:
    return f"{cfg.preset or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"


def _check_source(cfg: C.Config) -> None:
    """A missing corpus path is caught before torch is imported."""
    src = cfg.data.source
    if src != "stdlib" and not Path(src).expanduser().exists():
        from nexus_core.errors import DataError

        raise DataError(
            f"data.source {src!r} does not exist; give 'stdlib', a text file, or a folder of text files"
        )


def _write_config(run_dir: Path, cfg: C.Config) -> None:
    atomic_write(run_dir / P.CONFIG_FILE, cfg.to_toml(), within=run_dir)


def _existing_run(run_dir: str, write: bool = False, command: str | None = None, trust: bool = False) -> Path:
    """The run folder a command acts on; ConfigError when it is none, or (for `command`) when it is
    foreign and the user did not say --trust-foreign (nexus_core.trust: a foreign folder is data)."""
    path = Path(run_dir)
    if not (path / P.CONFIG_FILE).exists():
        raise ConfigError(f"{path} is not a run folder (no {P.CONFIG_FILE}); check --run-dir")
    if write and not os.access(path, os.W_OK):
        raise ConfigError(f"run folder {path} is not writable")
    if command is not None and not trust and (verdict := trust_check(path, command)):
        raise ConfigError(P.clean_text(f"{path}: {verdict.line(command)}"))
    return path


def _run_config(run_dir: Path) -> C.Config:
    return C.load_toml(run_dir / P.CONFIG_FILE)


# -- using a checkpoint --------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    run_dir = _existing_run(args.run_dir, command="generate", trust=args.trust_foreign)
    cfg = _run_config(run_dir)
    path = ckpt.resolve_checkpoint(run_dir, args.ckpt)
    from engine.sampling import generate

    model, tokenizer, device = ckpt.load_for_inference(cfg, run_dir, path, args.device or "cpu")
    text = generate(
        model, tokenizer, args.prompt, args.tokens, args.temperature, args.top_k, device, args.seed
    )
    print(P.clean_text(args.prompt + text, multiline=True))  # a model can emit ESC bytes too
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    run_dir = _existing_run(args.run_dir, command="eval", trust=args.trust_foreign)
    cfg = _run_config(run_dir)
    path = ckpt.resolve_checkpoint(run_dir, args.ckpt)

    from engine.data import eval_batches, load_corpus
    from engine.device import autocast_dtype
    from engine.trainer import held_out_ce

    model, _, device = ckpt.load_for_inference(cfg, run_dir, path, args.device or "cpu")
    corpus = load_corpus(cfg.data, run_dir, cfg.model.seq_len)
    n = args.batches or cfg.train.eval_batches
    if n < 1:
        raise ConfigError(f"--batches must be at least 1, got {n}")
    batches = eval_batches(corpus.val, cfg.train.batch_size, cfg.model.seq_len, n, cfg.train.seed, device)
    ce = held_out_ce(model, batches, device, autocast_dtype(device, cfg.train.dtype))
    print(
        f"{P.clean_text(path.name)}: val_loss {ce:.4f}  val_ppl {math.exp(min(ce, 700.0)):.3f}  "
        f"(pure CE over {n} batches of {cfg.train.batch_size}x{cfg.model.seq_len} tokens; "
        f"unigram entropy {corpus.unigram_entropy:.3f})"
    )
    return 0


def cmd_lr_preview(args: argparse.Namespace) -> int:
    """JSON of the LR a ramp would follow: nexus_core.lr_preview, the same code the dashboard runs."""
    from nexus_core.lr_preview import lr_preview

    run_dir = _existing_run(args.run_dir)
    _check_lr(args.lr)
    got = lr_preview(run_dir, args.lr, args.ramp_steps, args.steps, args.ckpt, args.points)
    print(json.dumps({"step": got.steps, "lr": got.lrs, "start_step": got.start_step}))
    return 0


COMMANDS = {
    "train": cmd_train,
    "resume": cmd_resume,
    "generate": cmd_generate,
    "eval": cmd_eval,
    "lr-preview": cmd_lr_preview,
}
