"""Config sections that check themselves: limits declared beside each field, one checker for all.

A section is a dataclass whose fields say what they accept in their annotations: `Literal[...]` for a
choice, `Annotated[float, Range(0, 1)]` for limits. `Section.check()` holds every field to that (and
every float to being finite, every int to fitting in int64, torch's limit), then runs the section's
own `rules()`: the few checks that compare one field with another. So a value that would fail
minutes into a run fails before any tensor exists, in one line that names the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, is_dataclass
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

from nexus_core.errors import ConfigError
from nexus_core.units import as_int, is_real

INT64_MAX = 2**63 - 1
MAX_STEPS = 10**10
"""The most steps a run may have; the same limit as a ramp's new total (schema.COMMAND_ARGS)."""
MAX_LIST = 1024


@dataclass(frozen=True)
class Range:
    """The limits of one numeric field, declared beside it: `Annotated[float, Range(0, 1, hi_open=True)]`."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    hint: str = ""
    """Said after the limits, e.g. " (0 = off)"."""

    def holds(self, v: float) -> bool:
        above = v > self.lo if self.lo_open else v >= self.lo
        below = v < self.hi if self.hi_open else v <= self.hi
        return above and below

    def text(self) -> str:
        lo, hi = _num(self.lo), _num(self.hi)
        if not (self.lo_open or self.hi_open):
            return f"between {lo} and {hi}{self.hint}"
        return f"in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}{self.hint}"


def _num(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e7 else f"{v:g}"


def R(lo: float, hi: float, **kw: Any) -> Range:  # noqa: N802 - reads like the type it annotates
    return Range(lo, hi, **kw)


Unit = Annotated[float, R(0.0, 1.0)]
"""A fraction in [0, 1]."""
Beta = Annotated[float, R(0.0, 1.0, hi_open=True)]
"""A moving-average coefficient: 1 would never move."""
Weight = Annotated[float, R(0.0, 100.0)]
Layers = Annotated[list[int], R(0, 1023)]
LR = Annotated[float, R(0.0, 1e30, lo_open=True)]
"""Past 1e30 an LR is no longer a float32 number once it meets a gradient (1e39 is inf in float32).
Below that, an LR that makes the loss blow up is nan_policy's job: the run pauses with an alert (the
nan tests use 1e30 to make that happen for real); a ramp's target is capped at 10 (COMMAND_ARGS)."""
Count = Annotated[int, R(1, 1 << 20)]


class Section:
    """Mixin for a config section dataclass: `check(name)` = declared limits, then `rules(name)`."""

    def check(self, name: str) -> None:
        """Raise ConfigError with one line that says what to fix."""
        check_fields(name, self)
        self.rules(name)

    def rules(self, name: str) -> None:
        """Checks that compare fields (every field already holds a value inside its limits)."""


_HINTS: dict[type, dict[str, Any]] = {}


def field_limits(section: Any) -> dict[str, tuple[Any, Range | None, tuple[str, ...]]]:
    """Each value field of a config section: (its base type, its declared Range, its Literal choices).
    Sub-sections (fields holding another section) are not values and are left out."""
    cls = type(section)
    if cls not in _HINTS:
        out: dict[str, Any] = {}
        hints = get_type_hints(cls, include_extras=True)
        for f in fields(cls):
            hint, rng = hints[f.name], None
            if get_origin(hint) is Annotated:
                hint, *meta = get_args(hint)
                rng = next((m for m in meta if isinstance(m, Range)), None)
            choices: tuple[str, ...] = ()
            if get_origin(hint) is Literal:
                choices, hint = get_args(hint), str
            if isinstance(hint, type) and is_dataclass(hint):
                continue
            out[f.name] = (get_origin(hint) or hint, rng, choices)
        _HINTS[cls] = out
    return _HINTS[cls]


def subsections(section: Any) -> dict[str, Any]:
    """The fields of a section that hold a section of their own: {name: that section}."""
    return {
        f.name: getattr(section, f.name) for f in fields(section) if is_dataclass(getattr(section, f.name))
    }


def check_fields(section_name: str, section: Any) -> None:
    """Every value field of one section against its declared type, choices and limits: a float must be
    finite, an int must fit in int64 and both inside their Range."""
    for key, (kind, rng, choices) in field_limits(section).items():
        name, value = f"{section_name}.{key}", getattr(section, key)
        if choices:
            if value not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        elif kind is list:
            if not isinstance(value, list) or len(value) > MAX_LIST or not all(is_int(x) for x in value):
                raise ConfigError(f"{name} must be a list of at most {MAX_LIST} integers, got {short(value)}")
            bad = [x for x in value if rng is not None and not rng.holds(x)]
            if bad and rng is not None:
                raise ConfigError(f"{name}: every entry must be {rng.text()}, got {bad[0]} in {value}")
        elif kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be true or false, got {value!r}")
        elif kind is int:
            if not is_int(value):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
            limits = rng or Range(-INT64_MAX - 1, INT64_MAX)
            if not limits.holds(value):
                raise ConfigError(f"{name} must be {limits.text()}, got {value}")
        elif kind is float:
            if not is_real(value):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(
                    f"{name} must be a finite number{'' if rng is None else ' ' + rng.text()}, got {value}"
                )
            if rng is not None and not rng.holds(value):
                raise ConfigError(f"{name} must be {rng.text()}, got {value!r}")
        elif kind is str and not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")


def short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:60] + "…"


def is_int(v: Any) -> bool:
    return as_int(v) is not None
