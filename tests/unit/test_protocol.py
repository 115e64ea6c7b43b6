"""The record stream and the control channel: real files, real pipes, real sockets, hostile input."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_core import protocol as P


def _metric(i: int) -> dict:
    return {"type": P.METRIC, "step": i, "loss": 5.0 / (i + 1), "ce": 4.0 / (i + 1), "lr": 1e-3}


def test_writer_appends_to_file_and_pipe_with_seq(tmp_path: Path) -> None:
    r, w = os.pipe()
    writer = P.RecordWriter(tmp_path / P.METRICS_FILE, pipe_fd=w)
    for i in range(50):
        writer.write(_metric(i))
    writer.close()
    with os.fdopen(r, "rb") as f:
        from_pipe = P.RecordDecoder().feed(f.read())
    from_file = P.read_records(tmp_path / P.METRICS_FILE)
    assert [x["seq"] for x in from_pipe] == list(range(50))
    assert from_file.records == from_pipe
    assert from_file.torn_bytes == 0 and from_file.warnings == []


def test_writer_continues_seq_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / P.METRICS_FILE
    w = P.RecordWriter(path)
    w.write(_metric(0))
    w.close()
    w = P.RecordWriter(path)
    assert w.write(_metric(1))["seq"] == 1
    w.close()


def test_broken_pipe_never_stops_the_writer(tmp_path: Path) -> None:
    r, w = os.pipe()
    os.close(r)  # the dashboard died
    writer = P.RecordWriter(tmp_path / P.METRICS_FILE, pipe_fd=w)
    for i in range(10):
        writer.write(_metric(i))
    assert not writer.has_pipe
    assert len(P.read_records(tmp_path / P.METRICS_FILE).records) == 10
    writer.close()


def test_full_pipe_drops_to_pipe_but_file_keeps_everything(tmp_path: Path) -> None:
    r, w = os.pipe()  # nobody reads: the pipe fills up
    writer = P.RecordWriter(tmp_path / P.METRICS_FILE, pipe_fd=w)
    for i in range(5000):
        writer.write({**_metric(i), "pad": "x" * 100})
    assert writer.pipe_dropped > 0
    assert len(P.read_records(tmp_path / P.METRICS_FILE).records) == 5000
    writer.close()
    os.close(r)


def test_torn_file_yields_every_whole_record(tmp_path: Path) -> None:
    path = tmp_path / P.METRICS_FILE
    data = b"".join(P.pack(_metric(i)) for i in range(20))
    path.write_bytes(data[:-3])
    result = P.read_records(path)
    assert [x["step"] for x in result.records] == list(range(19))
    assert result.torn_bytes > 0
    assert any("torn" in w.text for w in result.warnings)


def test_garbage_between_records_is_skipped_with_a_warning() -> None:
    stream = P.pack(_metric(0)) + os.urandom(300) + b"\xc1" + P.pack(_metric(1)) + P.pack({"type": "future"})
    stream += P.pack(_metric(2))
    decoder = P.RecordDecoder()
    got = decoder.feed(stream)
    assert [x["step"] for x in got] == [0, 1, 2]
    texts = " ".join(w.text for w in decoder.warnings)
    assert "not records" in texts and "unknown type 'future'" in texts


def test_newer_protocol_is_flagged_once() -> None:
    decoder = P.RecordDecoder()
    hello = {"type": P.HELLO, "protocol": P.PROTOCOL_VERSION + 1, "run": "x"}
    got = decoder.feed(P.pack(hello) + P.pack(hello))
    assert len(got) == 2
    assert sum("protocol" in w.text for w in decoder.warnings) == 1


def test_oversized_length_header_is_garbage_not_a_hang() -> None:
    decoder = P.RecordDecoder()
    huge_str = b"\xdb" + (P.MAX_RECORD_BYTES * 8).to_bytes(4, "big")  # str32 claiming 8 MiB
    got = decoder.feed(huge_str + b"abc" + P.pack(_metric(7)))
    assert [x["step"] for x in got] == [7]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.integers(0, 10**6), min_size=1, max_size=20),
    noise=st.lists(st.binary(max_size=64), min_size=0, max_size=20),
    cuts=st.lists(st.integers(1, 97), min_size=1, max_size=10),
)
def test_decoder_never_raises_and_keeps_clean_records(
    steps: list[int], noise: list[bytes], cuts: list[int]
) -> None:
    """Random garbage between real records, fed in random chunk sizes: the reader never raises,
    yields only well-formed records, and every record not touched by garbage comes through."""
    parts = []
    for i, s in enumerate(steps):
        parts.append(P.pack(_metric(s)))
        if i < len(noise):
            parts.append(noise[i])
    stream = b"".join(parts)
    decoder = P.RecordDecoder()
    got: list[P.Record] = []
    pos, k = 0, 0
    while pos < len(stream):
        n = cuts[k % len(cuts)]
        got.extend(decoder.feed(stream[pos : pos + n]))
        pos, k = pos + n, k + 1
    decoder.finish()
    assert all(isinstance(r, P.Record) and r["type"] in P.RECORD_TYPES for r in got)
    if not any(noise):
        assert [r["step"] for r in got] == steps
    # The last record follows no garbage, so it always survives.
    if not noise or len(noise) < len(steps) or not noise[len(steps) - 1]:
        assert got and got[-1]["step"] == steps[-1]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048))
def test_decoder_survives_pure_garbage(data: bytes) -> None:
    decoder = P.RecordDecoder()
    for r in decoder.feed(data):
        assert isinstance(r, P.Record) and r["type"] in P.RECORD_TYPES
    decoder.finish()


@settings(max_examples=200, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8))
def test_decoder_survives_mutated_streams(flips: list[tuple[int, int]]) -> None:
    stream = bytearray(b"".join(P.pack(_metric(i)) for i in range(30)))
    for at, value in flips:
        stream[at % len(stream)] = value
    decoder = P.RecordDecoder()
    got = decoder.feed(bytes(stream))
    assert len(got) <= 30 + len(flips)
    assert all(r["type"] in P.RECORD_TYPES for r in got)


def test_status_is_replaced_atomically(tmp_path: Path) -> None:
    P.write_status(tmp_path, {"state": P.RUNNING, "step": 3})
    assert P.read_status(tmp_path)["step"] == 3
    (tmp_path / P.STATUS_FILE).write_text("{not json")
    assert P.read_status(tmp_path) is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".status.")]


def _serve_once(server: P.CommandServer, answers: list) -> threading.Thread:
    def run() -> None:
        for cmd, conn in server.poll(5.0):
            answers.append(cmd)
            P.reply(conn, ok=True, extra="yes")

    t = threading.Thread(target=run)
    t.start()
    return t


def test_command_round_trip_over_owner_only_socket(tmp_path: Path) -> None:
    server = P.CommandServer(tmp_path)
    try:
        mode = stat.S_IMODE(os.stat(server.path).st_mode)
        assert mode & 0o077 == 0, oct(mode)
        seen: list = []
        t = _serve_once(server, seen)
        answer = P.send_command(tmp_path, P.RAMP, target_lr=1e-3, ramp_steps=10)
        t.join()
        assert answer["ok"] and answer["extra"] == "yes"
        assert seen == [{"cmd": P.RAMP, "target_lr": 1e-3, "ramp_steps": 10}]
    finally:
        server.close()
    assert not server.path.exists()


def test_malformed_commands_get_a_reason(tmp_path: Path) -> None:
    server = P.CommandServer(tmp_path)
    try:
        results: list = []

        def poll() -> None:
            results.extend(server.poll(3.0))

        t = threading.Thread(target=poll)
        t.start()
        with pytest.raises(P.ControlError, match="unknown command 'bogus'"):
            P.send_command(tmp_path, "bogus")
        t.join()
        assert results == []
        assert "ramp target_lr must be between" in P.check_command(
            {"cmd": "ramp", "target_lr": -1, "ramp_steps": 3}
        )
        assert P.check_command(["not", "a", "map"])
    finally:
        server.close()


def test_long_run_folder_gets_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    deep.mkdir(parents=True)
    server = P.CommandServer(deep)
    try:
        assert len(os.fsencode(server.path)) < 108
        seen: list = []
        t = _serve_once(server, seen)
        assert P.send_command(deep, P.PAUSE)["ok"]
        t.join()
    finally:
        server.close()


def test_no_listener_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(P.ControlError, match="not listening"):
        P.send_command(tmp_path, P.PAUSE, timeout=1.0)


def test_pack_puts_type_first() -> None:
    raw = P.pack({"step": 1, "type": P.METRIC})
    assert msgpack.unpackb(raw)["type"] == P.METRIC
    assert raw[1:6] == b"\xa4type"


def test_records_are_typed_once_unknown_fields_ignored_bad_fields_skipped() -> None:
    """The decoder makes each record its kind's type; a newer engine's extra field is ignored, and a
    record whose fields have the wrong types is skipped with a warning instead of reaching a reader."""
    decoder = P.RecordDecoder()
    newer = P.pack({"type": "metric", "seq": 0, "step": 3, "loss": 2, "from_the_future": [1, 2]})
    bad = P.pack({"type": "metric", "seq": 1, "step": "three"})
    got = decoder.feed(newer + bad + P.pack(_metric(4)))
    assert len(got) == 2 and all(isinstance(r, P.Metric) for r in got)
    assert got[0].step == 3 and got[0].loss == 2.0 and isinstance(got[0].loss, float)
    assert got[1].step == 4
    assert any("bad fields" in w.text and "metric" in w.text for w in decoder.warnings)
    assert P.RecordDecoder().feed(P.pack(got[0])) == [got[0]]  # a typed record round-trips
    assert not got[0].extra  # a list is no series


def test_extra_numeric_keys_of_metric_and_eval_records_are_kept() -> None:
    """Any numeric key a writer logs beyond the kind's fields is a series of its own (record.extra),
    and survives a round trip; strings, bools, lists and unprintable names are not series."""
    raw = {
        "type": "metric",
        "seq": 0,
        "step": 3,
        "loss": 2.0,
        "train/acc": 0.5,
        "surprise/l1": 1,
        "flag": True,
        "note": "x",
        "bad\x1bkey": 1.0,
    }
    (rec,) = P.RecordDecoder().feed(P.pack(raw))
    assert rec.step == 3 and dict(rec.extra) == {"train/acc": 0.5, "surprise/l1": 1.0}
    assert rec["train/acc"] == 0.5 and "train/acc" in rec
    (again,) = P.RecordDecoder().feed(P.pack(rec))
    assert dict(again.extra) == dict(rec.extra) and again.step == 3
    (ev,) = P.RecordDecoder().feed(P.pack({"type": "eval", "step": 5, "val_loss": 1.5, "val/acc": 0.75}))
    assert dict(ev.extra) == {"val/acc": 0.75}
    (plain,) = P.RecordDecoder().feed(P.pack(_metric(4)))
    assert not plain.extra
