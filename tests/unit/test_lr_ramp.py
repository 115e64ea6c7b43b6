"""LR ramps on a loop's own optimizer (nexus/lr.py): the LR a step really uses (measured from the weight
change of a real SGD step) is the LR `param_groups` and the scheduler's `get_last_lr()` reported
before it, through real torch schedulers of every kind, a loop that sets the LR itself, saved state;
and the schedule's future the reporter publishes (nexus/lr_schedule.py)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from support.wait import wait_until

import nexus
from nexus.lr import LRControl
from nexus_core import protocol as P

Sched = torch.optim.lr_scheduler


def _sgd(lr: float = 0.1) -> tuple[torch.nn.Parameter, torch.optim.SGD]:
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))  # the LR read back exactly
    return w, torch.optim.SGD([w], lr=lr)


def _step(w: torch.nn.Parameter, opt: torch.optim.Optimizer) -> float:
    """One SGD step with gradient 1; returns the LR it really applied (from the weight change)."""
    before = float(w.detach())
    w.grad = torch.ones_like(w)
    opt.step()
    return before - float(w.detach())


def _warmup_cosine(o: torch.optim.Optimizer) -> Any:
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(o, num_warmup_steps=4, num_training_steps=40)


SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer], Any]] = {
    "StepLR": lambda o: Sched.StepLR(o, step_size=3, gamma=0.5),  # chainable: reads group lr
    "ExponentialLR": lambda o: Sched.ExponentialLR(o, gamma=0.9),
    "LambdaLR": lambda o: Sched.LambdaLR(o, lambda s: 1.0 / (1 + s)),  # closed form: overwrites it
    "CosineAnnealingLR": lambda o: Sched.CosineAnnealingLR(o, T_max=40),  # recursive form
    "OneCycleLR": lambda o: Sched.OneCycleLR(o, max_lr=0.1, total_steps=40, cycle_momentum=False),
    "HF warmup-cosine": _warmup_cosine,
    "SequentialLR": lambda o: Sched.SequentialLR(
        o, [Sched.LinearLR(o, 0.1, 1.0, 3), Sched.StepLR(o, 4, 0.5)], [3]
    ),
}


@pytest.mark.parametrize("given", [False, True], ids=["found", "given"])
@pytest.mark.parametrize("kind", list(SCHEDULERS))
def test_the_ramped_lr_is_the_lr_everyone_reads(kind: str, given: bool) -> None:
    w, opt = _sgd()
    twin_w, twin = _sgd()
    make = SCHEDULERS[kind]
    ctl = LRControl(opt) if not given else None
    sched, twin_sched = make(opt), make(twin)  # a plain loop builds its scheduler after run.watch(): found
    if given:
        ctl = LRControl(opt, [sched])
    assert ctl is not None
    used, reported, told, raw = [], [], [], []
    for step in range(24):
        if step == 5:
            ctl.request(target_lr=0.5, ramp_steps=4)
        reported.append(opt.param_groups[0]["lr"])
        told.append(sched.get_last_lr()[0])
        raw.append(twin.param_groups[0]["lr"])
        used.append(_step(w, opt))
        _step(twin_w, twin)
        sched.step()
        twin_sched.step()
        # the schedule's own numbers are untouched: identical to a twin that was never ramped
        assert ctl.raw_lrs()[0] == pytest.approx(twin.param_groups[0]["lr"])
    # before the request and after the ramp began, what the optimizer reported is what trained...
    assert used[:5] == pytest.approx(reported[:5]) and used[:5] == pytest.approx(raw[:5])
    assert used[6:] == pytest.approx(reported[6:], rel=1e-6) and used[6:] == pytest.approx(told[6:], rel=1e-6)
    # ...(the step that picked the request up had reported the LR before it)...
    start = used[4]
    assert used[5:9] == pytest.approx([start + (0.5 - start) * i / 4 for i in range(1, 5)])
    # ...and the schedule's shape continues from the target
    factor = 0.5 / raw[8]
    assert used[9:] == pytest.approx([r * factor for r in raw[9:]], rel=1e-5)
    assert ctl.last_lr == pytest.approx(used[-1])


def test_a_loop_that_sets_the_lr_itself_keeps_its_shape_scaled() -> None:
    """nanoGPT's `for g in opt.param_groups: g["lr"] = get_lr(it)`: the loop's value is the raw one."""
    w, opt = _sgd()
    ctl = LRControl(opt)
    schedule = [0.1 * (1 - i / 40) for i in range(30)]
    used, reported = [], []
    for it in range(30):
        if it == 10:
            ctl.request(target_lr=0.3, ramp_steps=2)
        for g in opt.param_groups:
            g["lr"] = schedule[it]
        used.append(_step(w, opt))
        reported.append(opt.param_groups[0]["lr"])
    assert used[:10] == pytest.approx(schedule[:10])
    assert used[11] == pytest.approx(0.3)
    factor = 0.3 / schedule[11]
    assert used[12:] == pytest.approx([s * factor for s in schedule[12:]])
    assert reported[12:] == pytest.approx(used[12:])  # after the step, the group says what it used


def test_reduce_on_plateau_reduces_the_ramped_lr() -> None:
    w, opt = _sgd()
    sched = Sched.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    ctl = LRControl(opt)
    ctl.request(target_lr=0.4, ramp_steps=0)
    used = []
    for _ in range(3):
        used.append(_step(w, opt))
        sched.step(1.0)  # no improvement after the first: halved each time
    assert used == pytest.approx([0.4, 0.4, 0.2])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1) and sched.get_last_lr()[0] == pytest.approx(0.1)


def test_param_groups_keep_their_ratios_through_a_ramp() -> None:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.2}, {"params": [b], "lr": 0.05}])
    LRControl(opt).request(target_lr=0.4, ramp_steps=0)
    a.grad, b.grad = torch.ones(1), torch.ones(1)
    opt.step()
    assert (-float(a.detach()), -float(b.detach())) == pytest.approx((0.4, 0.1))
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.4, 0.1])


def test_saved_state_holds_the_ramped_lr_and_loads_without_nexus() -> None:
    w, opt = _sgd()
    sched = Sched.StepLR(opt, step_size=100, gamma=0.5)
    ctl = LRControl(opt, [sched])
    ctl.request(target_lr=0.3, ramp_steps=0)
    _step(w, opt)
    sched.step()
    assert opt.state_dict()["param_groups"][0]["lr"] == pytest.approx(0.3)
    assert sched.state_dict()["_last_lr"] == pytest.approx([0.3])
    buf = io.BytesIO()
    torch.save(sched, buf)  # a whole scheduler pickles as the plain torch class
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert type(loaded) is Sched.StepLR and loaded.get_last_lr() == pytest.approx([0.3])
    ctl.close()
    assert type(sched) is Sched.StepLR


def _hello(run_dir: Path) -> dict[str, Any]:
    hellos = [r.to_dict() for r in P.read_records(run_dir / P.METRICS_FILE).records if r.type == P.HELLO]
    return hellos[-1] if hellos else {}


def test_the_schedules_future_is_published_in_the_hello(tmp_path: Path) -> None:
    run = nexus.init(root=tmp_path, name="sched", total_steps=40)
    w, opt = _sgd()
    run.watch(opt)
    sched = _warmup_cosine(opt)
    twin_w, twin = _sgd()
    twin_sched = _warmup_cosine(twin)
    expected = []
    for _ in range(40):
        expected.append(twin.param_groups[0]["lr"])
        _step(twin_w, twin)
        twin_sched.step()
    _step(w, opt)
    sched.step()
    run.log({"loss": 1.0})
    wait_until(lambda: _hello(run.dir).get("lr_schedule"), 60, "a hello with the schedule")
    got = _hello(run.dir)["lr_schedule"]
    assert got["source"] == "LambdaLR"
    assert got["step"][0] == 1 and got["step"][-1] == 40
    assert got["lr"] == pytest.approx([expected[s - 1] for s in got["step"]])
    assert w.grad is not None and opt.param_groups[0]["lr"] == pytest.approx(
        expected[1]
    )  # the live one moved on
    run.finish()


def test_a_loop_without_a_scheduler_says_its_future_is_unknown(tmp_path: Path) -> None:
    run = nexus.init(root=tmp_path, name="nosched", total_steps=10)
    w, opt = _sgd()
    run.watch(opt)
    _step(w, opt)
    run.log({"loss": 1.0})
    wait_until(lambda: _hello(run.dir).get("lr_schedule"), 60, "a hello with the schedule")
    got = _hello(run.dir)["lr_schedule"]
    assert (
        got["source"].startswith("unknown: no torch LR scheduler") and got["step"] == [] and got["lr"] == []
    )
    run.finish()
