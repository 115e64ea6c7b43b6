"""Which device a run trains on, in which precision, and how much memory it holds.

One place decides `auto` (cuda, else mps, else cpu) and turns an unusable request ("cuda" on a
machine without a GPU, "cuda:3" on a two-GPU box) into a one-line ConfigError before any tensor is made.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import psutil
import torch

from nexus_core.errors import ConfigError


def resolve_device(spec: str) -> torch.device:
    """The torch device for `train.device` (auto | cpu | cuda | cuda:N | mps), checked to exist."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not _mps_available():
            raise ConfigError("device mps is not available on this machine; use --device cpu or auto")
        return torch.device("mps")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec} requested but CUDA is not available; use --device cpu or auto")
        index = int(spec[5:]) if spec.startswith("cuda:") else torch.cuda.current_device()
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(f"device {spec} does not exist: this machine has {count} CUDA device(s)")
        return torch.device("cuda", index)
    raise ConfigError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def autocast_dtype(device: torch.device, dtype: str) -> torch.dtype | None:
    """The autocast dtype for `train.dtype`, or None for plain fp32.

    `auto` means bf16 on CUDA (what the GPU presets want) and fp32 elsewhere, because CPU bf16
    autocast is slower than fp32 on most CPUs and would break bit-exact CPU resume tests.
    """
    if dtype == "fp32":
        return None
    if dtype == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cuda" else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """The forward-pass context: autocast when a reduced dtype is wanted, else a no-op."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def memory_bytes(device: torch.device, process: psutil.Process | None = None) -> int:
    """Memory the run holds: CUDA max allocated on a GPU, else this process's RSS."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int((process or psutil.Process()).memory_info().rss)


def describe(device: torch.device) -> str:
    """A short human name for logs and the hello record: 'cpu', 'cuda:0 (NVIDIA H100)'."""
    if device.type == "cuda":
        return f"cuda:{device.index} ({torch.cuda.get_device_name(device)})"
    return str(device)


@contextlib.contextmanager
def preserved_rng(device: torch.device) -> Iterator[None]:
    """Run side work (eval, sampling) without moving the training RNG streams.

    A run that samples every 50 steps must train exactly like one that never samples, or resume
    and comparisons stop being exact.
    """
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so step timings measure the work, not the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def use_deterministic_kernels() -> None:
    """`train.deterministic`: ask torch for deterministic kernels (warn, not fail, where an op has
    none) and give cuBLAS the fixed workspace its deterministic mode needs; set before the first
    CUDA matrix product, so the trainer calls this before the model reaches the device."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
