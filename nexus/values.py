"""What `log()` accepts and where each key goes: numbers in, tensors kept for later, keys mapped.

The hot path of the reporter: `grab` runs once per logged value on the training thread, so it never
touches a tensor's data (no `.item()`, no GPU sync) and never imports torch. Tensors are kept as
detached references and read later, in batches, by the writer thread (`resolve`).
"""

from __future__ import annotations

import sys
import time
from typing import Any

WELL_KNOWN: dict[str, str] = {
    # metric record: the dashboard's standard charts and table columns
    "loss": "loss",
    "train/loss": "loss",
    "train_loss": "loss",
    "ce": "ce",
    "train/ce": "ce",
    "lr": "lr",
    "train/lr": "lr",
    "learning_rate": "lr",
    "train/learning_rate": "lr",
    "gnorm": "gnorm",
    "grad_norm": "gnorm",
    "train/grad_norm": "gnorm",
    "train/gnorm": "gnorm",
    "tok_s": "tok_s",
    "train/tok_s": "tok_s",
    "tokens_per_s": "tok_s",
    "step_s": "step_s",
    "mem": "mem",
    "tokens": "tokens",
    "train/tokens": "tokens",
    "num_input_tokens_seen": "tokens",
    "train/num_input_tokens_seen": "tokens",
    # eval record
    "val_loss": "val_loss",
    "val/loss": "val_loss",
    "eval/loss": "val_loss",
    "eval_loss": "val_loss",
    "valid/loss": "val_loss",
    "validation/loss": "val_loss",
    "val_ppl": "val_ppl",
    "val/ppl": "val_ppl",
    "eval/ppl": "val_ppl",
    "val/perplexity": "val_ppl",
    "eval/perplexity": "val_ppl",
}
"""A logged key -> the standard name it is recorded under (docs/PROTOCOL.md lists the same table).
A key not here is recorded under its own name; a well-known key whose standard name was also logged
in the same step keeps its own name, so nothing is overwritten."""

EVAL_SECTIONS = frozenset({"val", "eval", "valid", "validation", "test"})
"""Keys in these sections (`val/acc`), or starting `val_`/`eval_`, go in the eval record."""
EVAL_STANDARD = frozenset({"val_loss", "val_ppl"})
RESERVED = frozenset({"type", "seq", "time", "step", "best"})
"""Record fields the protocol owns: a user key with one of these names is recorded as `user/<key>`."""
MAX_KEYS = 4000
"""Keys per record (the decoders' map limit is 4096, leaving room for the protocol's own fields)."""


MAX_DEPTH = 32
"""Nesting levels of a logged dict that become `a/b/...` keys; deeper ones (and cycles) are skipped."""


def flatten(
    data: Any,
    prefix: str = "",
    out: dict[str, Any] | None = None,
    skipped: list[str] | None = None,
    _path: tuple[int, ...] = (),
) -> dict[str, Any]:
    """{"train": {"loss": x}} -> {"train/loss": x}; keys become text. A dict that contains itself, or
    nesting past MAX_DEPTH, is not followed: its key goes to `skipped` (the caller warns once)."""
    out = {} if out is None else out
    path = (*_path, id(data))
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if id(value) in path or len(path) >= MAX_DEPTH:
                if skipped is not None:
                    skipped.append(name)
                continue
            flatten(value, name + "/", out, skipped, path)
        else:
            out[name] = value
    return out


def grab(value: Any) -> Any:
    """A loggable value as cheaply as possible: a Python number as is, a numpy scalar as a number, a
    one-element tensor as a detached reference (read later off the training thread). None: not a
    number (bool, text, a tensor with many elements...), so the key is skipped."""
    t = type(value)
    if t is float or t is int:
        return value
    if t is bool:
        return None
    module = t.__module__
    if module.startswith("torch") or _torch_tensor(value):
        if hasattr(value, "detach") and value.numel() == 1:
            return value.detach()
        return None
    if module == "numpy":
        if getattr(value, "size", 0) != 1 or getattr(value.dtype, "kind", "") not in "iuf":
            return None
        return value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # inline: the per-value hot path
        return value
    return None


def is_tensor(value: Any) -> bool:
    t = type(value)
    return t is not float and t is not int and t is not str and _torch_tensor(value)


def _torch_tensor(value: Any) -> bool:
    """A tensor of a subclass defined outside torch (checked only when the quick tests failed)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def resolve(values: list[Any]) -> list[float]:
    """Read tensors' values in one batch per (device, dtype, shape): one stack and one copy each, not
    one sync per value. On CUDA the copy is asynchronous and the wait polls an event, so the writer
    thread never sits in a blocking GPU call while holding the GIL. Called on the writer thread only."""
    torch = sys.modules.get("torch")
    if torch is None:  # no tensors can exist without torch imported
        return [float(v) for v in values]
    out: list[Any] = list(values)
    groups: dict[Any, list[int]] = {}
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor):
            groups.setdefault((v.device, v.dtype, v.shape), []).append(i)
    for (device, _, _), idx in groups.items():
        with torch.no_grad():
            stacked = torch.stack([values[i] for i in idx]).reshape(-1)
            if device.type == "cuda":
                host = stacked.to("cpu", non_blocking=True)
                event = torch.cuda.current_stream(device).record_event()
                while not event.query():
                    time.sleep(0.0005)
            else:
                host = stacked.cpu()
            for i, x in zip(idx, host.tolist(), strict=True):
                out[i] = x
    return out


def route(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split one step's values into (metric fields, eval fields), well-known keys under their
    standard names, protocol-owned names moved aside, every other key kept as logged. A loop logs
    the same keys step after step: the plan for a set of keys is made once and kept (`_PLANS`), and
    a plan that keeps every key as it is returns `values` itself."""
    keys = tuple(values)
    plan = _PLANS.get(keys)
    if plan is None:
        plan = _plan(keys)
    if plan is _AS_IS:
        return values, {}
    metric: dict[str, Any] = {}
    evals: dict[str, Any] = {}
    for (name, to_eval), value in zip(plan, values.values(), strict=True):
        (evals if to_eval else metric)[name] = value
    return metric, evals


_AS_IS: tuple[tuple[str, bool], ...] = ()
"""The plan of a step whose every key is a metric recorded under its own name (the common case)."""
_PLANS: dict[tuple[str, ...], tuple[tuple[str, bool], ...]] = {}
"""A step's keys -> (recorded name, goes to the eval record) per key, in order."""


def _plan(keys: tuple[str, ...]) -> tuple[tuple[str, bool], ...]:
    plan = []
    for key in keys:
        name, to_eval = _ROUTES.get(key) or _route(key)
        if name != key and name in keys:  # both `loss` and `train/loss` logged: each keeps its name
            name, to_eval = _route_as_is(key)
        plan.append((name, to_eval))
    kept = (
        _AS_IS
        if all(name == key and not ev for key, (name, ev) in zip(keys, plan, strict=True))
        else tuple(plan)
    )
    if len(_PLANS) < 10_000:
        _PLANS[keys] = kept
    return kept


_ROUTES: dict[str, tuple[str, bool]] = {}
"""key -> (recorded name, goes to the eval record): the answer never changes, so it is kept."""


def _route(key: str) -> tuple[str, bool]:
    name = WELL_KNOWN.get(key, key)
    if name in RESERVED:
        name = f"user/{name}"
    if len(_ROUTES) < 100_000:
        _ROUTES[key] = (name, is_eval(name))
    return name, is_eval(name)


def _route_as_is(key: str) -> tuple[str, bool]:
    name = f"user/{key}" if key in RESERVED else key
    return name, is_eval(name)


def is_eval(name: str) -> bool:
    if name in EVAL_STANDARD or name.startswith(("val_", "eval_")):
        return True
    head, sep, _ = name.partition("/")
    return bool(sep) and head in EVAL_SECTIONS
