"""The engine's own signals reach the run folder through the generic extras path: a real tiny engine
trains for real (in-process, on the CPU) and its metrics file is read back with the protocol's decoder.
MTP heads give `mtp/head<k>_ce`, the nested LSTM's surprise loss `lstm/surprise`, every param group
its grad norm `gnorm/<group>`; the dashboard's grid (Pilot) charts the `mtp/` series."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from support.preset import config

from nexus_core import protocol as P
from nexus_core.config import Config

STEPS = 6


def tiny(name: str, family: str = "transformer", **options: object) -> Config:
    """The test preset on the CPU for STEPS steps, no side work, with the family's own options
    ([model.<family>]) given as a person would: overrides."""
    sets = [
        f"model.family={family}",
        "train.device=cpu",
        "train.ckpt_every=0",
        "train.eval_every=0",
        f"train.steps={STEPS}",
        *(f"model.{family}.{k}={v!r}" for k, v in options.items()),
    ]
    return config(*sets, name=name)


def train(cfg: Config, run_dir: Path) -> list:
    from engine.trainer import Trainer

    assert Trainer(cfg, run_dir).run() == 0
    result = P.read_records(run_dir / P.METRICS_FILE)
    assert result.torn_bytes == 0 and result.warnings == []
    metrics = [r for r in result.records if r.type == P.METRIC]
    assert [m.step for m in metrics] == list(range(1, STEPS + 1))
    return metrics


def test_mtp_heads_and_param_groups_are_series_of_their_own(runs_root: Path) -> None:
    cfg = tiny("mtp", mtp_heads=2)
    cfg.train.grad_accum = 2  # the heads' CE is averaged over micro-batches like the loss
    metrics = train(cfg, runs_root / "mtp")
    for m in metrics:
        heads = {k: v for k, v in m.extra.items() if k.startswith("mtp/")}
        assert set(heads) == {"mtp/head1_ce", "mtp/head2_ce"}, m.extra
        # Byte-level CE of a barely trained model: near ln(256), finite, and no head is the main one.
        assert all(math.isfinite(v) and 1.0 < v < 7.0 for v in heads.values()), heads
        groups = {k: v for k, v in m.extra.items() if k.startswith("gnorm/")}
        assert set(groups) == {"gnorm/adamw_decay", "gnorm/adamw_no_decay"}, m.extra
        # gnorm is the norm over every group: the root sum of squares of the groups' norms.
        assert m.gnorm == pytest.approx(math.sqrt(sum(v * v for v in groups.values())), rel=1e-5)
    # Training moves the heads' CE (the values are read, not placeholders).
    assert metrics[-1].extra["mtp/head1_ce"] != metrics[0].extra["mtp/head1_ce"]
    # The main loss is CE + mtp_weight/D * sum of the heads' (smoothing off): the pieces add up.
    last = metrics[-1]
    want = last.ce + cfg.model.transformer.mtp_weight / 2 * (
        last.extra["mtp/head1_ce"] + last.extra["mtp/head2_ce"]
    )
    assert last.loss == pytest.approx(want, rel=1e-4)


def test_the_lstm_surprise_loss_is_a_series(runs_root: Path) -> None:
    cfg = tiny("lstm", family="lstm", levels=[1, 2], surprise_weight=0.5)
    metrics = train(cfg, runs_root / "lstm")
    for m in metrics:
        surprise = m.extra["lstm/surprise"]
        assert 0.0 <= surprise <= 2.0, surprise  # 1 - cos lies in [0, 2]
        assert m.loss == pytest.approx(m.ce + 0.5 * surprise, rel=1e-4)
    assert not any(k.startswith("mtp/") for k in metrics[0].extra)


def test_a_model_without_signals_adds_only_group_norms(runs_root: Path) -> None:
    cfg = tiny("plain")
    cfg.optim.name = "muon"
    metrics = train(cfg, runs_root / "plain")
    assert {k for k in metrics[0].extra} == {"gnorm/muon", "gnorm/adamw_decay", "gnorm/adamw_no_decay"}


def test_signals_every_says_which_records_carry_them(runs_root: Path) -> None:
    """A long run may keep its records plain (the dashboard opens those in bulk): 0 is never, 3 is
    every third step."""
    cfg = tiny("sparse", mtp_heads=1)
    cfg.train.signals_every = 3
    metrics = train(cfg, runs_root / "sparse")
    assert [m.step for m in metrics if m.extra] == [3, 6]
    assert set(metrics[2].extra) == {"mtp/head1_ce", "gnorm/adamw_decay", "gnorm/adamw_no_decay"}
    cfg = tiny("none", mtp_heads=1)
    cfg.train.signals_every = 0
    assert not any(m.extra for m in train(cfg, runs_root / "none"))


@pytest.fixture
def mtp_run(runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    train(tiny("mtpgrid", mtp_heads=1), runs_root / "mtpgrid")
    return runs_root / "mtpgrid"


async def test_the_grid_charts_an_engine_runs_mtp_head(
    runs_root: Path, mtp_run: Path, tmp_path: Path
) -> None:
    from nexus_tui.app import NexusApp
    from nexus_tui.widgets.charts_panel import ChartsPanel

    app = NexusApp(runs_root, settings_path=tmp_path / "settings.json")
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ChartsPanel)
        deadline = time.monotonic() + 60
        while "mtp/head1_ce" not in panel.all_keys and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert "mtp/head1_ce" in panel.all_keys, panel.all_keys
        await pilot.press("slash")  # the filter a person types: only the MTP head is left
        deadline = time.monotonic() + 10
        while not app.screen.query("Input") and time.monotonic() < deadline:
            await pilot.pause(0.05)
        app.screen.query_one("Input").value = "^mtp/"
        await pilot.press("enter")
        deadline = time.monotonic() + 10
        while panel.pages != [["mtp/head1_ce"]] and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert panel.pages == [["mtp/head1_ce"]], panel.pages
        chart = panel.chart("mtp/head1_ce")
        deadline = time.monotonic() + 10
        while not chart.spec.curves and time.monotonic() < deadline:
            await pilot.pause(0.05)
        ys = [y for curve in chart.spec.curves for y in curve.ys]
        assert len(ys) >= STEPS and all(1.0 < y < 7.0 for y in ys), ys
