"""Sweeps: a grid (or random draws from it) over `--set` values becomes queued runs whose names say
their values, and a ranking of those runs by best val loss with the varied values as columns.

Pure functions: `expand` (the value sets), `run_name` (a name per set), `rank` (the table rows).
The jobs remember their `--set` arguments and their sweep's name, so the queue itself is the sweep's
record: nothing else is written."""

from __future__ import annotations

import itertools
import math
import random
import re
from dataclasses import dataclass

from nexus_core.names import RUN_NAME_RE

MAX_RUNS = 512


class SweepError(Exception):
    """A sweep cannot be made; one line that says what to fix."""


@dataclass(frozen=True)
class Axis:
    """One swept key: its values (text, as `--set` takes them), or a range for random draws."""

    key: str
    values: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None


def parse_axis(text: str, command: bool = False) -> Axis:
    """`optim.lr=1e-3,3e-3` (a list) or `optim.lr=1e-4:1e-2` (a range, for --random: log-uniform
    when both ends are positive). For a command's sweep the key is any name its `{name}` fills."""
    key, sep, rest = text.partition("=")
    key = key.strip()
    pattern = r"[A-Za-z_][A-Za-z0-9_]*" + (
        r"(\.[A-Za-z_][A-Za-z0-9_]*)*" if command else r"(\.[A-Za-z_][A-Za-z0-9_]*)+"
    )
    if not sep or not re.fullmatch(pattern, key) or not rest.strip():
        form = "name" if command else "section.key"
        raise SweepError(f"--grid {text!r}: write {form}=v1,v2,... or {form}=lo:hi")
    if ":" in rest and "," not in rest:
        a, _, b = rest.partition(":")
        try:
            lo, hi = float(a), float(b)
        except ValueError:
            raise SweepError(f"--grid {text!r}: a range is two numbers, lo:hi") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise SweepError(f"--grid {text!r}: a range needs finite lo < hi")
        return Axis(key, lo=lo, hi=hi)
    values = tuple(v.strip() for v in rest.split(","))
    if any(not v for v in values) or len(set(values)) != len(values):
        raise SweepError(f"--grid {text!r}: empty or repeated values")
    return Axis(key, values)


def expand(axes: list[Axis], draws: int = 0, seed: int = 0, zipped: bool = False) -> list[dict[str, str]]:
    """The value sets: every combination of the lists (a grid), the lists side by side (`zipped`: a
    list of runs, the i-th value of each key together), or `draws` random sets (ranges drawn
    log-uniform or uniform, lists uniformly, no set twice). Keys in the order given."""
    if not axes:
        raise SweepError("a sweep needs at least one --grid key=values")
    if len({a.key for a in axes}) != len(axes):
        raise SweepError("a key is swept twice: give it one --grid")
    if zipped:
        if any(not a.values for a in axes) or len({len(a.values) for a in axes}) != 1:
            raise SweepError("--zip pairs lists of one length: give every --grid the same number of values")
        return [
            dict(zip([a.key for a in axes], vs, strict=True))
            for vs in zip(*(a.values for a in axes), strict=True)
        ]
    if draws <= 0:
        if ranged := [a.key for a in axes if not a.values]:
            raise SweepError(f"{ranged[0]} is a range: give --random N to draw from it")
        size = math.prod(len(a.values) for a in axes)
        if size > MAX_RUNS:
            raise SweepError(f"the grid is {size} runs; at most {MAX_RUNS} (use --random N)")
        return [
            dict(zip([a.key for a in axes], combo, strict=False))
            for combo in itertools.product(*(a.values for a in axes))
        ]
    if draws > MAX_RUNS:
        raise SweepError(f"--random {draws}: at most {MAX_RUNS}")
    rng = random.Random(seed)
    out: list[dict[str, str]] = []
    seen: set[tuple[str, ...]] = set()
    room = math.prod(len(a.values) for a in axes) if all(a.values for a in axes) else draws
    for _ in range(draws * 50):
        if len(out) >= min(draws, room):
            break
        pick = {a.key: _draw(a, rng) for a in axes}
        sig = tuple(pick.values())
        if sig not in seen:
            seen.add(sig)
            out.append(pick)
    return out


def _draw(axis: Axis, rng: random.Random) -> str:
    if axis.values:
        return rng.choice(axis.values)
    assert axis.lo is not None and axis.hi is not None
    if axis.lo > 0:
        value = math.exp(rng.uniform(math.log(axis.lo), math.log(axis.hi)))
    else:
        value = rng.uniform(axis.lo, axis.hi)
    return f"{value:.3g}"


def fill(template: list[str], values: dict[str, str]) -> list[str]:
    """A command's arguments with each `{key}` replaced by its value (other braces left alone);
    SweepError for a key the command never uses."""
    unused = [k for k in values if not any("{" + k + "}" in a for a in template)]
    if unused:
        raise SweepError(
            f"the command never uses {{{unused[0]}}}: write it where the value goes, e.g. --lr {{{unused[0]}}}"
        )
    out = []
    for arg in template:
        for k, v in values.items():
            arg = arg.replace("{" + k + "}", v)
        out.append(arg)
    return out


def short(key: str) -> str:
    """A key's short form in a run name: its last part, with a few well-known ones shortened."""
    last = key.rsplit(".", 1)[-1]
    return {
        "batch_size": "bs",
        "weight_decay": "wd",
        "warmup_steps": "wu",
        "n_layers": "L",
        "d_model": "d",
        "n_heads": "h",
    }.get(last, last)


def run_name(sweep: str, values: dict[str, str], index: int) -> str:
    """`SWEEP-lr1e-3-bs8`: the sweep's name and each varied value (characters a name cannot hold
    become '_'); past 64 characters, the index stands in for the values."""
    parts = [f"{short(k)}{re.sub(r'[^A-Za-z0-9._-]', '_', v)}" for k, v in values.items()]
    name = "-".join([sweep, *parts])
    if len(name) > 64 or not RUN_NAME_RE.match(name):
        name = f"{sweep[:56]}-{index + 1}"
    return name


def sweep_values(args: list[str]) -> dict[str, str]:
    """The `--set key=value` pairs in a job's engine arguments, the last one of a key winning and
    placing it (a sweep's own keys come after the fixed ones, in the order they were swept)."""
    out: dict[str, str] = {}
    for flag, value in zip(args[:-1], args[1:], strict=True):
        if flag == "--set" and "=" in value:
            k, _, v = value.partition("=")
            out.pop(k.strip(), None)
            out[k.strip()] = v.strip()
    return out


def varied_keys(value_sets: list[dict[str, str]]) -> list[str]:
    """The keys whose value differs between the runs, in the order first seen."""
    keys: list[str] = []
    for vs in value_sets:
        keys += [k for k in vs if k not in keys]
    return [k for k in keys if len({vs.get(k) for vs in value_sets}) > 1]


def rank(
    rows: list[tuple[str, dict[str, str], float | None, str, int]],
) -> list[tuple[str, dict[str, str], float | None, str, int]]:
    """(run, values, best val, state, step) rows, best val loss first; runs without one last."""
    return sorted(rows, key=lambda r: (r[2] is None, r[2] if r[2] is not None else 0.0, r[0]))
