"""Being told: a run finished, crashed or alerted, or the queue drained, sent to every notification
service the user configured, through Apprise (ntfy, Slack, Discord, e-mail, Telegram, a JSON POST
and dozens more: `json://host:port/path`, `ntfy://topic`, ...). URLs come from the settings file's
`notify` key and the NEXUS_NOTIFY environment variable (space-separated). Text from a run is
cleaned before it leaves; a service that fails is one line, never an exception into the caller."""

from __future__ import annotations

import os
from collections.abc import Callable

from nexus_core.text import clean_text
from nexus_tui.settings import load_settings

NOTIFY_ENV = "NEXUS_NOTIFY"
TOLD = ("ended", "drained", "alert")
"""The runner's events that reach the user's services ('started' and warnings stay in its log)."""


def configured_urls() -> list[str]:
    """The Apprise URLs from the settings file and NEXUS_NOTIFY, in that order, without repeats."""
    settings, _ = load_settings()
    urls = [*settings.notify.split(), *os.environ.get(NOTIFY_ENV, "").split()]
    return list(dict.fromkeys(urls))


def send(title: str, body: str, urls: list[str] | None = None) -> str:
    """Send one notification to every URL; '' when all took it (or none is configured), else one
    line that says which could not be used or reached."""
    urls = configured_urls() if urls is None else urls
    if not urls:
        return ""
    import apprise  # imported only when something is sent: it is not light

    box = apprise.Apprise()
    bad = [u for u in urls if not box.add(u)]
    title, body = clean_text(title, limit=200), clean_text(body, limit=2000, multiline=True)
    ok = bool(len(box)) and bool(box.notify(body=body, title=title))
    if bad:
        return f"notify: {len(bad)} URL(s) are not ones Apprise knows (check the settings' notify / {NOTIFY_ENV})"
    return "" if ok else "notify: a notification service did not accept the message"


def notifier(
    also: Callable[[str, str], None] | None = None, urls: list[str] | None = None
) -> Callable[[str, str], None]:
    """An event handler for the runner: every event to `also` (its log), the ones people want to
    hear of (TOLD) to their services too."""

    def on_event(kind: str, text: str) -> None:
        if also is not None:
            also(kind, text)
        if kind in TOLD:
            err = send(f"nexus: {'queue drained' if kind == 'drained' else kind}", text, urls)
            if err and also is not None:
                also("warning", err)

    return on_event
