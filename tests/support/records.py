"""Record maps as the engine writes them (before the writer adds `seq` and `time`), with plain defaults
a test overrides by keyword where its assertions depend on a value. Pass them to `runfolder.write_run`
or to the store; `nexus_core.recordtypes` types them on the way in, as it does the engine's."""

from __future__ import annotations

import math
from typing import Any


def hello(run: str = "r", total_steps: int = 100, **fields: Any) -> dict[str, Any]:
    """The first record of a run (and of every resume, with its own start_step and pid)."""
    return {
        "type": "hello",
        "run": run,
        "protocol": 1,
        "config": {},
        "pid": 1,
        "total_steps": total_steps,
        "start_step": 0,
        "model": "transformer",
        "device": "cpu",
        **fields,
    }


def metric(step: int, loss: float = 3.0, **fields: Any) -> dict[str, Any]:
    """One training step; `ce` follows `loss` unless given."""
    return {
        "type": "metric",
        "step": step,
        "tokens": step * 512,
        "loss": loss,
        "ce": loss,
        "lr": 1e-3,
        "gnorm": 1.0,
        "tok_s": 1000.0,
        "step_s": 0.1,
        "mem": 0,
        **fields,
    }


def evaluation(step: int, val_loss: float = 3.0, **fields: Any) -> dict[str, Any]:
    """An eval record; `val_ppl` follows `val_loss` unless given."""
    return {
        "type": "eval",
        "step": step,
        "tokens": step * 512,
        "val_loss": val_loss,
        "val_ppl": math.exp(val_loss),
        **fields,
    }


def state(state: str, step: int, reason: str = "", **fields: Any) -> dict[str, Any]:
    """A state change (running, paused, finished, stopped, failed, ...)."""
    return {"type": "state", "state": state, "step": step, "reason": reason, **fields}


def finished(step: int) -> dict[str, Any]:
    """The state record a run that trained to its end writes last."""
    return state("finished", step, "done", exit_code=0)


def falling_run(name: str, steps: int, total: int = 100, nan_at: int | None = None) -> list[dict]:
    """A run as the store receives it (with `seq` and fixed `time`s, long past): a hello, `steps`
    metric records with a falling loss (NaN at `nan_at`), and an eval every 10 steps. The snapshot
    pictures are drawn from these exact values."""
    out: list[dict] = [
        {
            "type": "hello",
            "seq": 0,
            "time": 1000.0,
            "run": name,
            "model": "transformer",
            "device": "cpu",
            "pid": 1,
            "total_steps": total,
            "config": {"optim": {"lr": 1e-3}},
        }
    ]
    for s in range(1, steps + 1):
        loss = 5.0 / math.sqrt(s) if s != nan_at else float("nan")
        out.append(
            {
                "type": "metric",
                "seq": len(out),
                "time": 1000.0 + s,
                "step": s,
                "tokens": s * 512,
                "loss": loss,
                "ce": loss,
                "lr": 1e-3 * min(1, s / 10),
                "gnorm": 1.0 + 1 / s,
                "tok_s": 4000.0 + s,
                "step_s": 0.1,
                "mem": 1e8,
            }
        )
        if s % 10 == 0:
            out.append(
                {
                    "type": "eval",
                    "seq": len(out),
                    "time": 1000.0 + s,
                    "step": s,
                    "tokens": s * 512,
                    "val_loss": loss + 0.1,
                    "val_ppl": math.exp(loss + 0.1),
                    "best": True,
                }
            )
    return out
