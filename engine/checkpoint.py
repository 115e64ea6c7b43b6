"""Checkpoints: model, optimizer, RNG and loop state, written atomically and loaded without pickle.

Layout (like nanochat's checkpoint_manager): runs/NAME/checkpoints/step_000200/ holds
  model.safetensors  the weights (tied weights stored once, aliases in the file's metadata)
  optim.safetensors  optimizer tensors ("optim.<param>.<key>"), RNG states ("rng.*") and a model's
                     persistent state ("model_state.*")
  meta.json          step, tokens, optimizer structure (every non-tensor value), schedule, data
                     position, val loss, best, the config, tokenizer kind, wall time
A checkpoint is written into a temp folder and renamed into place; the `latest` and `best` pointers
are symlinks swapped with os.replace, so a reader never sees half a checkpoint.

The module imports torch only inside the functions that move tensors. Finding and reading checkpoints
(list, resolve, meta.json) is torch-free and lives in nexus_core.checkpoints, which the dashboard's
LR preview uses in-process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus_core.checkpoints import (  # the torch-free readers live in the core; re-exported here
    BEST,
    FORMAT_VERSION,
    LATEST,
    META_FILE,
    PREFIX,  # noqa: F401 - re-exported for older callers
    checkpoints_root,
    list_checkpoints,
    meta_problem,  # noqa: F401 - re-exported for older callers
    read_meta,
    resolve_checkpoint,  # noqa: F401 - re-exported for older callers
    step_name,
)
from nexus_core.config import flatten
from nexus_core.errors import CheckpointError
from nexus_core.families import migrate
from nexus_core.protocol import UnsafeFileError, open_regular, pid_alive
from nexus_core.safefile import check_inside, fresh_dir, write_new

if TYPE_CHECKING:
    import torch

MODEL_FILE, OPTIM_FILE = "model.safetensors", "optim.safetensors"
# Config keys whose change makes a checkpoint unusable (weights or optimizer state would not fit).
_STRUCTURAL = ("data.tokenizer", "data.bpe_vocab", "optim.name", "optim.fallback")


def config_mismatches(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'section.key: checkpoint X, config Y' for each structural setting that differs (every model key,
    its family's table included). A checkpoint written before the family tables compares migrated."""
    old, new = flatten(migrate(saved)), flatten(migrate(current))
    keys = sorted(k for k in set(old) | set(new) if k.startswith("model.")) + list(_STRUCTURAL)
    out = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if key == "model.vocab_size" and 0 in (a, b):
            continue  # 0 = "from the tokenizer": the weights' shapes catch a real difference
        if a != b:
            out.append(f"{key}: checkpoint {a!r}, config {b!r}")
    return out


# -- saving --------------------------------------------------------------------------------------


def save_checkpoint(
    run_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    meta: dict[str, Any],
    *,
    best: bool = False,
    keep_last: int = 3,
) -> tuple[Path, bool]:
    """Write checkpoint `meta['step']` atomically; move pointers; prune. Returns (folder, is_best).

    `best` is dropped when the weights hold a NaN or inf: a broken model never becomes `best`.
    """
    root = checkpoints_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    check_inside(run_dir, root)  # a planted `checkpoints -> ~/somewhere` is never written through
    name = step_name(int(meta["step"]))
    final = root / name
    tmp_name = f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(root / tmp_name, ignore_errors=True)
    tmp = fresh_dir(root, tmp_name)  # made here, empty: safetensors' own writes into it are safe
    try:
        meta, best = _write_folder(tmp, model, optimizer, {**meta, "name": name}, best)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed write (full disk) must not hold on to space
        raise

    if final.exists():  # same step saved twice (a `checkpoint` command right after a periodic one)
        old = root / f".old-{name}-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _point(root, LATEST, name)
    if best:
        _point(root, BEST, name)
    prune(run_dir, keep_last)
    return final, best


def _write_folder(
    tmp: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict[str, Any], best: bool
) -> tuple[dict[str, Any], bool]:
    """The three files of a checkpoint into `tmp`; returns (meta as written, best)."""
    import torch

    weights, aliases = _dedupe(model.state_dict())
    finite = all(bool(torch.isfinite(t).all()) for t in weights.values() if t.is_floating_point())
    best = best and finite
    _save_tensors(weights, tmp / MODEL_FILE, {"aliases": json.dumps(aliases), "format": str(FORMAT_VERSION)})

    tensors, structure = _flatten_optimizer(optimizer.state_dict())
    tensors.update(_rng_tensors())
    state_fn = getattr(model, "state_tensors", None)
    for key, t in (state_fn() if state_fn else {}).items():
        tensors[f"model_state.{key}"] = t.detach().to("cpu").contiguous()
    _save_tensors(tensors, tmp / OPTIM_FILE)

    meta = {
        **meta,
        "format": FORMAT_VERSION,
        "optimizer": structure,
        "best": best,
        "finite": finite,
        "saved_at": time.time(),
    }
    write_new(tmp / META_FILE, json.dumps(meta, indent=1), fsync=True)
    return meta, best


def _save_tensors(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """safetensors' save_file, with its I/O failures as the OSError they are (a full disk is an
    alert the trainer knows, not an unknown SafetensorError)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as e:
        found = re.search(r"os error (\d+)", str(e))
        code = int(found.group(1)) if found else errno.EIO
        raise OSError(code, f"{os.strerror(code)} writing {path.name}") from None


def _point(root: Path, pointer: str, target: str) -> None:
    """Swap a relative symlink atomically: make it beside the old one, then os.replace."""
    tmp = root / f".{pointer}-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, root / pointer)


def prune(run_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` checkpoints, always keeping the best and latest."""
    root = checkpoints_root(run_dir)
    done = list_checkpoints(run_dir)
    keep = {p.name for p in done[-max(keep_last, 1) :]}
    for pointer in (BEST, LATEST):
        p = root / pointer
        if p.is_symlink():
            keep.add(os.readlink(p))
    removed = [p for p in done if p.name not in keep]
    for p in removed:
        # Renamed away first: a kill mid-delete leaves a hidden folder, never a half checkpoint that lists.
        gone = root / f".old-{p.name}-{os.getpid()}"
        os.rename(p, gone)
        shutil.rmtree(gone, ignore_errors=True)
    _sweep_leftovers(root)
    return removed


def _sweep_leftovers(root: Path) -> None:
    """Delete temp folders and pointer temps that a killed writer left behind (their pid is gone)."""
    for p in root.iterdir():
        _, _, pid = p.name.rpartition("-")
        if not (p.name.startswith((".tmp-", ".old-", f".{LATEST}-", f".{BEST}-")) and pid.isdigit()):
            continue
        if int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        if p.is_symlink() or not p.is_dir():
            with contextlib.suppress(OSError):
                p.unlink()
        else:
            shutil.rmtree(p, ignore_errors=True)


def _dedupe(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Store each shared tensor once (safetensors refuses aliases); return the alias map too."""
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for key, t in state.items():
        ident = (t.untyped_storage().data_ptr(), int(t.storage_offset()), tuple(int(n) for n in t.shape))
        if t.numel() and ident in seen:
            aliases[key] = seen[ident]
            continue
        seen[ident] = key
        out[key] = t.detach().to("cpu").contiguous()
    return out, aliases


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer tensors to flat keys; everything else into a JSON-able structure that names them."""
    import torch

    tensors: dict[str, torch.Tensor] = {}
    state: dict[str, dict[str, Any]] = {}
    for pid, entries in sd["state"].items():
        state[str(pid)] = {}
        for k, v in entries.items():
            if isinstance(v, torch.Tensor):
                key = f"optim.{pid}.{k}"
                tensors[key] = v.detach().to("cpu").contiguous()
                state[str(pid)][k] = {"tensor": key}
            else:
                state[str(pid)][k] = {"value": _plain(v)}
    return tensors, {"state": state, "param_groups": _plain(sd["param_groups"])}


def _plain(v: Any) -> Any:
    """A JSON-able copy; tuples are tagged so they come back as tuples (betas)."""
    if isinstance(v, tuple):
        return {"__tuple__": [_plain(x) for x in v]}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(
        f"optimizer state holds a {type(v).__name__}, which a checkpoint cannot store without pickle"
    )


def _unplain(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"__tuple__"}:
            return tuple(_unplain(x) for x in v["__tuple__"])
        return {k: _unplain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unplain(x) for x in v]
    return v


def _rng_tensors() -> dict[str, torch.Tensor]:
    import torch

    out = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda.{i}"] = s
    return out


# -- loading -------------------------------------------------------------------------------------


def load_checkpoint(
    ckpt_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    config: dict[str, Any] | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load weights (and optimizer, RNG, model state) into live objects; return the meta.

    Everything is checked before anything is changed, so a bad checkpoint leaves the model as it was.
    """
    ckpt_dir = Path(ckpt_dir)
    meta = read_meta(ckpt_dir)
    if config is not None:
        bad = config_mismatches(meta["config"], config)
        if bad:
            raise CheckpointError(
                f"checkpoint {ckpt_dir.name} does not match this run's config: {'; '.join(bad)}"
            )
    weights = _read_tensors(ckpt_dir / MODEL_FILE, expand_aliases=True)
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    shapes = sorted(k for k in set(own) & set(weights) if tuple(own[k].shape) != tuple(weights[k].shape))
    if missing or extra or shapes:
        parts = [
            f"{label}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
            for label, keys in (("missing", missing), ("unexpected", extra), ("shape differs", shapes))
            if keys
        ]
        raise CheckpointError(f"checkpoint {ckpt_dir.name} does not fit this model ({'; '.join(parts)})")
    extras = _read_tensors(ckpt_dir / OPTIM_FILE) if optimizer is not None or restore_rng else {}

    model.load_state_dict(weights)
    state_keys = {k[len("model_state.") :]: t for k, t in extras.items() if k.startswith("model_state.")}
    load_state = getattr(model, "load_state_tensors", None)
    if state_keys and callable(load_state):
        load_state(state_keys)
    if optimizer is not None:
        _load_optimizer(ckpt_dir, optimizer, meta["optimizer"], extras)
    if restore_rng:
        _restore_rng(extras)
    return meta


def _read_tensors(path: Path, expand_aliases: bool = False) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open

    if not path.exists():
        raise CheckpointError(f"checkpoint {path.parent} is incomplete: {path.name} is missing")
    try:
        held = open_regular(path)  # safetensors would block forever opening a FIFO planted here
    except UnsafeFileError as e:
        raise CheckpointError(f"checkpoint {path.parent.name} is corrupt: {path.name} {e.strerror}") from None
    # safetensors maps the file we checked (its descriptor), not whatever the name points to by then.
    source = f"/proc/self/fd/{held.fileno()}" if os.path.isdir("/proc/self/fd") else str(path)
    try:
        with held, safe_open(source, framework="pt", device="cpu") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
            aliases = json.loads((f.metadata() or {}).get("aliases", "{}")) if expand_aliases else {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {path.parent.name} is corrupt: {path.name} unreadable ({e})"
        ) from None
    for alias, canonical in aliases.items():
        if canonical not in tensors:
            raise CheckpointError(
                f"checkpoint {path.parent.name} is corrupt: alias {alias} -> missing {canonical}"
            )
        tensors[alias] = tensors[canonical]
    return tensors


def _load_optimizer(
    ckpt_dir: Path,
    optimizer: torch.optim.Optimizer,
    structure: dict[str, Any],
    tensors: dict[str, torch.Tensor],
) -> None:
    state: dict[int, dict[str, Any]] = {}
    try:
        for pid, entries in structure["state"].items():
            state[int(pid)] = {
                k: tensors[e["tensor"]] if "tensor" in e else _unplain(e["value"]) for k, e in entries.items()
            }
        sd = {"state": state, "param_groups": _unplain(structure["param_groups"])}
        optimizer.load_state_dict(sd)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(
            f"checkpoint {ckpt_dir.name}: optimizer state does not fit this run ({e})"
        ) from None


def _restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    import torch

    if "rng.cpu" in tensors:
        torch.set_rng_state(tensors["rng.cpu"])
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            if f"rng.cuda.{i}" in tensors:
                torch.cuda.set_rng_state(tensors[f"rng.cuda.{i}"], i)


def load_for_inference(
    config: Any, run_dir: str | Path, ckpt_dir: str | Path, device: str = "cpu"
) -> tuple[Any, Any, torch.device]:
    """(model in eval mode, tokenizer, device) from a run's config and one checkpoint, for
    `generate` and `eval`. Needs only the run's saved tokenizer, never the corpus."""
    from engine.device import resolve_device
    from engine.models import build_model
    from engine.tokenizer import load_or_train
    from nexus_core.errors import DataError

    def no_texts() -> list[str]:
        raise DataError(
            f"run folder {run_dir} has no tokenizer.json for its BPE tokenizer; it cannot be sampled"
        )

    dev = resolve_device(device)
    tokenizer = load_or_train(config.data, Path(run_dir), no_texts)
    config.model.vocab_size = tokenizer.vocab_size
    model = build_model(config.model).to(dev)
    load_checkpoint(ckpt_dir, model, None, config=config.to_dict(), restore_rng=False)
    model.eval()
    return model, tokenizer, dev
