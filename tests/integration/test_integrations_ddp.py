"""The adapters under DDP: two real torchrun ranks on the CPU (gloo), steered through rank 0's real
control socket. Stop ends both ranks, checkpoint and eval (collectives) run on both, a ramp gives both
the same LR at every step (and so the same weights), and a pause outlasts the process group's timeout.

This file is also the ranks' script: `torchrun ... tests/test_integrations_ddp.py MODE` runs
`worker(MODE)` on each rank. Each rank writes `rank-R.txt` in the run folder, one line per optimizer
step: the step, the LR the step used (seen by a step pre-hook after Nexus's) and the weights' sum.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STEPS = 100_000
DEADLINE = 240.0
"""Seconds any one condition may take on a loaded 2-core box (two ranks importing transformers...)."""


# -- the ranks' side ------------------------------------------------------------------------------


class Lines:
    """This rank's `rank-R.txt`: the LR each optimizer step used, and the weights after it."""

    def __init__(self, run_dir: Path, rank: int, params: Callable[[], Any]) -> None:
        self.file = open(run_dir / f"rank-{rank}.txt", "a")  # noqa: SIM115 - open for the process's life
        self.params = params
        self.lr = math.nan

    def hook(self, optimizer: Any) -> None:
        """Registered after Nexus's pre-hook, so it sees the LR the update really uses."""
        optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: setattr(self, "lr", opt.param_groups[0]["lr"])
        )

    def write(self, step: int) -> None:
        import torch

        with torch.no_grad():
            total = sum(float(p.double().sum()) for p in self.params())
        self.file.write(f"{step} {self.lr!r} {total!r}\n")
        self.file.flush()


def hf_worker(run_dir: Path) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    from hf_trainer import TEXT, Chunks, char_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from nexus.integrations._common import innermost_optimizer
    from nexus.integrations.huggingface import NexusCallback

    args = TrainingArguments(
        output_dir=str(run_dir / "hf"),
        max_steps=STEPS,
        per_device_train_batch_size=2,
        per_device_eval_batch_size=2,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        ddp_backend="gloo",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    tokenizer = char_tokenizer(TEXT)
    ids = tokenizer(TEXT)["input_ids"]
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=64,
        )
    )
    lines = Lines(run_dir, args.process_index, model.parameters)

    class Record(TrainerCallback):
        def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
            lines.hook(innermost_optimizer(optimizer))

        def on_step_end(self, args, state, control, **kwargs):
            lines.write(state.global_step)
            time.sleep(0.05)  # keeps the record count modest: the test reads the whole file while it waits

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Chunks(ids),
        eval_dataset=Chunks(ids[:200]),
        processing_class=tokenizer,
        callbacks=[NexusCallback(), Record()],
    )
    trainer.train()
    (run_dir / f"loop-ended-{args.process_index}").write_text(str(trainer.state.global_step))


def lightning_worker(run_dir: Path) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    import lightning.pytorch as pl
    from lightning_module import CHARS, CharLSTM, loader

    from nexus.integrations._common import innermost_optimizer
    from nexus.integrations.lightning import NexusCallback, NexusLogger

    pl.seed_everything(0, verbose=False)
    module = CharLSTM(len(CHARS))
    rank = int(os.environ["RANK"])
    lines = Lines(run_dir, rank, module.parameters)

    class Record(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            lines.hook(innermost_optimizer(trainer.optimizers[0]))

        def on_train_batch_end(self, trainer, *args):
            lines.write(trainer.global_step)
            time.sleep(0.05)

    trainer = pl.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=2,
        check_val_every_n_epoch=10_000,
        num_sanity_val_steps=0,
        logger=NexusLogger(),
        callbacks=[NexusCallback(), Record()],
    )
    trainer.fit(module, loader(), loader())
    (run_dir / f"loop-ended-{rank}").write_text(str(trainer.global_step))


def plain_worker(run_dir: Path) -> None:
    """A hand-written loop under torchrun with `RankSteering`, whose decisions travel on a gloo group
    that times out after 6 s (the default group's 30 minutes, shortened): a pause longer than that
    must not kill rank 1."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    import nexus
    from nexus.ranks import RankSteering

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    group = dist.new_group(backend="gloo", timeout=timedelta(seconds=6))
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    run = nexus.init(run_dir=run_dir, total_steps=STEPS) if rank == 0 else None
    if run is not None:
        run.watch(opt)
    steer = RankSteering(run, opt, lambda decision: None, group=group)
    lines = Lines(run_dir, rank, model.parameters)
    lines.hook(opt)
    for step in range(1, STEPS):
        loss = ((model(torch.randn(16, 8)) - 1.0) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= 2
        opt.step()
        if run is not None:
            run.log({"loss": loss.detach()}, step=step)
        lines.write(step)
        time.sleep(0.05)
        if steer.step_end().stop:
            break
    (run_dir / f"loop-ended-{rank}").write_text(str(step))
    if run is not None:
        run.finish()
    dist.destroy_process_group()


def worker(mode: str) -> None:
    import torch

    torch.set_num_threads(1)
    run_dir = Path(os.environ["NEXUS_RUN_DIR"])
    {"hf": hf_worker, "lightning": lightning_worker, "plain": plain_worker}[mode](run_dir)


if __name__ == "__main__":
    worker(sys.argv[1])
    sys.exit(0)


# -- the test's side ------------------------------------------------------------------------------

import pytest  # noqa: E402 - the ranks above need none of the test machinery

from nexus_core import protocol as P  # noqa: E402

pytestmark = pytest.mark.slow


class Ranks:
    """`torchrun --nproc-per-node 2 this_file MODE` in a session of its own (killed whole on failure)."""

    def __init__(self, run_dir: Path, mode: str) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True)
        self.log_path = run_dir.parent / f"{run_dir.name}.out"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            P.RUN_DIR_ENV: str(run_dir),
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc-per-node",
                "2",
                __file__,
                mode,
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=run_dir.parent,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def until(self, what: str, got: Callable[[], Any], timeout: float = DEADLINE) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = got()
            if value:
                return value
            if self.proc.poll() is not None:
                value = got()
                if value:
                    return value
                raise AssertionError(
                    f"the ranks exited ({self.proc.returncode}) before {what}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:g}s:\n{self.output()}")
            time.sleep(0.1)

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        path = self.run_dir / P.METRICS_FILE
        if not path.exists():
            return []
        return [r.to_dict() for r in P.read_records(path).records if kind is None or r.type == kind]

    def record(self, what: str, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        return self.until(what, lambda: next((r for r in self.records() if pred(r)), None))

    def lines(self, rank: int) -> list[tuple[int, float, float]]:
        path = self.run_dir / f"rank-{rank}.txt"
        if not path.exists():
            return []
        rows = [line.split() for line in path.read_text().splitlines()]
        return [(int(r[0]), float(r[1]), float(r[2])) for r in rows if len(r) == 3]

    def last_steps(self) -> tuple[int, int]:
        return tuple((self.lines(r) or [(0, 0.0, 0.0)])[-1][0] for r in (0, 1))  # type: ignore[return-value]

    def close(self) -> None:
        """End torchrun and its ranks: torchrun starts each worker in a session of its own, so killing
        torchrun's group alone left a failed test's ranks training on (seen in CI)."""
        import psutil

        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


@pytest.fixture
def ranks(runs_root: Path):
    started: list[Ranks] = []

    def start(mode: str) -> Ranks:
        started.append(Ranks(runs_root / mode, mode))
        return started[-1]

    yield start
    for r in started:
        r.close()


def command(run_dir: Path, cmd: str, **args: Any) -> dict[str, Any]:
    reply = P.send_command(run_dir, cmd, timeout=30.0, **args)
    assert reply["ok"], reply
    return reply


def pause_holds_both(r: Ranks, act: str, **args: Any) -> dict[str, Any]:
    """Pause; while paused rank 0 still answers `act`, and neither rank takes a step; resume and both go on."""
    command(r.run_dir, "pause")
    paused = r.record("the paused state", lambda x: x["type"] == P.STATE and x["state"] == P.PAUSED)
    held = r.last_steps()
    command(r.run_dir, act, **args)
    kind = {"generate": P.SAMPLE, "checkpoint": P.CKPT, "eval": P.EVAL}[act]
    done = r.record(f"the {act} record", lambda x: x["type"] == kind)
    assert r.last_steps() == held and P.read_status(r.run_dir)["state"] == P.PAUSED
    command(r.run_dir, "resume")
    r.record(
        "running again",
        lambda x: x["type"] == P.STATE and x["state"] == P.RUNNING and x["seq"] > paused["seq"],
    )
    r.until("both ranks stepping again", lambda: min(r.last_steps()) > max(held) + 1)
    return done


def same_lr_and_weights(r: Ranks, target: float) -> None:
    """Ramp to `target` over 3 steps: at every step both ranks used the same LR (the ramp's values
    included) and hold the same weights."""
    reply = command(r.run_dir, "ramp", target_lr=target, ramp_steps=3)
    assert "every rank" in reply["text"]
    got = r.record(
        "a step at the target LR", lambda x: x["type"] == P.METRIC and math.isclose(x["lr"], target)
    )
    r.until("both ranks past the ramp", lambda: min(r.last_steps()) >= got["step"] + 2)
    zero, one = r.lines(0), r.lines(1)
    n = min(len(zero), len(one))
    assert [s for s, _, _ in zero[:n]] == [s for s, _, _ in one[:n]]
    assert [lr for _, lr, _ in zero[:n]] == [lr for _, lr, _ in one[:n]]  # the very same numbers
    assert all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
        for (_, _, a), (_, _, b) in zip(zero[:n], one[:n], strict=True)
    )
    lrs = [lr for _, lr, _ in zero[:n]]
    at = lrs.index(target)
    assert lrs[at - 3] < lrs[at - 2] < lrs[at - 1] < target, lrs[at - 4 : at + 1]  # linear, over 3 steps


def stop_ends_both(r: Ranks) -> None:
    command(r.run_dir, "stop")
    end = r.record("the end record", lambda x: x["type"] == P.STATE and x["state"] in P.FINAL_STATES)
    assert end["state"] == P.STOPPED, r.output()
    r.until("torchrun's exit", lambda: r.proc.poll() is not None)
    assert r.proc.returncode == 0, r.output()
    ended = [(r.run_dir / f"loop-ended-{rank}").read_text() for rank in (0, 1)]
    assert ended[0] == ended[1], ended  # both left the loop after the same step


def test_hugging_face_trainer_on_two_ranks(ranks) -> None:
    pytest.importorskip("transformers")
    r = ranks("hf")
    hello = r.record("the hello", lambda x: x["type"] == P.HELLO and "ramp" in x.get("commands", ()))
    assert {"checkpoint", "eval", "generate", "stop", "pause"} <= set(hello["commands"])
    r.record("step 3", lambda x: x["type"] == P.METRIC and x["step"] >= 3)
    # rank 0 alone reports (a hello is filed again when what it says changes: its LR schedule, a key)
    assert len({h["pid"] for h in r.records(P.HELLO)}) == 1

    # a checkpoint asked for while paused: saved after the resume, by both ranks (each its RNG state)
    ck = pause_holds_both(r, "checkpoint")
    assert ck["path"].startswith("hf/checkpoint-")
    r.until(
        "the checkpoint's files from both ranks",
        lambda: all(
            (r.run_dir / ck["path"] / f).is_file()
            for f in ("trainer_state.json", "rng_state_0.pth", "rng_state_1.pth")
        ),
    )
    pause_holds_both(r, "generate", prompt="the ", tokens=4, temperature=0.0, top_k=0)  # rank 0 alone samples

    command(r.run_dir, "eval")  # the eval loop gathers across ranks: both must run it
    ev = r.record("the eval record", lambda x: x["type"] == P.EVAL)
    assert ev["val_loss"] > 0

    same_lr_and_weights(r, 0.02)
    stop_ends_both(r)


def test_lightning_fit_on_two_ranks(ranks) -> None:
    pytest.importorskip("lightning")
    r = ranks("lightning")
    hello = r.record("the hello", lambda x: x["type"] == P.HELLO and "ramp" in x.get("commands", ()))
    assert {"checkpoint", "eval", "stop", "pause"} <= set(hello["commands"])
    r.record("step 3", lambda x: x["type"] == P.METRIC and x["step"] >= 3)

    # save_checkpoint is a collective in Lightning: taken while paused, on both ranks, at once
    ck = pause_holds_both(r, "checkpoint")
    assert ck["path"].startswith("checkpoints/step-") and (r.run_dir / ck["path"]).is_file()

    command(r.run_dir, "eval")
    ev = r.record("the eval record", lambda x: x["type"] == P.EVAL)
    assert ev["val_loss"] > 0

    same_lr_and_weights(r, 0.02)
    stop_ends_both(r)


def test_plain_loop_pause_outlasts_the_group_timeout(ranks) -> None:
    r = ranks("plain")
    r.record("step 3", lambda x: x["type"] == P.METRIC and x["step"] >= 3)
    command(r.run_dir, "pause")
    r.record("the paused state", lambda x: x["type"] == P.STATE and x["state"] == P.PAUSED)
    held = r.last_steps()
    start = time.monotonic()
    r.until(
        "10 s of pause (the group's collectives time out after 6)",
        lambda: time.monotonic() - start > 10 or r.proc.poll() is not None,
        timeout=60,
    )
    assert r.proc.poll() is None, r.output()
    assert r.last_steps() == held
    command(r.run_dir, "resume")
    r.until("both ranks stepping again", lambda: min(r.last_steps()) > max(held) + 1)
    same_lr_and_weights(r, 0.2)
    stop_ends_both(r)
