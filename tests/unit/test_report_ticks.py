"""`nexus report`'s text charts carry round ticks, as the dashboard's do (curves/ticks.py): not
plotext's even split of the range (`1.0 100.8 200.5 300.2 400.0`, `0.00252`)."""

from __future__ import annotations

import re

from nexus_tui.documents.report.textchart import Line, chart


def test_text_chart_ticks_are_round() -> None:
    xs = [float(s) for s in range(1, 401)]
    ys = [4.8e-4 + (2.52e-3 - 4.8e-4) * i / 399 for i in range(400)]
    text = chart("LR by step", "step", [Line("LR", xs, ys, "•")])
    lines = text.splitlines()
    x_labels = next(
        ln for ln in reversed(lines) if re.search(r"\d", ln) and "┤" not in ln and "step" not in ln
    )
    assert x_labels.split() == ["100", "200", "300", "400"], x_labels
    y_labels = [ln.split("┤")[0].strip() for ln in lines if "┤" in ln]
    assert y_labels and all(re.fullmatch(r"\d(\.\d)?e-\d", y) for y in y_labels), y_labels
