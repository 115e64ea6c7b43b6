"""The first frame waits only for Textual and the widgets' classes.

The data path (numpy, the columnar decoder, the store), the services (watchdog, psutil, NVML, the
engine's config schema) and the control socket's msgpack are imported right after the first frame,
when the app makes its services. How long the first frame takes is measured by
`bench/scale.py --frames`, never asserted; what it imports is asserted here, in a fresh interpreter
(this one has imported everything already).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

AFTER_THE_FIRST_FRAME = (
    "numpy",
    "msgpack",
    "watchdog",
    "psutil",
    "pynvml",
    "nexus_core.config",
    "nexus_core.control",
    "nexus_core.protocol",
    "nexus_tui.app.hub",
    "nexus_tui.history.store",
    "nexus_tui.curves.curves",
    "nexus_tui.history.columnar",
)

PROBE = """
import json, sys
from pathlib import Path
import nexus_tui.__main__  # what typing `nexus` imports before it builds the app
from nexus_tui.app import make_app
make_app(root=Path(sys.argv[1]))
print(json.dumps(sorted(m for m in sys.modules)))
"""


def test_the_app_is_built_without_the_data_path_or_the_services(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    loaded = set(json.loads(out))
    early = [m for m in AFTER_THE_FIRST_FRAME if m in loaded]
    assert not early, f"imported before the first frame: {early}"
    assert "textual.app" in loaded and "nexus_tui.widgets.charts_panel" in loaded  # the probe did build it
