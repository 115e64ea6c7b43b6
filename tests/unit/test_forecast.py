"""forecast_final recovers a power law's end point from its early eval points."""

from __future__ import annotations

import math
import random

import pytest

from nexus_tui.curves.forecast import forecast_final


def _law(s: float, a: float = 1.4, b: float = 6.0, c: float = 0.45) -> float:
    return a + b * s**-c


def test_exact_power_law_is_projected_closely() -> None:
    steps = [50, 100, 150, 200, 250, 300]
    got = forecast_final(steps, [_law(s) for s in steps], 3000)
    assert got is not None
    value, low, high = got
    assert low <= value <= high
    assert value == pytest.approx(_law(3000), abs=0.02)
    assert low <= _law(3000) <= high
    assert value < _law(300)  # it is still coming down


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_points_bracket_the_truth(seed: int) -> None:
    rng = random.Random(seed)
    steps = list(range(100, 1100, 100))
    losses = [_law(s, 2.0, 4.0, 0.6) + rng.gauss(0, 0.01) for s in steps]
    value, low, high = forecast_final(steps, losses, 5000)
    truth = _law(5000, 2.0, 4.0, 0.6)
    assert low <= truth <= high
    assert high - low < 0.5
    assert abs(value - truth) < 0.1


def test_too_little_or_bad_data_gives_none() -> None:
    assert forecast_final([10, 20, 30], [3.0, 2.5, 2.2], 100) is None
    assert forecast_final([10, 20, 30, 40], [2.0, 2.1, 2.2, 2.3], 100) is None  # rising: no forecast
    assert forecast_final([], [], 100) is None
    assert forecast_final([0, 0, 0, 0], [1.0, 1.0, 1.0, 1.0], 100) is None
    assert forecast_final([10, 20, 30, 40], [3.0, float("nan"), 2.2, 2.0], float("nan")) is None


def test_a_finished_run_returns_its_last_value() -> None:
    steps = [10, 20, 30, 40, 50]
    assert forecast_final(steps, [3.0, 2.6, 2.4, 2.3, 2.25], 50) == (2.25, 2.25, 2.25)
    value, low, high = forecast_final(steps, [3.0, 2.6, float("inf"), 2.3, 2.25], 60)
    assert math.isfinite(value) and low <= value <= high <= 2.3 + 0.5


def test_a_negative_loss_gets_a_band_that_holds_its_value() -> None:
    """A script whose "val loss" is negative (a log-likelihood) read `0.000 (0.000–-0.622)`: the value
    and the band's low end were floored at 0, its high end was not."""
    steps = [50, 100, 150, 200, 250, 300]
    got = forecast_final(steps, [_law(s, a=-1.0, b=2.0) for s in steps], 3000)
    assert got is not None
    value, low, high = got
    assert low <= value <= high
    assert value == pytest.approx(_law(3000, a=-1.0, b=2.0), abs=0.05) and value < 0


@pytest.mark.parametrize("seed", range(20))
def test_the_band_always_holds_the_value(seed: int) -> None:
    rng = random.Random(seed)
    a, b, c = rng.uniform(-3, 3), rng.uniform(0.1, 10), rng.uniform(0.05, 1.5)
    steps = sorted(rng.sample(range(1, 2000), 8))
    got = forecast_final(
        steps, [_law(s, a, b, c) + rng.gauss(0, 0.05) for s in steps], rng.randint(2000, 20000)
    )
    if got is not None:
        value, low, high = got
        assert low <= value <= high, got
