"""The forecast of a run's final val loss, and for a finished run, how good it would have been.

`nexus_tui.curves.forecast` fits L(s) = a + b·s^-c to the eval points; the dashboard shows its guess while a
run trains. A finished run lets us check that guess: refit with only the evals seen by 25, 50 and 75%
of the run and compare each projection (and its band) with the val loss the run actually ended at.
That is what tells a person how far to trust the forecast for the next run of the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexus_tui.curves.forecast import MIN_POINTS, forecast_final

CHECKPOINTS = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class Forecast:
    """A projection of the val loss at `total_steps` from the evals up to `upto` (a step)."""

    upto: int
    points: int
    total_steps: int
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Backtest:
    """A forecast made part way through a finished run, against the val loss it ended at."""

    fraction: float
    forecast: Forecast
    truth: float

    @property
    def error(self) -> float | None:
        return None if self.forecast.value is None else self.forecast.value - self.truth

    @property
    def inside(self) -> bool | None:
        f = self.forecast
        return None if f.low is None or f.high is None else f.low <= self.truth <= f.high


def forecast_at(steps: list[float], losses: list[float], upto: float, total_steps: int) -> Forecast:
    """The forecast made with the evals at steps <= upto."""
    seen = [(s, v) for s, v in zip(steps, losses, strict=True) if s <= upto]
    got = forecast_final([s for s, _ in seen], [v for _, v in seen], total_steps)
    value, low, high = got if got is not None else (None, None, None)
    return Forecast(int(upto), len(seen), total_steps, value, low, high)


def backtests(steps: list[float], losses: list[float], total_steps: int) -> list[Backtest]:
    """One per fraction in CHECKPOINTS; empty unless the run has an eval at its last step (the truth)."""
    if not steps or total_steps <= 0 or steps[-1] < total_steps:
        return []
    truth = losses[-1]
    return [Backtest(f, forecast_at(steps, losses, f * total_steps, total_steps), truth) for f in CHECKPOINTS]


__all__ = ["CHECKPOINTS", "MIN_POINTS", "Backtest", "Forecast", "backtests", "forecast_at"]
