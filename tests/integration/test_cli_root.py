"""A `--root` that is not there is one error line and nothing created (`nexus runs`, the dashboard);
`nexus demo --root DIR` and the default ./runs still make their folder. And the README's first
headless example does not take the name the new-run form suggests first."""

from __future__ import annotations

import re
from pathlib import Path

from support import ROOT
from support.engine import assert_one_line_error, run_nexus

from nexus_tui.screens.launch import next_free_name


def test_a_root_that_does_not_exist_is_one_error_line_and_nothing_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "x"
    for args in (
        ["--root", str(missing), "runs"],
        ["runs", "--root", str(missing)],
        ["--root", str(missing), "dashboard"],
        ["dashboard", "--root", str(missing)],
        ["--root", str(missing)],
    ):
        done = run_nexus(*args, cwd=tmp_path)
        assert_one_line_error(done, r"runs folder .*nowhere/x does not exist")
        assert not (tmp_path / "nowhere").exists(), args
    listed = run_nexus("runs", cwd=tmp_path)  # no --root and no ./runs yet: a fresh clone, not an error
    assert listed.returncode == 0 and "no runs yet" in listed.stdout


def test_the_readme_first_headless_run_does_not_take_the_forms_first_name(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    first = re.search(r"nexus train --preset tiny .*--run-dir runs/(\S+)", readme)
    assert first is not None
    assert first.group(1) != next_free_name(tmp_path, "tiny")
