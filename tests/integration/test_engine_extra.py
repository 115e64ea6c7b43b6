"""A dashboard-only install (no torch: `pip install nexus` without the `engine` extra) watches runs,
and anything that must train says so in one line. Real subprocesses, with torch made unimportable by
an import hook (a sitecustomize on PYTHONPATH), exactly as if it were not installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

NO_TORCH = textwrap.dedent(
    """
    import sys

    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "torch":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NoTorch())
    """
)
LINE = "error: training needs torch: pip install 'nexus[engine]'"
NEXUS = [sys.executable, "-c", "import sys; from nexus_tui.__main__ import main; sys.exit(main())"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(NO_TORCH)
    return {
        **os.environ,
        "PYTHONPATH": str(hook),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "OMP_NUM_THREADS": "1",
    }


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_the_hook_really_hides_torch(env: dict[str, str], tmp_path: Path) -> None:
    done = run([sys.executable, "-c", "import torch"], env, tmp_path)
    assert done.returncode != 0 and "No module named 'torch'" in done.stderr


def test_watching_works_without_torch_and_training_says_what_to_install(
    env: dict[str, str], tmp_path: Path
) -> None:
    # A run written by the torch-free reporter, in the same torch-less interpreter.
    script = textwrap.dedent(
        """
        import sys
        import nexus
        run = nexus.init(run_dir="runs/plain", total_steps=20)
        for step in range(20):
            run.log({"loss": 3.0 - step * 0.1, "lr": 1e-3})
        run.finish()
        assert "torch" not in sys.modules
        """
    )
    done = run([sys.executable, "-c", script], env, tmp_path)
    assert done.returncode == 0, done.stderr

    listed = run([*NEXUS, "runs"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "plain" in listed.stdout and "finished" in listed.stdout

    report = run([*NEXUS, "report", "plain"], env, tmp_path)
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("#") and "plain" in report.stdout

    for args in (["train", "--preset", "tiny", "--run-dir", "runs/new"], ["demo"]):
        refused = run([*NEXUS, *args], env, tmp_path)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [LINE], refused.stderr
        assert not (tmp_path / "runs" / "new").exists()


DASHBOARD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from nexus_tui.app import NexusApp

    async def main():
        app = NexusApp(Path("runs"), demo=True, demo_steps=10, settings_path=Path("settings.json"))
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                said = [n.message for n in app._notifications]
                if any("training needs torch" in m for m in said):
                    break
                await pilot.pause(0.1)
            assert app.store.get("plain") is not None, "the finished run is listed"
            assert not app.services.live_runs()
            for message in said:
                print("NOTE", message)
        assert "torch" not in sys.modules

    asyncio.run(main())
    """
)


def test_dashboard_without_torch_lists_runs_and_refuses_a_launch_with_a_notification(
    env: dict[str, str], tmp_path: Path
) -> None:
    writer = "import nexus\nrun = nexus.init(run_dir='runs/plain')\nrun.log({'loss': 1.0})\nrun.finish()\n"
    assert run([sys.executable, "-c", writer], env, tmp_path).returncode == 0
    done = run([sys.executable, "-c", DASHBOARD], env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    notes = [line for line in done.stdout.splitlines() if line.startswith("NOTE ") and "torch" in line]
    assert notes and all(
        note.endswith("launch failed: training needs torch: pip install 'nexus[engine]'") for note in notes
    ), done.stdout
    assert not any((tmp_path / "runs").glob("demo-*")), "no run folder for a launch that could not start"


def test_the_engine_itself_says_the_same_line_without_torch(env: dict[str, str], tmp_path: Path) -> None:
    """`python -m engine train` run directly (or by a launcher with another interpreter) in a
    torch-less environment: the arguments and config are checked, then the same one line."""
    code = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
    done = run(
        [sys.executable, "-c", code, "train", "--preset", "tiny", "--run-dir", "runs/e", "--steps", "1"],
        env,
        tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [LINE], done.stderr
