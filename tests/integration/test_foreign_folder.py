"""A foreign run folder is data, never instructions (nexus_core/trust.py, docs/SECURITY.md): a folder
whose config reads its corpus from outside the run folder and the user's data roots (a planted
`data.source` pointing at a private file) is refused by `resume`, `eval` and `generate`... unless the
person says `--trust-foreign`; an ordinary folder (stdlib corpus, or data beside the runs) is not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.engine import assert_one_line_error, run_engine, run_nexus
from support.preset import TINY

from nexus_core import protocol as P
from nexus_core.trust import DATA_ROOTS_ENV, check


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real stopped run whose config was then pointed at a 'private' file outside its runs' project."""
    secret = tmp_path_factory.mktemp("home") / "id_ed25519"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n" + "A" * 4000 + "\n")
    run = tmp_path_factory.mktemp("shared") / "runs" / "planted"
    done = run_engine(
        "train",
        "--run-dir",
        str(run),
        "--steps",
        "6",
        "--stop-at",
        "4",
        *TINY,
        "--set",
        "train.ckpt_every=4",
        "--set",
        "train.eval_every=0",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    config = (run / P.CONFIG_FILE).read_text()
    assert 'source = "stdlib"' in config
    (run / P.CONFIG_FILE).write_text(config.replace('source = "stdlib"', f"source = {str(secret)!r}"))
    return run, secret


def test_the_verdict_names_the_outside_corpus_and_the_files(planted: tuple[Path, Path]) -> None:
    run, secret = planted
    verdict = check(run, "resume")
    assert verdict and str(secret) in verdict.reasons[0]
    assert any(r.endswith(P.CONFIG_FILE) for r in verdict.reads)
    assert any(w.endswith(P.METRICS_FILE) for w in verdict.writes)
    assert not check(run, "generate"), "generate reads no corpus: nothing foreign about it"


def test_data_roots_the_user_names_make_the_corpus_trusted(
    planted: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, secret = planted
    monkeypatch.setenv(DATA_ROOTS_ENV, str(secret.parent))
    assert not check(run, "resume")


@pytest.mark.parametrize("command", ["resume", "eval"])
def test_the_command_line_refuses_a_foreign_folder_unless_told(
    planted: tuple[Path, Path], command: str
) -> None:
    run, secret = planted
    before = (run / P.METRICS_FILE).read_bytes()
    done = run_nexus(command, "--run-dir", str(run), timeout=180)
    assert_one_line_error(done, re.escape("--trust-foreign"))
    assert str(secret) in done.stderr
    assert (run / P.METRICS_FILE).read_bytes() == before, "a refused command wrote the folder"


def test_trust_foreign_lets_the_person_go_ahead(planted: tuple[Path, Path]) -> None:
    run, _ = planted
    done = run_nexus("eval", "--run-dir", str(run), "--batches", "1", "--trust-foreign", timeout=300)
    assert "not yours to trust" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_data_roots_in_the_settings_file_are_kept_by_the_dashboard(
    planted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from nexus_tui.settings import load_settings, save_settings, settings_path

    run, secret = planted
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"data_roots": [str(secret.parent)]}))
    assert not check(run, "resume")
    settings, said = load_settings(path)
    settings.ema = 0.3  # the dashboard saves on any change: the user's data roots must survive it
    assert said == "" and save_settings(settings, path) == ""
    assert json.loads(path.read_text())["data_roots"] == [str(secret.parent)]
    assert not check(run, "resume")
