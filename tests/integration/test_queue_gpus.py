"""The queue on a two-GPU box, without a GPU: the real nvidia-ml-py in the runner loads the driver
stand-in (tests/support/fake_nvml, built with gcc here). A GPU a foreign process uses is not handed
out; a job gets the free one as CUDA_VISIBLE_DEVICES; the next waits until the foreign one leaves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT
from support.engine import engine_env
from support.fake_nvml import TWO_GPUS, FakeGpus
from support.wait import wait_until

from nexus_tui.jobs import ops, queuefile


@pytest.fixture
def gpus(tmp_path: Path) -> FakeGpus:
    try:
        return FakeGpus(tmp_path / "nvml")
    except (RuntimeError, subprocess.CalledProcessError) as e:  # pragma: no cover - gcc is on CI's machines
        pytest.skip(f"cannot build the NVML stand-in: {e}")


def state(root: Path, name: str) -> str:
    return next(j.state for j in queuefile.read(root).jobs if j.name == name)


def test_jobs_get_free_gpus_and_a_foreign_process_keeps_its_own(
    runs_root: Path, tmp_path: Path, gpus: FakeGpus
) -> None:
    foreign = subprocess.Popen(["sleep", "600"])  # someone else's process, on GPU 0
    try:
        gpus.write(TWO_GPUS, [(0, foreign.pid, 8 << 30)])
        gate = tmp_path / "GATE"
        for name in ("first", "second"):
            seen = tmp_path / f"{name}.gpu"
            ops.add(
                runs_root,
                "command",
                [
                    "sh",
                    "-c",
                    f'echo "$CUDA_VISIBLE_DEVICES" > {seen}; while [ ! -e {gate} ]; do sleep 0.2; done',
                ],
                name=name,
            )
        runner = subprocess.Popen(
            [sys.executable, "-m", "nexus_tui", "queue", "run", "--exit-when-idle", "--root", str(runs_root)],
            env=gpus.env(engine_env()),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until(
                lambda: (tmp_path / "first.gpu").exists() and (tmp_path / "first.gpu").read_text().strip(),
                120,
                "the first job started",
                proc=runner,
            )
            assert (tmp_path / "first.gpu").read_text().strip() == "1", "GPU 0 is the foreign process's"
            wait_until(lambda: state(runs_root, "first") == "running", 60, "the runner's record of the start")
            job = next(j for j in queuefile.read(runs_root).jobs if j.name == "first")
            assert job.devices == [1] and state(runs_root, "second") == "queued", job
            # The first job's own process on its GPU is not foreign; the foreign one leaves GPU 0.
            gpus.write(TWO_GPUS, [(1, job.pid or 0, 2 << 30)])
            wait_until(
                lambda: (tmp_path / "second.gpu").exists() and (tmp_path / "second.gpu").read_text().strip(),
                120,
                "the second job started once GPU 0 was free",
                proc=runner,
            )
            assert (tmp_path / "second.gpu").read_text().strip() == "0"
            gate.touch()
            out, _ = runner.communicate(timeout=120)
        finally:
            if runner.poll() is None:
                runner.kill()
        assert runner.returncode == 0, out
        assert {state(runs_root, n) for n in ("first", "second")} == {"done"}
        assert "on cuda:1" in out and "on cuda:0" in out
    finally:
        foreign.kill()
        foreign.wait()


def test_a_job_needing_more_gpus_than_the_box_has_fails_in_one_line(runs_root: Path, gpus: FakeGpus) -> None:
    gpus.write(TWO_GPUS)
    ops.add(runs_root, "command", ["true"], name="huge", gpus=4)
    done = subprocess.run(
        [sys.executable, "-m", "nexus_tui", "queue", "run", "--exit-when-idle", "--root", str(runs_root)],
        env=gpus.env(engine_env()),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout
    job = queuefile.read(runs_root).jobs[0]
    assert job.state == "failed" and job.outcome == "needs 4 slots; this box has 2"
