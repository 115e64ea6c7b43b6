"""The Nexus dashboard app, the top layer of nexus_tui: compose, key bindings and routing.

`nexus_app.NexusApp` composes the screen and routes service messages (`messages.py`, posted by the
service `hub.py` from its threads) into the store and widgets; its keys live in two mixins by job,
`run_actions` (what a person does to a run) and `view_actions` (how the charts show it).
"""

from nexus_tui.app.nexus_app import NexusApp, make_app
from nexus_tui.settings import Settings

__all__ = ["NexusApp", "Settings", "make_app"]
