"""`nexus report` on folders no engine wrote like that: a very long run (the tables stay readable) and
well-typed garbage records (a report, never a traceback, nothing a terminal would act on)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.markdown import CONTROL, column, section, table

from nexus_core.protocol import METRICS_FILE, RecordWriter
from nexus_tui.documents.report.document import build_report


def test_a_long_run_shows_spread_rows_with_its_best_and_last(tmp_path: Path) -> None:
    """A folder written by the real RecordWriter with 500 evals: the table keeps about 40 rows spread
    over the run, always its first, best and last, and says how many it left out."""
    run = tmp_path / "runs" / "long"
    run.mkdir(parents=True)
    writer = RecordWriter(run / METRICS_FILE)
    writer.write(
        {"type": "hello", "config": {}, "total_steps": 5000, "start_step": 0, "model": "transformer"}
    )
    best_step = 1230
    for step in range(10, 5001, 10):
        val = 1.0 if step == best_step else 3.0 - step / 10000
        writer.write(
            {"type": "metric", "step": step, "tokens": step * 64, "loss": val, "ce": val, "lr": 1e-3}
        )
        writer.write(
            {"type": "eval", "step": step, "tokens": step * 64, "val_loss": val, "best": step == best_step}
        )
    writer.close()
    text = build_report(tmp_path / "runs", ["long"])
    checkpoints = section(text, "Checkpoints", "long")
    steps = [int(s) for s in column(table(checkpoints), "step")]
    assert 40 <= len(steps) <= 41 and steps[0] == 10 and steps[-1] == 5000 and best_step in steps
    assert f"_{len(steps)} of 500 rows shown" in checkpoints


# -- damaged folders -----------------------------------------------------------------------------

_INT = st.integers(-(2**63), 2**63 - 1)
"""What msgpack can hold (the engine never writes more)."""
_ANY = st.one_of(
    st.none(),
    st.booleans(),
    _INT,
    st.floats(),
    st.text(max_size=12),
    st.lists(_INT, max_size=2),
    st.dictionaries(st.text(max_size=3), _INT, max_size=2),
)
_FIELDS = {
    "hello": ("config", "total_steps", "start_step", "resumed_from", "params", "device", "pid"),
    "metric": ("step", "tokens", "loss", "ce", "lr", "tok_s", "step_s", "mem"),
    "eval": ("step", "tokens", "val_loss", "best"),
    "sample": ("step", "prompt", "text", "requested"),
    "ckpt": ("step", "path", "best"),
    "state": ("state", "step", "reason"),
    "log": ("level", "text"),
    "alert": ("kind", "step", "text"),
}
_STEP = st.one_of(st.integers(0, 40), _ANY)
_RECORD = st.sampled_from(sorted(_FIELDS)).flatmap(
    lambda t: st.fixed_dictionaries(
        {"type": st.just(t)}, optional={k: (_STEP if k == "step" else _ANY) for k in _FIELDS[t]}
    )
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=st.lists(_RECORD, max_size=40))
def test_any_well_typed_garbage_gives_a_printable_report(tmp_path: Path, recs: list[dict[str, Any]]) -> None:
    """Records of the right types with wrong fields (NaN steps, lists for names, 2**63 pids): a report,
    never a traceback, and nothing in it a terminal would act on."""
    root = tmp_path / f"runs{time.monotonic_ns()}"
    (root / "r").mkdir(parents=True)
    writer = RecordWriter(root / "r" / METRICS_FILE)
    for rec in recs:
        writer.write(rec)
    writer.close()
    text = build_report(root, ["r", str(root / "r")])
    assert "## Run r" in text and not CONTROL.search(text)
