"""Reading back the markdown that `nexus compare` and `nexus report` print."""

from __future__ import annotations

import re

CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""A control character or bidi override: none may survive into text that reaches a terminal."""


def table_after(text: str, heading: str) -> list[list[str]]:
    """The cells of the markdown table under a heading (header row first, the --- rule dropped)."""
    lines = text.split(heading, 1)[1].strip().splitlines()
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return [rows[0], *rows[2:]] if rows else []


def section(text: str, heading: str, run: str | None = None) -> str:
    """The text under `### heading` (of `## Run run` when given), up to the next heading."""
    if run is not None:
        text = text.split(f"## Run {run}\n", 1)[1]
    return text.split(f"### {heading}\n", 1)[1].split("\n#", 1)[0].strip()


def table(text: str) -> list[list[str]]:
    """The first markdown table in text: header and rows (the --- rule dropped), cells stripped."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
    return [rows[0], *rows[2:]]


def column(rows: list[list[str]], name: str) -> list[str]:
    i = rows[0].index(name)
    return [r[i] for r in rows[1:]]
