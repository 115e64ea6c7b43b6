"""The two side doors the first hardening missed, each tried as an attacker would:

- the dashboard's decoding child (prebuild) started from a directory holding a planted `numpy/` and
  `nexus_tui/` must import neither (it runs isolated, like the engine);
- a planted run folder whose `engine.log` links to a file of the user's (`~/.ssh/authorized_keys`)
  must never be appended to when the run is resumed, and text from a config (a corpus path holding a
  newline and a key) must never start a line of its own in the engine's log.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.engine import run_engine
from support.preset import TINY
from support.runfolder import write_finished

from nexus_core import protocol as P
from nexus_tui.history.columnar import cachefile
from nexus_tui.live.launch_args import LaunchError
from nexus_tui.live.prebuild import Prebuild
from nexus_tui.live.supervisor import Supervisor

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLANTEDKEY attacker@example"


def test_the_decoding_child_never_imports_from_the_working_directory(
    runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "PLANTED_RAN"
    project = tmp_path / "project"
    for package in ("numpy", "nexus_tui", "msgspec"):
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write('{package}\\n')\n")
    write_finished(runs_root / "long", 9000, eval_every=1000)
    monkeypatch.chdir(project)
    child = Prebuild.start(runs_root)
    assert child is not None, "the long run should get a decoding child"
    deadline = time.monotonic() + 120
    while not child.ended and time.monotonic() < deadline:
        time.sleep(0.05)
    child.close()
    assert not marker.exists(), f"a planted package ran: {marker.read_text()}"
    assert child.proc.returncode == 0
    assert cachefile.worth_building(runs_root / "long") is False, "the child built the run's cache"


@pytest.mark.parametrize("link", ["symlink", "hard link"])
def test_resume_never_appends_through_a_planted_log_link(runs_root: Path, tmp_path: Path, link: str) -> None:
    run = runs_root / "planted"
    done = run_engine(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "8",
        "--stop-at",
        "4",
        *TINY,
        "--set",
        "train.ckpt_every=4",
        "--set",
        "train.eval_every=0",
    )
    assert done.returncode == 0, done.stderr
    victim = tmp_path / "authorized_keys"
    victim.write_text("ssh-ed25519 AAAA the-users-own-key\n")
    before = victim.read_bytes()
    (run / P.LOG_FILE).unlink(missing_ok=True)  # a headless run prints to its terminal
    if link == "symlink":
        (run / P.LOG_FILE).symlink_to(victim)
    else:
        (run / P.LOG_FILE).hardlink_to(victim)
    exits: dict[str, int | None] = {}
    sup = Supervisor(runs_root, lambda *a: None, lambda n, c, t: exits.setdefault(n, c), lambda *a: None)
    try:
        with pytest.raises(LaunchError, match=link):
            sup.resume(run)
    finally:
        sup.shutdown(stop_runs=True)
    assert victim.read_bytes() == before, "the user's file was written through the planted link"
    assert not exits, "no engine was started"


def test_a_config_path_with_a_newline_never_starts_a_line_in_the_log(tmp_path: Path) -> None:
    corpus = tmp_path / f"corpus\n{KEY}\n"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the quick brown fox jumps over the lazy dog. " * 400)
    run = tmp_path / "runs" / "r"
    done = run_engine(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "2",
        *TINY,
        "--set",
        "train.eval_every=0",
        "--set",
        f"data.source={json.dumps(str(corpus))}",
    )
    out = done.stdout + done.stderr
    assert "corpus" in out, out
    for line in out.splitlines():
        assert not line.startswith("ssh-"), f"a planted line in the log: {line!r}"
