"""The telemetry pane on a two-GPU box, without a GPU: the driver stand-in (the one `nexus demo
--simulate-gpus` builds) is loaded into this process under the driver's name and the real
nvidia-ml-py reads it. Both GPUs are drawn, with a run's GPU memory beside it, at 160x48 and 80x24.
With NEXUS_FAKE_NVML unset the stand-in answers as a missing driver, so later tests see no GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fake_nvml import FakeGpus
from support.pilot import FORM_OVERRIDES, type_into
from support.wait import pilot_wait_until

from nexus_core.commands import Stop
from nexus_tui.app import NexusApp
from nexus_tui.telemetry.simulate import STATE_ENV
from nexus_tui.widgets.telemetry_pane import TelemetryPane

GiB = 1 << 30


def pane_text(app: NexusApp) -> str:
    pane = app.query_one(TelemetryPane)
    return "\n".join(str(w.render()) for w in pane.query("Static"))


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
async def test_two_simulated_gpus_with_a_runs_memory(
    app: NexusApp, tmp_path: Path, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        gpus = FakeGpus(tmp_path / "nvml")
    except RuntimeError as e:  # pragma: no cover - gcc is on CI's machines
        pytest.skip(str(e))
    gpus.write(
        [("Sim A", 87, 9 * GiB, 24 * GiB, 71, 300, 450), ("Sim B", 12, 2 * GiB, 24 * GiB, 44, 90, 450)]
    )
    gpus.preload()
    monkeypatch.setenv(STATE_ENV, str(gpus.state))
    async with app.run_test(size=size) as pilot:
        await pilot.press("n")
        await type_into(pilot, "#name", "ongpu")
        await type_into(pilot, "#steps", "100000")
        await type_into(pilot, "#overrides", FORM_OVERRIDES)
        await pilot.click("#go")
        run = await pilot_wait_until(
            pilot,
            lambda: (r := app.store.get("ongpu")) is not None and r.pid and r.step > 0 and r,
            120,
            "the run training",
        )
        gpus.write(
            [("Sim A", 87, 9 * GiB, 24 * GiB, 71, 300, 450), ("Sim B", 12, 7 * GiB, 24 * GiB, 44, 90, 450)],
            [(1, run.pid, 5 * GiB)],
        )
        await pilot_wait_until(
            pilot,
            lambda: "GPU0 Sim A" in pane_text(app) and "GPU1 Sim B" in pane_text(app),
            30,
            "both GPUs drawn",
        )
        await pilot_wait_until(
            pilot, lambda: "ongpu" in pane_text(app).split("GPU1", 1)[-1], 30, "the run's memory beside GPU1"
        )
        text = pane_text(app)
        assert "9.0/24.0 GiB" in text or "9/24" in text.replace(".0", ""), text
        app.services.supervisor.send("ongpu", Stop())
        await pilot_wait_until(pilot, lambda: not run.live, 120, "the run stopped")
