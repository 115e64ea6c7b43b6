"""The Nexus training engine: torch lives here, textual never does.

The torch-free parts both sides share live in `nexus_core`. `engine.config`, `engine.schedule` and
`engine.errors` moved there; for one release they stay importable under their old names.
"""

import sys as _sys

from nexus_core import config, errors, schedule

for _name, _module in (("config", config), ("errors", errors), ("schedule", schedule)):
    _sys.modules.setdefault(f"{__name__}.{_name}", _module)
