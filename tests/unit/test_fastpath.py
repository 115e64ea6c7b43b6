"""The columnar fast path against the plain one: the same series and run state from real files
written by the real RecordWriter, whole or damaged (garbage inserted anywhere, torn tails, fields of
the wrong type, text that looks like a record start), fed in any chunking; and the columnar cache
beside a run is used only while it still describes the file, and rebuilt when it does not."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_core.protocol import METRICS_FILE, RecordDecoder, RecordWriter
from nexus_tui.history.columnar import colcache
from nexus_tui.history.columnar.fastdecode import ColumnDecoder, MetricBlock, batch_records
from nexus_tui.history.store import MetricStore
from nexus_tui.live.watcher import RunsWatcher

STATE_FIELDS = (
    "state",
    "step",
    "tokens",
    "loss",
    "ce",
    "lr",
    "tok_s",
    "updated",
    "best_val_loss",
    "val_loss",
    "total_steps",
    "start_step",
    "pid",
)


def _metric(step: int, **extra: Any) -> dict[str, Any]:
    loss = 2.0 + 1.0 / step
    return {
        "type": "metric",
        "step": step,
        "tokens": step * 4096,
        "loss": loss,
        "ce": loss - 0.01,
        "lr": 3e-4,
        "gnorm": 0.5 + (step % 7) / 10,
        "tok_s": 30000.0 + step,
        "step_s": 0.1,
        "mem": 1_500_000_000 + step,
        **extra,
    }


def write_run(path: Path, steps: int, resume_at: int | None = None) -> None:
    """A realistic file: hello, metrics (step widths crossing 128/256), evals, a sample whose text
    holds the bytes of a record start, a NaN loss, a resume that re-draws steps, a final state."""
    w = RecordWriter(path)
    w.write(
        {
            "type": "hello",
            "run": "r",
            "protocol": 1,
            "config": {},
            "pid": 7,
            "total_steps": steps,
            "start_step": 0,
            "model": "transformer",
            "device": "cpu",
        }
    )
    w.write({"type": "state", "state": "running", "step": 0, "reason": ""})
    for step in range(1, steps + 1):
        w.write(_metric(step, loss=math.nan) if step == 5 else _metric(step))
        if step % 40 == 0:
            w.write(
                {
                    "type": "eval",
                    "step": step,
                    "tokens": step * 4096,
                    "val_loss": 2.5 - step / 1000,
                    "val_ppl": 12.0,
                    "best": True,
                }
            )
        if step == 60:
            w.write(
                {"type": "sample", "step": step, "prompt": "x", "text": "ᄤtype\xa6metric \x8c\xa4type ok"}
            )
        if resume_at is not None and step == resume_at:
            w.write(
                {
                    "type": "hello",
                    "run": "r",
                    "protocol": 1,
                    "config": {},
                    "pid": 8,
                    "total_steps": steps,
                    "start_step": step - 20,
                    "model": "transformer",
                    "device": "cpu",
                }
            )
            for again in range(step - 20, step + 1):
                w.write(_metric(again, gnorm=9.0))
    w.write({"type": "state", "state": "finished", "step": steps, "reason": "done", "exit_code": 0})
    w.close()


def _typed(rec: Any) -> str:
    """A record's type and every field, NaN-safe (repr(nan) == repr(nan))."""
    return "" if rec is None else f"{type(rec).__name__} {rec.to_dict()!r}"


def same_records(data: bytes, cuts: list[int]) -> None:
    """Both decoders yield the same typed records (Metric structs from the columns included)."""
    slow, quick = RecordDecoder(), ColumnDecoder()
    a, b = [], []
    for chunk in _chunks(data, cuts):
        a += slow.feed(chunk)
        b += batch_records(quick.feed(chunk))
    assert [_typed(r) for r in a] == [_typed(r) for r in b]


def plain(data: bytes, cuts: list[int]) -> MetricStore:
    store = MetricStore()
    dec = RecordDecoder()
    for chunk in _chunks(data, cuts):
        store.ingest("r", None, dec.feed(chunk))
    return store


def fast(data: bytes, cuts: list[int]) -> tuple[MetricStore, ColumnDecoder]:
    store = MetricStore()
    dec = ColumnDecoder()
    for chunk in _chunks(data, cuts):
        store.ingest_batch("r", None, dec.feed(chunk))
    return store, dec


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def assert_same(a: MetricStore, b: MetricStore) -> None:
    ra, rb = a.get("r"), b.get("r")
    assert (ra is None) == (rb is None)
    if ra is None:
        return
    assert list(ra.series) == list(rb.series), "the same series, made in the same order"
    for key in ra.series:
        for col in ("step", "tokens", "time", "value"):
            x, y = getattr(ra.series[key], col).view, getattr(rb.series[key], col).view
            assert np.array_equal(x, y, equal_nan=True), (key, col, len(x), len(y))
    for f in STATE_FIELDS:
        va, vb = getattr(ra, f), getattr(rb, f)
        assert va == vb or (va != va and vb != vb), (f, va, vb)
    assert list(ra._rate) == list(rb._rate)
    assert _typed(ra.metric) == _typed(rb.metric), "the last metric record, as the reducer holds it"
    assert [s.get("text") for s in ra.samples] == [s.get("text") for s in rb.samples]


def test_a_clean_file_takes_the_fast_path_and_matches(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILE
    write_run(path, 300, resume_at=200)
    data = path.read_bytes()
    store, dec = fast(data, [1 << 12, 1 << 13, 20_000])
    assert dec.slow_bytes == 0, "a file the writer wrote needs no per-record decoding"
    assert_same(store, plain(data, []))
    assert len(store.get("r").series["ce"]) == 300 and store.get("r").state == "finished"


@settings(
    max_examples=int(os.environ.get("FASTPATH_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    garbage=st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=40)), max_size=4),
    torn=st.integers(0, 200),
    cuts=st.lists(st.integers(0, 10**6), max_size=6),
    resume=st.booleans(),
)
def test_damaged_files_give_the_same_series_either_way(tmp_path: Path, garbage, torn, cuts, resume) -> None:
    path = tmp_path / f"m{os.getpid()}-{abs(hash((tuple(garbage), torn, tuple(cuts), resume)))}.msgpack"
    write_run(path, 150, resume_at=120 if resume else None)
    data = bytearray(path.read_bytes())
    for at, junk in garbage:
        at %= len(data) + 1
        data[at:at] = junk
    data = bytes(data[: len(data) - torn])
    store, _ = fast(data, cuts)
    assert_same(store, plain(data, cuts))
    same_records(data, cuts)


def test_fields_of_the_wrong_type_and_missing_fields_match(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILE
    w = RecordWriter(path)
    for step in range(1, 50):
        extra: dict[str, Any] = {}
        if step % 9 == 0:
            extra = {"loss": "high"}
        elif step % 11 == 0:
            extra = {"gnorm": None, "tok_s": True}
        rec = _metric(step, **extra)
        if step % 13 == 0:
            del rec["lr"]
        w.write(rec)
    w.close()
    data = path.read_bytes()
    store, _ = fast(data, [777])
    assert_same(store, plain(data, [777]))
    same_records(data, [777])


def test_extra_keys_become_series_by_either_path(tmp_path: Path) -> None:
    """A reporter's own numbers (keys beyond Metric's) are RecordDecoder's `record.extra`: the fast
    path hands those records to it and both stores hold them as series named by their key."""
    path = tmp_path / METRICS_FILE
    w = RecordWriter(path)
    for step in range(1, 120):
        w.write(_metric(step, **({"train/acc": step / 200} if 30 <= step < 90 else {})))
    w.write({"type": "eval", "step": 119, "tokens": 1, "val_loss": 2.0, "val/acc": 0.5})
    w.close()
    data = path.read_bytes()
    cuts = list(range(1000, len(data), 1000))
    store, dec = fast(data, cuts)
    assert_same(store, plain(data, cuts))
    same_records(data, cuts)
    run = store.get("r")
    assert len(run.series["train/acc"]) == 60 and run.series["train/acc"].last == 89 / 200
    assert run.series["val/acc"].last == 0.5
    assert dec.fast_bytes > 0, "the stretches without extras still take the fast path"


def test_types_the_fast_layout_could_misread_are_refused_as_the_decoder_refuses_them(tmp_path: Path) -> None:
    """Float steps, nil or missing tokens, bool values, seqs past float64's exact integers: each
    stretch of one layout must give what RecordDecoder gives (skip, default, or keep exactly)."""
    for bad in ({"step": 7.0}, {"tokens": None}, {"gnorm": True}, {"seq": 2**60}):
        path = tmp_path / f"{sorted(bad)[0]}.msgpack"
        w = RecordWriter(path)
        for step in range(1, 40):
            rec = _metric(step)
            if step >= 20:
                rec.pop("tokens") if bad == {"tokens": None} and step % 2 else rec.update(bad)
            w.write(rec)
        w.close()
        data = path.read_bytes()
        if bad.get("seq"):  # the writer stamps seq itself: put the huge one in the bytes
            data = data.replace(b"\xa3seq\x14", b"\xa3seq\xcf" + (2**60).to_bytes(8, "big"))
        store, _ = fast(data, [])
        assert_same(store, plain(data, []))
        same_records(data, [])


def _folder(tmp_path: Path, steps: int) -> Path:
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    write_run(run / METRICS_FILE, steps)
    return run


def _read_history(run: Path, min_bytes: int, monkeypatch) -> tuple[MetricStore, list]:
    """What the dashboard's watcher delivers for the run's history, into a store."""
    monkeypatch.setattr(colcache, "MIN_FILE_BYTES", min_bytes)
    store = MetricStore()
    loads: list = []

    def on_batch(name, run_dir, pieces, loading) -> None:
        loads.append(loading)
        store.ingest_batch(name, run_dir, pieces)

    watcher = RunsWatcher(run.parent, on_batch, lambda d: None, lambda n, t: None)
    watcher.read(run)
    return store, loads


def test_the_cache_is_built_used_and_extended_after_an_append(tmp_path: Path, monkeypatch) -> None:
    run = _folder(tmp_path, 400)
    store, loads = _read_history(run, 1, monkeypatch)
    assert_same(store, plain((run / METRICS_FILE).read_bytes(), []))
    assert loads[0] == 0.0 and loads[-1] is None, "the history read reports its start and its end"
    assert colcache.cache_path(run).exists()
    pieces, offset = colcache.load(run)
    assert offset == (run / METRICS_FILE).stat().st_size
    assert sum(len(p) for p in pieces if isinstance(p, MetricBlock)) == 400
    # Appended since: the cache covers the old part, the rest is decoded, together the whole file.
    w = RecordWriter(run / METRICS_FILE)
    for step in range(401, 451):
        w.write(_metric(step))
    w.close()
    assert colcache.load(run)[1] == offset
    store, _ = _read_history(run, 1, monkeypatch)
    assert_same(store, plain((run / METRICS_FILE).read_bytes(), []))
    assert len(store.get("r").series["ce"]) == 450
    assert colcache.load(run)[1] == (run / METRICS_FILE).stat().st_size, "the cache was extended"


def test_a_stale_or_damaged_cache_is_ignored_and_rebuilt(tmp_path: Path, monkeypatch) -> None:
    run = _folder(tmp_path, 300)
    metrics = run / METRICS_FILE
    _read_history(run, 1, monkeypatch)
    assert colcache.load(run) is not None
    original = metrics.read_bytes()

    # Replaced by a file of the same size with other numbers: the fingerprint no longer matches.
    other = tmp_path / "other.msgpack"
    write_run(other, 300)
    replaced = bytearray(other.read_bytes()[: len(original)].ljust(len(original), b"\0"))
    replaced[-300:-200] = os.urandom(100)
    metrics.write_bytes(bytes(replaced))
    assert colcache.load(run) is None, "same size, other bytes: stale"
    store, _ = _read_history(run, 1, monkeypatch)
    assert_same(store, plain(bytes(replaced), []))

    # Truncated: shorter than the offset the cache covers.
    metrics.write_bytes(original)
    _read_history(run, 1, monkeypatch)
    metrics.write_bytes(original[: len(original) // 2])
    assert colcache.load(run) is None, "truncated: stale"
    store, _ = _read_history(run, 1, monkeypatch)
    assert_same(store, plain(original[: len(original) // 2], []))

    # A damaged cache file: ignored, the file is read, and a good cache replaces it.
    metrics.write_bytes(original)
    colcache.cache_path(run).write_bytes(b"PK\x03\x04 not really a zip")
    store, _ = _read_history(run, 1, monkeypatch)
    assert_same(store, plain(original, []))
    assert colcache.load(run) is not None and colcache.load(run)[1] == len(original)


def test_a_folder_with_only_its_metrics_file_opens_without_writing_where_it_cannot(
    tmp_path: Path, monkeypatch
) -> None:
    run = _folder(tmp_path, 200)
    (run / colcache.CACHE_DIR).write_text("a file where the cache folder would go")
    store, _ = _read_history(run, 1, monkeypatch)
    assert_same(store, plain((run / METRICS_FILE).read_bytes(), []))
    assert colcache.load(run) is None


def test_a_cache_of_records_with_missing_fields_gives_the_same_series(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    w = RecordWriter(run / METRICS_FILE)
    for step in range(1, 300):
        rec = _metric(step)
        if step % 7 == 0:
            del rec["lr"]
        w.write(rec)
    w.close()
    expected = plain((run / METRICS_FILE).read_bytes(), [])
    built, _ = _read_history(run, 1, monkeypatch)  # decodes the file, builds the cache
    assert_same(built, expected)
    from_cache, _ = _read_history(run, 1, monkeypatch)  # reads the cache
    assert colcache.load(run) is not None
    assert_same(from_cache, expected)
    assert len(from_cache.get("r").series["lr"]) == 299 - 299 // 7


def test_a_reporter_run_with_its_own_keys_takes_the_fast_path(tmp_path: Path) -> None:
    """`import nexus` in a script logging its own keys (every step, every tenth step, an int that
    grows wider): the file decodes column-wise, every byte, to the same series as RecordDecoder's."""
    import nexus

    run = nexus.init(run_dir=tmp_path / "rep", total_steps=3000)
    try:
        for step in range(1, 3001):
            data: dict[str, Any] = {
                "loss": 2.0 + 1.0 / step,
                "train/acc": step / 3000,
                "grad/clip": step % 300,
                "lr": 1e-3,
            }
            if step % 10 == 0:
                data["train/ppl"] = 7.5 - step / 1000
            nexus.log(data, step=step)
    finally:
        nexus.finish()
    data = (run.dir if hasattr(run, "dir") else tmp_path / "rep").joinpath(METRICS_FILE).read_bytes()
    cuts = list(range(1 << 15, len(data), 1 << 15))
    store, dec = fast(data, cuts)
    assert dec.slow_bytes == 0, "a reporter's own keys need no per-record decoding"
    assert_same(store, plain(data, cuts))
    same_records(data, cuts)
    series = store.get("r").series
    assert len(series["train/acc"]) == 3000 and len(series["train/ppl"]) == 300
    assert series["grad/clip"].value[299] == 0.0 and series["train/ppl"].last == 7.5 - 3.0


_EXTRA_KEYS = st.sampled_from(
    ["train/acc", "a", "x" * 40, "", "bad\x1bkey", "val_loss", "tokens_seen", "é/ü"]
)
_EXTRA_VALUES = st.one_of(
    st.floats(allow_nan=True), st.integers(-(2**63), 2**64 - 1), st.booleans(), st.none(), st.just("text")
)


@settings(
    max_examples=int(os.environ.get("FASTPATH_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    extras=st.lists(st.dictionaries(_EXTRA_KEYS, _EXTRA_VALUES, max_size=3), min_size=1, max_size=5),
    every=st.integers(1, 7),
    garbage=st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=20)), max_size=2),
    cuts=st.lists(st.integers(0, 10**6), max_size=5),
)
def test_extra_keys_give_the_same_series_either_way(tmp_path: Path, extras, every, garbage, cuts) -> None:
    """Any mix of a writer's own keys (odd names, bools, nil, huge ints, text, keys named like ours),
    on some records, in a file with garbage: the same records and the same store by both paths."""
    path = (
        tmp_path / f"x{os.getpid()}-{abs(hash((repr(extras), every, tuple(garbage), tuple(cuts))))}.msgpack"
    )
    w = RecordWriter(path)
    for step in range(1, 160):
        w.write(_metric(step, **(extras[step % len(extras)] if step % every == 0 else {})))
        if step % 50 == 0:
            w.write({"type": "eval", "step": step, "tokens": 1, "val_loss": 2.0, **extras[0]})
    w.close()
    data = bytearray(path.read_bytes())
    for at, junk in garbage:
        at %= len(data) + 1
        data[at:at] = junk
    data = bytes(data)
    store, _ = fast(data, cuts)
    assert_same(store, plain(data, cuts))
    same_records(data, cuts)


def test_a_cache_of_a_writers_own_keys_gives_the_same_series(tmp_path: Path, monkeypatch) -> None:
    """Keys of its own that start late, come every tenth step or stop: cached as columns, read back
    to the same series; an append with a new key extends the cache."""
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    w = RecordWriter(run / METRICS_FILE)
    for step in range(1, 400):
        extra: dict[str, Any] = {"train/acc": step / 400} if step > 100 else {}
        if step % 10 == 0:
            extra["eval/x"] = -step
        if step < 50:
            extra["warmup"] = 1.0
        w.write(_metric(step, **extra))
        if step == 200:
            w.write({"type": "eval", "step": step, "tokens": 1, "val_loss": 2.0, "val/acc": 0.25})
    w.close()
    expected = plain((run / METRICS_FILE).read_bytes(), [])
    built, _ = _read_history(run, 1, monkeypatch)
    assert_same(built, expected)
    pieces, _ = colcache.load(run)
    blocks = [p for p in pieces if isinstance(p, MetricBlock)]
    assert blocks and set(blocks[0].extra) == {"train/acc", "eval/x", "warmup"}, "the keys are columns"
    from_cache, _ = _read_history(run, 1, monkeypatch)
    assert_same(from_cache, expected)
    assert (
        len(from_cache.get("r").series["eval/x"]) == 39 and from_cache.get("r").series["val/acc"].last == 0.25
    )
    w = RecordWriter(run / METRICS_FILE)
    for step in range(400, 420):
        w.write(_metric(step, **{"train/acc": 1.0, "late": 3}))
    w.close()
    appended, _ = _read_history(run, 1, monkeypatch)
    assert_same(appended, plain((run / METRICS_FILE).read_bytes(), []))
    assert len(appended.get("r").series["late"]) == 20
    again, _ = _read_history(run, 1, monkeypatch)
    assert_same(again, plain((run / METRICS_FILE).read_bytes(), []))


def test_a_history_read_in_chunks_sizes_its_columns_once(tmp_path: Path, monkeypatch) -> None:
    """Read chunk by chunk (no cache yet), the columns are reserved for the whole file from how far
    the read has got, not grown by half again and again (up to half of them unused at the end)."""
    from nexus_tui.live import watcher as watcher_module

    monkeypatch.setattr(watcher_module, "READ_CHUNK", 1 << 16)
    monkeypatch.setattr(colcache, "MIN_FILE_BYTES", 1)
    run = _folder(tmp_path, 3000)
    for per_batch in (1 << 16, 1 << 30):  # a batch per chunk read; the whole history in one batch
        monkeypatch.setattr(watcher_module, "HISTORY_DELIVER_BYTES", per_batch)
        monkeypatch.setattr(watcher_module, "HISTORY_DELIVER_S", 3600.0)
        shutil.rmtree(run / colcache.CACHE_DIR, ignore_errors=True)
        store = MetricStore()
        batches: list[float | None] = []

        def on_batch(name, run_dir, pieces, loading, store=store, batches=batches) -> None:
            batches.append(loading)
            store.ingest_batch(name, run_dir, pieces, loading)

        RunsWatcher(run.parent, on_batch, lambda d: None, lambda n, t: None).read(run)
        assert_same(store, plain((run / METRICS_FILE).read_bytes(), []))
        series = store.get("r").series["ce"]
        assert (
            len(series) == 3000 and len(series.step.buf) <= 1.1 * 3000 and len(series.value.buf) <= 1.1 * 3000
        )
        chunks = -(-(run / METRICS_FILE).stat().st_size // (1 << 16))
        # The start (0.0), one batch per HISTORY_DELIVER_BYTES of the file, and the end (None).
        assert len(batches) == (chunks + 2 if per_batch == 1 << 16 else 3), batches


def test_a_history_goes_to_the_app_in_few_large_batches(tmp_path: Path, monkeypatch) -> None:
    """The app's thread folds a history in batches of HISTORY_DELIVER_BYTES of the file (or of
    HISTORY_DELIVER_S), not one per chunk read: each batch also redraws the table."""
    from nexus_tui.live import watcher as watcher_module

    monkeypatch.setattr(watcher_module, "READ_CHUNK", 1 << 14)
    monkeypatch.setattr(watcher_module, "HISTORY_DELIVER_BYTES", 1 << 16)
    monkeypatch.setattr(watcher_module, "HISTORY_DELIVER_S", 3600.0)
    run = _folder(tmp_path, 3000)
    store, loads = _read_history(run, 1, monkeypatch)
    assert_same(store, plain((run / METRICS_FILE).read_bytes(), []))
    size = (run / METRICS_FILE).stat().st_size
    assert loads[0] == 0.0 and loads[-1] is None
    assert len(loads) - 2 == -(-size // (1 << 16)), loads  # chunks of 16 KiB gathered four to a batch
    assert loads[1:-1] == sorted(loads[1:-1]) and loads[-2] == 1.0


def test_records_after_a_bulk_history_keep_one_set_of_x_columns(tmp_path: Path) -> None:
    """A history loaded in bulk shares one step/tokens/time for its metric series; records that then
    arrive one at a time (with every metric) append to it once, instead of each series copying the
    whole history's x columns; one that lacks a metric splits them, as before, with the same series."""
    path = tmp_path / METRICS_FILE
    write_run(path, 300)
    data = path.read_bytes()
    store, _ = fast(data, [])
    reference = plain(data, [])
    live = [{"type": "metric", "seq": 10_000 + i, "time": 5000.0 + i, **_metric(301 + i)} for i in range(5)]
    store.ingest("r", None, live)
    reference.ingest("r", None, live)
    series = store.get("r").series
    assert all(series[k].step is series["ce"].step for k in ("loss", "lr", "gnorm", "tok_s", "mem"))
    assert_same(store, reference)
    partial = {
        "type": "metric",
        "seq": 20_000,
        "time": 6000.0,
        "step": 400,
        "tokens": 1,
        "loss": 1.0,
        "ce": 1.0,
    }
    store.ingest("r", None, [partial])
    reference.ingest("r", None, [partial])
    assert_same(store, reference)
    assert len(series["ce"]) == 306 and len(series["gnorm"]) == 305


def test_cached_pages_given_back_after_the_copy_still_read_true(tmp_path: Path, monkeypatch) -> None:
    """The store copies a cached block, then its mapped pages are given back (madvise): the block
    still reads the same numbers afterwards (the kernel reads the file pages again), as the cache's
    extension after an append does."""
    run = _folder(tmp_path, 3000)
    _read_history(run, 1, monkeypatch)
    pieces, _ = colcache.load(run)
    blocks = [p for p in pieces if isinstance(p, MetricBlock)]
    assert blocks and all(b.release is not None for b in blocks)
    before = [b.values["ce"].copy() for b in blocks]
    store = MetricStore()
    store.ingest_batch("r", run, pieces)
    assert_same(store, plain((run / METRICS_FILE).read_bytes(), []))
    assert all(np.array_equal(b.values["ce"], v, equal_nan=True) for b, v in zip(blocks, before, strict=True))


@pytest.mark.parametrize("cuts", [[], [777], [50, 51, 3000, 9000]])
def test_a_writer_without_tok_s_gets_the_same_derived_rate_either_way(
    tmp_path: Path, cuts: list[int]
) -> None:
    """A writer that logs tokens but not tok_s: the run's Tok/s is the rate of its last two metric
    records, whichever path folded them (the bulk path applies a block's last two records)."""
    path = tmp_path / METRICS_FILE
    w = RecordWriter(path)
    w.write({"type": "hello", "run": "r", "protocol": 1, "pid": 7, "total_steps": 500})
    for step in range(1, 301):
        w.write(
            {"type": "metric", "step": step, "tokens": step * 512, "loss": 1.0, "time": 100.0 + step * 0.25}
        )
        if step % 97 == 0:
            w.write({"type": "log", "level": "info", "text": f"at {step}", "time": 100.0 + step * 0.25})
    w.close()
    data = path.read_bytes()
    store, _ = fast(data, cuts)
    assert_same(store, plain(data, cuts))
    assert store.get("r").tok_s == pytest.approx(512 / 0.25)
    rates = store.get("r").series["tok_s"]  # the chart too: every step after the first
    assert len(rates) == 299 and np.allclose(rates.value.view, 512 / 0.25)
