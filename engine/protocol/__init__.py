"""Moved to `nexus_core` (see docs/ARCHITECTURE.md); kept for one release so older imports still work.

`engine.protocol` is `nexus_core.protocol`, and `engine.protocol.records` (schema, runfolder, control)
are the `nexus_core` modules of the same name.
"""

import sys

from nexus_core import control, records, runfolder, schema
from nexus_core.protocol import *  # noqa: F403

for _name, _module in (("control", control), ("records", records), ("runfolder", runfolder), ("schema", schema)):
    sys.modules.setdefault(f"{__name__}.{_name}", _module)
