"""The queue file is untrusted input: a damaged, planted, linked or shared file is one line and never
runs a command; edits are serialized and replace the file whole; sweeps expand and name their runs."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from nexus_tui.jobs import ops, queuefile
from nexus_tui.jobs.model import HELD, QUEUED, Job
from nexus_tui.jobs.runner import Runner
from nexus_tui.jobs.slots import Box
from nexus_tui.jobs.sweep import SweepError, expand, parse_axis, rank, run_name, varied_keys


def _planted(root: Path, marker: Path, **changes: object) -> Path:
    """A queue file holding a command that would create `marker`, written as a planter would."""
    doc = {
        "version": 1,
        "owner": os.getuid(),
        "next_id": 2,
        "cpu_slots": 1,
        "jobs": [
            {"id": 1, "name": "planted", "kind": "command", "args": ["touch", str(marker)], "cwd": str(root)}
        ],
    }
    doc.update(changes)
    folder = root / queuefile.QUEUE_DIR
    folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    path = folder / queuefile.QUEUE_FILE
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    return path


def _never_runs(root: Path, marker: Path, pattern: str) -> None:
    runner = Runner(root, box=lambda n, pids: Box("cpu", [0]))
    with pytest.raises(queuefile.QueueError, match=pattern) as e:
        runner.tick()
    assert "\n" not in str(e.value) and "move it aside" in str(e.value)
    assert not marker.exists(), "a command from a file the user did not write ran"
    assert not (root / "planted").exists()


def test_a_world_writable_queue_file_never_runs(runs_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    _planted(runs_root, marker).chmod(0o666)
    _never_runs(runs_root, marker, "not written by this user alone")


def test_a_queue_file_claiming_another_owner_never_runs(runs_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    _planted(runs_root, marker, owner=os.getuid() + 1)
    _never_runs(runs_root, marker, "belongs to uid")


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a file to another user")
def test_a_queue_file_owned_by_another_user_never_runs(runs_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    os.chown(_planted(runs_root, marker), 4242, -1)
    _never_runs(runs_root, marker, "owner uid 4242")


def test_a_linked_queue_file_is_refused(runs_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    real = _planted(runs_root, marker)
    elsewhere = tmp_path / "elsewhere.json"
    real.rename(elsewhere)
    real.symlink_to(elsewhere)
    _never_runs(runs_root, marker, "link")


def test_a_fifo_queue_file_is_refused_without_hanging(runs_root: Path, tmp_path: Path) -> None:
    folder = runs_root / queuefile.QUEUE_DIR
    folder.mkdir(parents=True, mode=0o700)
    os.mkfifo(folder / queuefile.QUEUE_FILE, 0o600)
    with pytest.raises(queuefile.QueueError, match="not a regular file"):
        queuefile.read(runs_root)


def test_a_shared_queue_folder_is_refused(runs_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    _planted(runs_root, marker)
    (runs_root / queuefile.QUEUE_DIR).chmod(0o777)
    _never_runs(runs_root, marker, "not this user's alone")


@pytest.mark.parametrize(
    "damage, pattern",
    [
        ("{not json", "damaged"),
        (json.dumps({"version": 1, "owner": os.getuid(), "jobs": [], "surprise": 1}), "damaged"),
        (
            json.dumps(
                {
                    "version": 1,
                    "owner": os.getuid(),
                    "next_id": 2,
                    "jobs": [{"id": 1, "name": "../../etc", "kind": "train", "args": [], "cwd": "/"}],
                }
            ),
            "run name",
        ),
        (
            json.dumps(
                {
                    "version": 1,
                    "owner": os.getuid(),
                    "next_id": 2,
                    "jobs": [{"id": 1, "name": "a", "kind": "shell", "args": ["rm"], "cwd": "/"}],
                }
            ),
            "damaged",
        ),
        (json.dumps({"version": 9, "owner": os.getuid()}), "version 9"),
    ],
)
def test_a_damaged_queue_is_one_line_and_left_in_place(runs_root: Path, damage: str, pattern: str) -> None:
    folder = runs_root / queuefile.QUEUE_DIR
    folder.mkdir(parents=True, mode=0o700)
    path = folder / queuefile.QUEUE_FILE
    path.write_text(damage)
    path.chmod(0o600)
    with pytest.raises(queuefile.QueueError, match=pattern) as e:
        queuefile.read(runs_root)
    assert "\n" not in str(e.value)
    with pytest.raises(queuefile.QueueError):
        ops.hold(runs_root, ["1"])
    assert path.read_text() == damage, "a refused queue is never overwritten"


def test_concurrent_writers_lose_no_job(runs_root: Path) -> None:
    """Eight writers adding at once (two dashboards, the CLI): every job lands, each id once."""
    errors: list[BaseException] = []

    def add(i: int) -> None:
        try:
            for k in range(5):
                ops.add(runs_root, "command", ["true"], name=f"w{i}-{k}", check=False)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    doc = queuefile.read(runs_root)
    assert len(doc.jobs) == 40 and len({j.id for j in doc.jobs}) == 40
    assert {j.name for j in doc.jobs} == {f"w{i}-{k}" for i in range(8) for k in range(5)}


def test_hold_release_cancel_top_and_priority(runs_root: Path) -> None:
    for name in ("a", "b", "c"):
        ops.add(runs_root, "command", ["true"], name=name, check=False)
    ops.hold(runs_root, ["b"])
    ops.top(runs_root, ["c"])
    ops.cancel(runs_root, ["1"])
    doc = queuefile.read(runs_root)
    by = {j.name: j for j in doc.jobs}
    assert by["b"].state == HELD and by["a"].state == "cancelled" and by["c"].state == QUEUED
    assert by["c"].order < by["b"].order
    ops.release(runs_root, ["b"])
    ops.set_priority(runs_root, ["b"], 5)
    by = {j.name: j for j in queuefile.read(runs_root).jobs}
    assert by["b"].state == QUEUED and by["b"].priority == 5
    with pytest.raises(ops.JobError, match="only a waiting job"):
        ops.hold(runs_root, ["a"])
    with pytest.raises(ops.JobError, match="already queued"):
        ops.add(runs_root, "command", ["true"], name="b", check=False)


def test_queue_picks_the_folder_and_device(runs_root: Path) -> None:
    with pytest.raises(ops.JobError, match="--device is chosen by the queue"):
        ops.add(runs_root, "train", ["--preset", "tiny", "--device", "cuda:1"], check=False)


def test_a_missing_command_is_refused_when_queued(runs_root: Path) -> None:
    with pytest.raises(ops.JobError, match="command not found"):
        ops.add(runs_root, "command", ["no-such-program-anywhere"])


def test_the_head_job_waits_for_enough_slots(runs_root: Path) -> None:
    """A job needing two slots at the head is not passed by one needing one (no starvation)."""
    ops.add(runs_root, "command", ["true"], name="big", gpus=2, check=False)
    ops.add(runs_root, "command", ["true"], name="small", check=False)
    with queuefile.editing(runs_root) as doc:
        # One of the two slots is held by a live job (this test's own process).
        doc.jobs.append(
            Job(
                id=doc.next_id,
                name="running",
                kind="command",
                args=["true"],
                cwd="/",
                state="running",
                pid=os.getpid(),
                devices=[0],
                started=time.time(),
            )
        )
        doc.next_id += 1
    result = Runner(runs_root, box=lambda n, pids: Box("cpu", [0, 1])).tick()
    assert result.started == [], "'small' must wait behind 'big', which needs both slots"
    states = {j.name: j.state for j in queuefile.read(runs_root).jobs}
    assert states == {"big": QUEUED, "small": QUEUED, "running": "running"}


def test_a_foreign_process_keeps_its_gpu() -> None:
    box = Box("gpu", [0, 1], foreign={0: [999], 1: []})
    assert box.free([]) == [1]
    assert box.free([1]) == []


def test_sweep_grid_names_and_ranking() -> None:
    sets = expand([parse_axis("optim.lr=1e-3,3e-3,1e-2"), parse_axis("train.batch_size=8,16")])
    assert len(sets) == 6 and sets[0] == {"optim.lr": "1e-3", "train.batch_size": "8"}
    names = [run_name("s", v, i) for i, v in enumerate(sets)]
    assert names[0] == "s-lr1e-3-bs8" and len(set(names)) == 6
    assert varied_keys(sets) == ["optim.lr", "train.batch_size"]
    drawn = expand([parse_axis("optim.lr=1e-4:1e-2")], draws=5, seed=1)
    assert len(drawn) == 5 and all(1e-4 <= float(d["optim.lr"]) <= 1e-2 for d in drawn)
    assert expand([parse_axis("optim.lr=1e-4:1e-2")], draws=5, seed=1) == drawn, "seeded"
    ranked = rank(
        [("a", {}, 2.0, "finished", 3), ("b", {}, None, "queued", 0), ("c", {}, 1.0, "finished", 3)]
    )
    assert [r[0] for r in ranked] == ["c", "a", "b"]
    with pytest.raises(SweepError, match="--random"):
        expand([parse_axis("optim.lr=1e-4:1e-2")])
    with pytest.raises(SweepError, match="section.key"):
        parse_axis("lr")
    paired = expand([parse_axis("optim.lr=1e-3,3e-3"), parse_axis("train.batch_size=8,16")], zipped=True)
    assert paired == [
        {"optim.lr": "1e-3", "train.batch_size": "8"},
        {"optim.lr": "3e-3", "train.batch_size": "16"},
    ]
    with pytest.raises(SweepError, match="same number"):
        expand([parse_axis("optim.lr=1e-3,3e-3"), parse_axis("train.batch_size=8")], zipped=True)
    assert parse_axis("lr=1,2", command=True).values == ("1", "2")


def test_a_job_after_a_run_that_will_never_exist_fails_in_one_line(runs_root: Path) -> None:
    ops.add(runs_root, "command", ["true"], name="first", check=False)
    ops.add(runs_root, "command", ["true"], name="second", after="first", check=False)
    ops.cancel(runs_root, ["first"])
    Runner(runs_root, box=lambda n, pids: Box("cpu", [])).tick()  # no slot: nothing can start anyway
    second = next(j for j in queuefile.read(runs_root).jobs if j.name == "second")
    assert second.state == "failed" and "first" in second.outcome and "\n" not in second.outcome


def test_a_name_taken_since_it_was_queued_fails_instead_of_writing_into_it(runs_root: Path) -> None:
    ops.add(runs_root, "train", ["--preset", "tiny"], name="taken", check=False)
    (runs_root / "taken").mkdir()
    (runs_root / "taken" / "metrics.msgpack").write_bytes(b"someone else's run")
    Runner(runs_root, box=lambda n, pids: Box("cpu", [0])).tick()
    job = queuefile.read(runs_root).jobs[0]
    assert job.state == "failed" and "was made since it was queued" in job.outcome
    assert (runs_root / "taken" / "metrics.msgpack").read_bytes() == b"someone else's run"


def test_gpus_that_vanish_under_running_jobs_start_nothing_on_the_cpu(runs_root: Path) -> None:
    ops.add(runs_root, "command", ["true"], name="queued", check=False)
    with queuefile.editing(runs_root) as doc:
        doc.jobs.append(
            Job(
                id=doc.next_id,
                name="on-gpu",
                kind="command",
                args=["true"],
                cwd="/",
                state="running",
                pid=os.getpid(),
                devices=[0],
                device="cuda:0",
                started=time.time(),
            )
        )
        doc.next_id += 1
    said: list[tuple[str, str]] = []
    runner = Runner(
        runs_root,
        on_event=lambda k, t: said.append((k, t)),
        box=lambda n, pids: Box("cpu", [0, 1], note="no NVIDIA driver: Driver Not Loaded"),
    )
    assert runner.tick().started == []
    assert next(j for j in queuefile.read(runs_root).jobs if j.name == "queued").state == QUEUED
    assert said == [
        (
            "warning",
            "the GPUs are gone (no NVIDIA driver: Driver Not Loaded); queued jobs wait until they are back",
        )
    ]


def test_old_ended_jobs_are_dropped_so_the_queue_never_fills(runs_root: Path) -> None:
    for i in range(6):
        ops.add(runs_root, "command", ["true"], name=f"j{i}", check=False, sweep="s" if i == 0 else "")
    ops.cancel(runs_root, [f"j{i}" for i in range(5)])
    with queuefile.editing(runs_root) as doc:
        ops.prune(doc, keep=2)
    left = [j.name for j in queuefile.read(runs_root).jobs]
    assert left == ["j0", "j4", "j5"], "a sweep's job outlives others; waiting jobs are never dropped"


def test_a_run_started_outside_the_queue_takes_a_cpu_slot(runs_root: Path) -> None:
    ops.add(runs_root, "command", ["true"], name="queued", check=False)
    outside = runs_root / "by-hand"
    outside.mkdir()
    (outside / "status").write_text(
        json.dumps({"state": "running", "pid": os.getpid(), "updated": time.time()})
    )
    assert Runner(runs_root, box=lambda n, pids: Box("cpu", [0])).tick().started == []
    assert queuefile.read(runs_root).jobs[0].state == QUEUED
