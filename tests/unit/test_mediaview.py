"""The Media tab's lines, headless: hostile records from a run folder (NaN counts, thousands of
columns, escape sequences in cells) are drawn bounded and clean, never raise."""

from __future__ import annotations

import math

from nexus_core.recordtypes import Histogram, Media, Table, Text
from nexus_tui.history.mediaview import MAX_COLUMNS, header, histogram_line, lines_of, table_lines
from nexus_tui.history.store import MetricStore


def test_hostile_media_records_are_drawn_bounded_and_clean() -> None:
    store = MetricStore()
    evil = "\x1b]52;c;aGk=\x07\x1b[2J[red]boom[/red]"
    changed = store.ingest(
        "r",
        None,
        [
            {"type": "hello", "run": "r"},
            {
                "type": "table",
                "key": evil,
                "columns": [f"c{i}" for i in range(3000)],
                "rows": [[evil] * 3000 for _ in range(50)],
                "step": 1,
            },
            {
                "type": "histogram",
                "key": "h",
                "edges": [0.0, 1.0, 2.0, 3.0],
                "counts": [math.nan, -5.0, math.inf],
                "step": 2,
            },
            {"type": "histogram", "key": "h2", "edges": [], "counts": [], "step": 3},
            {"type": "text", "key": "t", "text": f"line one\n{evil}", "step": 4},
            {"type": "media", "key": "img", "kind": "image", "path": f"../../{evil}", "step": 5},
            {
                "type": "table",
                "key": "bad",
                "columns": "not a list",
                "rows": [],
                "step": 6,
            },  # refused at decode
        ],
    )
    run = store.get("r")
    assert [r.type for r in run.media] == ["table", "histogram", "histogram", "text", "media"]
    assert [r.type for r in changed.media] == ["table", "histogram", "histogram", "text", "media"]
    shown = []
    for rec in run.media:
        shown += [header("r", rec), *lines_of(rec)]
    text = "\n".join(shown)
    assert "\x1b" not in text and "\x07" not in text
    table = table_lines(run.media[0])
    assert table[-1] == f"… {3000 - MAX_COLUMNS} more columns" and table[-2] == "… 30 more rows"
    assert max(len(line) for line in table) < 400
    assert histogram_line(run.media[1]).endswith("n=0") and histogram_line(run.media[2]) == "(empty)"


def test_a_table_histogram_and_picture_as_lines() -> None:
    table = Table(key="preds", columns=["prompt", "ok"], rows=[["2+2", True], ["x", None]], step=3, chart="")
    assert table_lines(table) == ["prompt │ ok", "───────┼─────", "2+2    │ True", "x      │"]
    hist = Histogram(key="w", edges=[0.0, 1.0, 2.0], counts=[1.0, 3.0], step=1)
    assert histogram_line(hist, width=2) == "▃█ [0, 2] n=4"
    media = Media(key="img", kind="image", path="media/img_1_1.png", width=8, height=6, caption="cat", step=1)
    assert lines_of(media) == ["media/img_1_1.png 8×6 “cat”"]
    assert header("run", Text(key="note", text="hi", step=2)) == "▍run · step 2 · text note"
