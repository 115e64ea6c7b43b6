"""What the tests share, so that every test drives engines, waits and builds run folders the same way.

- `preset`: the one tiny test preset (`test-tiny.toml`) as `--set` arguments or form overrides.
- `engine`: a real `python -m engine` child (on a real pipe, or run to the end), `nexus` commands, and
  the one-line-error check every CLI test makes.
- `wait`: `wait_until` (plain code) and `pilot_wait_until` (a Textual app under Pilot), both with
  generous deadlines and a message that names what was awaited.
- `records`: record maps as the engine writes them (hello, metric, eval, state, ...).
- `runfolder`: run folders written with the engine's own writer, and a byte snapshot of a folder.
- `reporter`: a real script that reports with `import nexus`, in a subprocess.
- `scripts/`: those scripts.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (engines run with it as cwd and on PYTHONPATH)."""
