"""LR schedules: the shape properties from ENGINE_NOTES, the resume ramp, preview and persistence."""

from __future__ import annotations

import json
import math
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_core.config import ScheduleConfig
from nexus_core.errors import CheckpointError, ConfigError
from nexus_core.schedule import Schedule, preview

EPS = 1e-12
TOL = 1e-4
"""A jump is at least this big; 1 - sqrt decays steeply, so EPS away it moves by ~sqrt(EPS)."""


schedules = st.builds(
    Schedule,
    name=st.sampled_from(["cosine", "wsd", "constant"]),
    warmup_steps=st.integers(0, 60),
    min_ratio=st.floats(0.0, 1.0),
    decay_fraction=st.floats(0.05, 1.0),
    decay_shape=st.sampled_from(["linear", "sqrt", "exp"]),
    total_steps=st.integers(2, 400),
)


def _boundaries(s: Schedule) -> list[float]:
    """Phase boundaries of the configured schedule (the wsd decay start included)."""
    t, w = s.base_total_steps, s.warmup
    points = [w, t]
    if s.name == "wsd":
        points.append(max(w, t - s.decay_fraction * t))
    return points


@settings(max_examples=150, deadline=None)
@given(schedules)
def test_continuous_at_phase_boundaries(s: Schedule) -> None:
    for b in _boundaries(s):
        left, mid, right = s.multiplier(b - EPS), s.multiplier(b), s.multiplier(b + EPS)
        assert abs(left - mid) < TOL and abs(right - mid) < TOL, (b, left, mid, right)


@settings(max_examples=150, deadline=None)
@given(schedules)
def test_monotone_within_phases_and_bounded(s: Schedule) -> None:
    w, t = s.warmup, s.total_steps
    values = [s.multiplier(i) for i in range(t + 5)]
    assert all(b >= a for a, b in pairwise(values[: w + 1])), "warmup must rise"
    assert all(b <= a + 1e-15 for a, b in pairwise(values[w:])), "after warmup it never rises"
    assert values[w] == 1.0
    assert all(0.0 < v <= 1.0 for v in values[:w]) and all(s.min_ratio <= v <= 1.0 for v in values[w:])


@settings(max_examples=150, deadline=None)
@given(schedules)
def test_ends_at_min_ratio(s: Schedule) -> None:
    expected = 1.0 if s.name == "constant" else s.min_ratio
    assert s.multiplier(s.total_steps) == expected
    assert s.multiplier(s.total_steps + 10) == expected


def test_cosine_matches_formula() -> None:
    s = Schedule.from_config(ScheduleConfig(name="cosine", warmup_steps=10, min_lr_ratio=0.1), 110)
    assert s.multiplier(0) == pytest.approx(1 / 11)
    assert s.multiplier(5) == pytest.approx(6 / 11)
    for step in (10, 35, 60, 85, 110):
        progress = (step - 10) / 100
        assert s.multiplier(step) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * progress)))
    assert s.multiplier(60) == pytest.approx(0.55)


@pytest.mark.parametrize("shape", ["linear", "sqrt", "exp"])
def test_wsd_holds_then_decays_over_last_fraction(shape: str) -> None:
    cfg = ScheduleConfig(name="wsd", warmup_steps=10, min_lr_ratio=0.0, decay_fraction=0.2, decay_shape=shape)
    s = Schedule.from_config(cfg, 100)
    assert all(s.multiplier(i) == 1.0 for i in range(10, 81))
    assert s.multiplier(81) < 1.0
    assert s.multiplier(100) == 0.0
    halfway = s.multiplier(90)
    expected = {"linear": 0.5, "sqrt": 1 - math.sqrt(0.5)}.get(shape)
    if expected is not None:
        assert halfway == pytest.approx(expected)
    else:  # exp falls fast first, so it is below linear halfway
        assert 0.0 < halfway < 0.2


def test_warmup_never_eats_the_whole_short_run() -> None:
    s = Schedule.from_config(ScheduleConfig(warmup_steps=20, min_lr_ratio=0.1), 10)
    assert s.warmup == 5 and s.multiplier(5) == 1.0 and s.multiplier(10) == pytest.approx(0.1)


@pytest.mark.parametrize("name", ["cosine", "wsd", "constant"])
def test_ramp_starts_at_checkpoint_lr_and_reaches_target(name: str) -> None:
    base = Schedule.from_config(ScheduleConfig(name=name, warmup_steps=10, min_lr_ratio=0.05), 200)
    at = base.multiplier(200)
    r = base.with_ramp(200, at, 0.6, 20, 500)
    assert r.total_steps == 500
    assert r.multiplier(200) == at
    for i in range(21):  # linear in between
        assert r.multiplier(200 + i) == pytest.approx(at + (0.6 - at) * i / 20)
    assert r.multiplier(220) == pytest.approx(0.6)
    assert abs(r.multiplier(220 - EPS) - r.multiplier(220 + EPS)) < TOL
    after = [r.multiplier(i) for i in range(220, 501)]
    assert all(b <= a + 1e-15 for a, b in pairwise(after))
    assert r.multiplier(500) == (0.6 if name == "constant" else 0.05)
    # History before the resume is untouched, so a chart of the whole run stays true.
    assert [r.multiplier(i) for i in range(200)] == [base.multiplier(i) for i in range(200)]


def test_wsd_ramp_holds_target_then_decays_over_last_fraction_of_remaining_span() -> None:
    base = Schedule.from_config(ScheduleConfig(name="wsd", warmup_steps=0, min_lr_ratio=0.0), 100)
    r = base.with_ramp(100, 0.0, 0.5, 10, 210)  # remaining span after the ramp: 100 steps
    assert all(r.multiplier(i) == 0.5 for i in range(110, 191))
    assert r.multiplier(200) == pytest.approx(0.25) and r.multiplier(210) == 0.0


def test_ramp_to_a_target_below_the_floor_holds_it() -> None:
    base = Schedule.from_config(ScheduleConfig(min_lr_ratio=0.1), 100)
    r = base.with_ramp(100, 0.1, 0.02, 5, 150)
    assert r.multiplier(105) == pytest.approx(0.02) and r.multiplier(150) == pytest.approx(0.02)


def test_zero_step_ramp_is_a_deliberate_jump() -> None:
    base = Schedule.from_config(ScheduleConfig(), 100)
    r = base.with_ramp(50, base.multiplier(50), 1.0, 0, 200)
    assert r.multiplier(50) == 1.0 and r.multiplier(49) == base.multiplier(49)


def test_resume_twice_and_resume_from_an_earlier_checkpoint() -> None:
    base = Schedule.from_config(ScheduleConfig(name="cosine", warmup_steps=5), 100)
    once = base.with_ramp(100, base.multiplier(100), 0.8, 10, 200)
    mid = once.multiplier(150)
    twice = once.with_ramp(150, mid, 1.0, 10, 300)
    assert twice.multiplier(150) == mid and twice.multiplier(160) == pytest.approx(1.0)
    assert twice.multiplier(300) == pytest.approx(0.1)
    assert [twice.multiplier(i) for i in range(150)] == [once.multiplier(i) for i in range(150)]
    assert abs(twice.multiplier(150 - EPS) - mid) < TOL
    # Going back to step 120 rewrites the future: the step-150 ramp is dropped.
    back = twice.with_ramp(120, twice.multiplier(120), 0.5, 5, 250)
    assert [r.start_step for r in back.ramps] == [100, 120]
    assert back.multiplier(120) == once.multiplier(120)


@settings(max_examples=100, deadline=None)
@given(
    schedules,
    st.integers(0, 400),
    st.floats(0.0, 2.0),
    st.integers(0, 50),
    st.integers(1, 400),
)
def test_ramp_never_jumps(s: Schedule, start: int, target: float, ramp_steps: int, extra: int) -> None:
    at = s.multiplier(start)
    r = s.with_ramp(start, at, target, ramp_steps, start + ramp_steps + extra)
    assert r.multiplier(start) == at or ramp_steps == 0
    assert abs(r.multiplier(start - EPS) - at) < TOL or start == 0
    end = start + ramp_steps
    assert abs(r.multiplier(end - EPS) - r.multiplier(end + EPS)) < TOL or ramp_steps == 0
    assert r.multiplier(end) == pytest.approx(target)


def test_preview_spans_the_range_with_true_values() -> None:
    s = Schedule.from_config(ScheduleConfig(name="wsd"), 1000)
    pts = preview(s, 0, 1000, 50)
    assert len(pts) == 50 and pts[0][0] == 0 and pts[-1][0] == 1000
    assert [p[0] for p in pts] == sorted({p[0] for p in pts})
    assert all(m == s.multiplier(step) for step, m in pts)
    assert preview(s, 10, 14, 50) == [(i, s.multiplier(i)) for i in range(10, 15)]
    assert preview(s, 7, 7, 3) == [(7, s.multiplier(7))]
    with pytest.raises(ConfigError):
        preview(s, 10, 5, 3)


def test_dict_round_trip_through_json_keeps_every_value() -> None:
    base = Schedule.from_config(ScheduleConfig(name="wsd", decay_shape="sqrt"), 100)
    r = base.with_ramp(100, base.multiplier(100), 0.7, 10, 180).with_ramp(150, 0.5, 0.9, 3, 260)
    back = Schedule.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r
    assert [back.multiplier(i) for i in range(300)] == [r.multiplier(i) for i in range(300)]


def test_malformed_state_is_a_checkpoint_error() -> None:
    good = Schedule.from_config(ScheduleConfig(), 100).to_dict()
    with pytest.raises(CheckpointError):
        Schedule.from_dict({**good, "surprise": 1})
    with pytest.raises(CheckpointError):
        Schedule.from_dict({**good, "name": "linear-ish"})
    with pytest.raises(CheckpointError):
        Schedule.from_dict({**good, "ramps": [{"start_step": 1}]})


def test_bad_input_is_one_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="schedule.name"):
        Schedule.from_config(ScheduleConfig(name="step"), 100)
    s = Schedule.from_config(ScheduleConfig(), 100)
    with pytest.raises(ConfigError, match="total steps"):
        s.with_ramp(100, 0.1, 1.0, 20, 110)
    with pytest.raises(ConfigError, match="ramp steps"):
        s.with_ramp(100, 0.1, 1.0, -1, 200)
    with pytest.raises(ConfigError, match="multipliers"):
        s.with_ramp(100, 0.1, float("nan"), 5, 200)
