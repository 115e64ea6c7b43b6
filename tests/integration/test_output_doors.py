"""Documents leave through doors too: output paths a person types (`-o`) are written through like
`tee` (a symlink followed and kept, a FIFO streamed into, never renamed over), and every text that came
from a run is escaped in every document, headings and table cells included (issue 18)."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from support.runfolder import write_finished

from nexus_tui.__main__ import main

HOSTILE = "x<img src=x onerror=alert(1)>|y"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    write_finished(root / "plain", 60, eval_every=20)
    write_finished(root / HOSTILE, 60, eval_every=20)
    return root


@pytest.mark.parametrize("command", [["report"], ["compare"]])
def test_a_hostile_run_name_is_escaped_in_headings_and_cells(
    runs: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(runs), *command, HOSTILE, "plain"]) == 0
    text = capsys.readouterr().out
    outside_code = re.sub(r"`[^`\n]*`", "", re.sub(r"```text\n.*?\n```", "", text, flags=re.S))
    raw = re.compile(r"(?<!\\)<img")
    assert not raw.search(outside_code), [ln for ln in outside_code.splitlines() if raw.search(ln)]
    heading = next(ln for ln in text.splitlines() if ln.startswith("## Comparing"))
    assert "\\<img" in heading
    for block in re.split(r"\n\n", outside_code):  # every table keeps its shape: one cell per column
        lines = [ln for ln in block.splitlines() if ln.startswith("|")]
        assert len({len(re.split(r"(?<!\\)\|", ln)) for ln in lines}) <= 1, block


@pytest.mark.parametrize("command", [["export", "--csv"], ["report"]])
def test_an_output_link_is_written_through_and_stays_a_link(
    runs: Path, tmp_path: Path, command: list[str]
) -> None:
    target = tmp_path / "kept" / "out.txt"
    target.parent.mkdir()
    target.write_text("old\n")
    os.chmod(target, 0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert main(["--root", str(runs), *command, "plain", "-o", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target), "the link was replaced"
    assert target.read_text().startswith(("run,", "# ")), target.read_text()[:80]
    assert oct(target.stat().st_mode & 0o777) == oct(0o640), "the file's mode is kept"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"], "no temp left beside it"


@pytest.mark.parametrize("command", [["export", "--csv"], ["report"]])
def test_an_output_fifo_is_streamed_into_not_renamed_over(
    runs: Path, tmp_path: Path, command: list[str]
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:  # the person's `cat pipe` on the other end
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert main(["--root", str(runs), *command, "plain", "-o", str(fifo)]) == 0
    reader.join(60)
    assert not reader.is_alive()
    assert fifo.is_fifo(), "the FIFO was renamed over"
    assert got and got[0].startswith((b"run,", b"# "))


def test_an_output_folder_is_one_error_line(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(runs), "export", "--csv", "plain", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "directory" in err[0], err


@pytest.mark.parametrize("command", [["export", "--csv"], ["report"]])
def test_dev_stdout_on_a_pipe_is_streamed_into(runs: Path, command: list[str]) -> None:
    """`-o /dev/stdout` is a link to /proc/self/fd/1, here a pipe (`pipe:[N]`, no name to rename
    over): the document arrives on the pipe and /dev/stdout stays what it was."""
    from support.engine import run_nexus

    before = os.readlink("/dev/stdout")
    done = run_nexus("--root", str(runs), *command, "plain", "-o", "/dev/stdout")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(("run,", "# ")), done.stdout[:200]
    assert os.readlink("/dev/stdout") == before
