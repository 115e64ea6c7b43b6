"""What `nexus check` found about one run folder (`Report`): its own module, so the folder checks
(check.py) and the control socket's (check_socket.py) both write to it without importing each other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SHOWN = 3
"""Findings of one kind shown in full; the rest are counted."""


@dataclass
class Report:
    """What `check` found: errors (the folder breaks the spec) and warnings (allowed, but suspect)."""

    run_dir: Path
    errors: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    """What was checked and passed, in words (`nexus check` prints it)."""

    def error(self, kind: str, text: str) -> None:
        self.errors[kind] += 1
        if self.errors[kind] <= SHOWN:
            self.lines.append(f"error: {text}")

    def warn(self, kind: str, text: str) -> None:
        self.warnings[kind] += 1
        if self.warnings[kind] <= SHOWN:
            self.lines.append(f"warning: {text}")

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> list[str]:
        """The findings, a line for each kind's overflow, and the verdict."""
        out = list(self.lines)
        for kind, n in {**self.errors, **self.warnings}.items():
            if n > SHOWN:
                out.append(f"... and {n - SHOWN} more of: {kind}")
        verdict = "ok" if self.ok else "FAILED"
        out.append(
            f"{verdict}: {self.run_dir.name}: {sum(self.errors.values())} "
            f"errors, {sum(self.warnings.values())} warnings; checked {', '.join(self.checked) or 'nothing'}"
        )
        return out
