"""The corpus and the batches: text files -> train/val token tensors -> reproducible [B, T] batches.

The built-in corpus is the Python standard library's own source, present on every machine, so a run
needs no download. Any text file or folder can be given instead. The train/val split is decided per
file by a stable hash of its relative path, so it never changes between runs or machines; the byte cap
is applied in a hash order too, so a capped corpus still samples the whole library instead of the
first few folders alphabetically.

Batches are a pure function of (tokens, seed, position): a resumed run that restores its position
draws exactly the batches the uninterrupted run would have drawn. The global RNG is never touched.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.tokenizer import Tokenizer, encode_splits, load_or_train
from nexus_core.config import DataConfig
from nexus_core.errors import DataError
from nexus_core.safefile import open_regular

EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
"""Folder names never read: the stdlib's own test suites (lib2to3/tests, idlelib/idle_test, ...)
hold deliberately broken files, and installed packages are not the standard library."""
BPE_TRAIN_CHARS = 8_000_000
"""BPE merges are learned from at most this many characters of the train split (seconds, not minutes)."""


@dataclass(frozen=True)
class SourceFile:
    """One corpus file: `rel` (its path relative to the corpus root) decides its split."""

    rel: str
    path: Path

    @property
    def key(self) -> float:
        """A stable uniform number in [0, 1) from the relative path: same split on every machine."""
        digest = hashlib.blake2b(self.rel.encode("utf-8", "surrogateescape"), digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2**64


@dataclass
class Corpus:
    """Token ids of both splits plus what a report needs to describe them."""

    train: torch.Tensor
    """1-D int32 token ids of the training split."""
    val: torch.Tensor
    """1-D int32 token ids of the held-out split."""
    tokenizer: Tokenizer
    description: str
    """One line for logs and the dashboard, e.g.
    'stdlib: 261 files (249 train, 12 val), 4.0 MB, byte tokens'."""
    train_files: int
    val_files: int
    train_bytes: int
    """Bytes read from disk for each split (after the max_bytes cap)."""
    val_bytes: int
    skipped_files: int
    """Binary (NUL-containing), empty or unreadable files left out."""
    unigram_entropy: float
    """Entropy in nats/token of the train split's token frequencies: the CE of a model that learned
    only how often each token occurs. Held-out CE below it means the model learned context."""

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def bytes_per_token(self) -> float:
        """Held-out bytes per token: bits/byte = ce / ln 2 / bytes_per_token, comparable across tokenizers."""
        return self.val_bytes / max(1, len(self.val))


def load_corpus(cfg: DataConfig, run_dir: Path, seq_len: int) -> Corpus:
    """Read, split and tokenize the corpus `cfg` names; the BPE tokenizer and token cache live in run_dir."""
    files, label = list_source(cfg.source)
    # A folder source that holds this run's own folder must not read the run's changing log files.
    here = Path(run_dir).resolve()
    files = [f for f in files if here not in f.path.resolve().parents] or files
    train_part, val_part = _read_splits(files, cfg.val_fraction, cfg.max_bytes)
    if not train_part.texts and not val_part.texts:
        raise DataError(
            f"data.source {label} has no readable text ({train_part.skipped + val_part.skipped} binary "
            "or empty files skipped); point data.source at text files"
        )
    tok = load_or_train(cfg, Path(run_dir), lambda: _capped(train_part.texts, BPE_TRAIN_CHARS))
    train, val = encode_splits(tok, train_part.texts, val_part.texts, Path(run_dir))
    for split, ids in (("train", train), ("val", val)):
        if len(ids) < seq_len + 1:
            raise DataError(
                f"the {split} split has {len(ids)} tokens but model.seq_len={seq_len} needs at least "
                f"{seq_len + 1}; use more text, raise data.max_bytes or data.val_fraction, or lower seq_len"
            )
    n_train, n_val = len(train_part.texts), len(val_part.texts)
    mb = (train_part.nbytes + val_part.nbytes) / 1e6
    split = (
        "1 file split by bytes"
        if len(files) == 1
        else f"{n_train + n_val} files ({n_train} train, {n_val} val)"
    )
    kind = (
        "byte tokens"
        if tok.kind == "byte"
        else f"bpe {tok.vocab_size} vocab, {len(train) + len(val):,} tokens"
    )
    return Corpus(
        train=torch.from_numpy(train),
        val=torch.from_numpy(val),
        tokenizer=tok,
        description=f"{label}: {split}, {mb:.1f} MB, {kind}",
        train_files=n_train,
        val_files=n_val,
        train_bytes=train_part.nbytes,
        val_bytes=val_part.nbytes,
        skipped_files=train_part.skipped + val_part.skipped,
        unigram_entropy=unigram_entropy(train, tok.vocab_size),
    )


# ---------------------------------------------------------------------------------------------- sources


def stdlib_root() -> Path:
    """The folder of this interpreter's standard library sources."""
    return Path(sysconfig.get_paths()["stdlib"])


def list_source(source: str) -> tuple[list[SourceFile], str]:
    """The corpus files in sorted order and a short label: 'stdlib', or a path to a file or folder."""
    if source == "stdlib":
        root = stdlib_root()
        files = _walk(root, suffix=".py")
        if not files:
            raise DataError(
                f"no Python standard library sources found under {root}; "
                "set data.source to a text file or folder"
            )
        return files, "stdlib"
    path = Path(source).expanduser()
    if path.is_file():
        return [SourceFile(path.name, path)], str(path)
    if path.is_dir():
        return _walk(path, suffix=""), str(path)
    if not source.strip():
        raise DataError("data.source is empty; give 'stdlib', a text file, or a folder of text files")
    raise DataError(
        f"data.source {source!r} does not exist; give 'stdlib', a text file, or a folder of text files"
    )


def _walk(root: Path, suffix: str) -> list[SourceFile]:
    """Files under root (symlinked folders not followed), skipping hidden and excluded folders."""
    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS and not d.startswith("."))
        for name in names:
            if name.startswith(".") or not name.endswith(suffix):
                continue
            path = Path(folder) / name
            if path.is_file():
                out.append(SourceFile(path.relative_to(root).as_posix(), path))
    return sorted(out, key=lambda f: f.rel)


def split_files(files: list[SourceFile], val_fraction: float) -> tuple[list[SourceFile], list[SourceFile]]:
    """Deterministic file-level split (key < val_fraction -> val); with two or more files both sides
    are non-empty. Each side comes back in key order, the order it is read under a byte cap."""
    ordered = sorted(files, key=lambda f: (f.key, f.rel))
    n_val = sum(1 for f in ordered if f.key < val_fraction)
    if len(ordered) >= 2:
        n_val = min(max(n_val, 1), len(ordered) - 1)
    return ordered[n_val:], ordered[:n_val]


@dataclass
class _Part:
    """The texts of one split as read from disk."""

    texts: list[str]
    nbytes: int
    skipped: int = 0


def _read_splits(files: list[SourceFile], val_fraction: float, max_bytes: int) -> tuple[_Part, _Part]:
    """Train and val texts. Several files: split by file; val reads first with its share of the cap
    and train takes the rest. One file: the last val_fraction of its (capped) bytes is val."""
    if len(files) == 1:
        data = _read_bytes(files[0].path, max_bytes or None)
        if data is None:
            raise DataError(f"{files[0].path} is binary or empty; point data.source at a text file")
        if max_bytes:
            data = _trim_partial_char(data)
        cut = _char_boundary(data, len(data) - max(1, int(len(data) * val_fraction)))
        return _Part([_decode(data[:cut])], cut), _Part([_decode(data[cut:])], len(data) - cut)
    train_files, val_files = split_files(files, val_fraction)
    val = _read_many(val_files, math.ceil(max_bytes * val_fraction) if max_bytes else 0)
    return _read_many(train_files, max(1, max_bytes - val.nbytes) if max_bytes else 0), val


def _read_many(files: list[SourceFile], budget: int) -> _Part:
    """Read files in order until `budget` bytes (0 = no cap); the last one is cut to fit."""
    part = _Part([], 0)
    for f in files:
        if budget and part.nbytes >= budget:
            break
        data = _read_bytes(f.path, budget - part.nbytes if budget else None)
        if data is None:
            part.skipped += 1
            continue
        if budget and part.nbytes + len(data) >= budget:
            data = _trim_partial_char(data)
        part.texts.append(_decode(data))
        part.nbytes += len(data)
    return part


def _read_bytes(path: Path, limit: int | None) -> bytes | None:
    """Up to `limit` bytes of a file, or None when it is empty, binary (has a NUL) or unreadable."""
    try:
        with open_regular(path) as fh:  # a FIFO or device among the corpus files is skipped, not read forever
            data = fh.read(-1 if limit is None else limit)
    except OSError:
        return None
    if not data or b"\x00" in data:
        return None
    return data


def _char_boundary(data: bytes, cut: int) -> int:
    """Move a byte cut back to the start of a UTF-8 character, so no split ends in half a character."""
    cut = max(0, min(cut, len(data)))
    back = 0
    while 0 < cut < len(data) and back < 3 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
        back += 1
    return cut


def _trim_partial_char(data: bytes) -> bytes:
    """Drop a UTF-8 character the byte cap cut in half (it would otherwise decode as U+FFFD)."""
    for back in range(1, min(4, len(data)) + 1):
        lead = data[-back]
        if lead & 0xC0 != 0x80:  # not a continuation byte: the last character starts here
            need = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
            return data[:-back] if back < need else data
    return data


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _capped(texts: list[str], limit: int) -> Iterator[str]:
    """Texts in order until about `limit` characters."""
    total = 0
    for t in texts:
        if total >= limit:
            return
        yield t
        total += len(t)


# ---------------------------------------------------------------------------------------------- statistics


def unigram_entropy(ids: np.ndarray | torch.Tensor, vocab_size: int) -> float:
    """Entropy (nats/token) of the empirical token distribution of `ids`."""
    arr = ids.numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    if len(arr) == 0:
        return 0.0
    counts = np.bincount(arr.astype(np.int64, copy=False), minlength=vocab_size)
    p = counts[counts > 0] / len(arr)
    return float(-(p * np.log(p)).sum())


# ---------------------------------------------------------------------------------------------- batches


def get_batch(
    tokens: torch.Tensor,
    batch_size: int,
    seq_len: int,
    seed: int,
    position: int,
    device: str | torch.device = "cpu",
    *,
    rank: int = 0,
    world: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: x, y int64 [B, T] with y = x shifted by one. The offsets come from a generator
    seeded by (seed, position) alone, so batch `position` is the same whenever it is drawn.

    Over `world` processes the global batch is `world * batch_size` rows and `rank` takes its own
    slice of them: the run sees exactly the batches of one process with the whole batch."""
    n = _windows(tokens, seq_len)
    offsets = torch.randint(0, n, (batch_size * world,), generator=_generator(seed, position, 0))
    return _gather(tokens, offsets[rank * batch_size : (rank + 1) * batch_size], seq_len, device)


def eval_batches(
    tokens: torch.Tensor,
    batch_size: int,
    seq_len: int,
    n_batches: int,
    seed: int,
    device: str | torch.device = "cpu",
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Held-out batches, identical at every eval (a stream of their own, apart from training's)."""
    n = _windows(tokens, seq_len)
    g = _generator(seed, 0, 1)
    return [
        _gather(tokens, torch.randint(0, n, (batch_size,), generator=g), seq_len, device)
        for _ in range(n_batches)
    ]


def contiguous_streams(
    tokens: torch.Tensor,
    batch_size: int,
    seq_len: int,
    position: int,
    device: str | torch.device = "cpu",
    *,
    rank: int = 0,
    world: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch `position` of B contiguous streams: the corpus is cut into B equal parts and row b of
    batch s+1 starts where row b of batch s ended, so a stateful model's carried state stays valid.
    After `stream_period` batches the streams wrap around to their starts. Over `world` processes
    the corpus is cut into world * B streams and `rank` carries streams rank*B .. rank*B+B-1."""
    stream_len = len(tokens) // (batch_size * world)
    period = stream_period(tokens, batch_size * world, seq_len)
    starts = (torch.arange(batch_size) + rank * batch_size) * stream_len + (position % period) * seq_len
    return _gather(tokens, starts, seq_len, device)


def stream_period(tokens: torch.Tensor, batch_size: int, seq_len: int) -> int:
    """How many `contiguous_streams` batches pass before the streams wrap (the trainer may reset
    state then)."""
    stream_len = len(tokens) // batch_size
    if stream_len < seq_len + 1:
        raise DataError(
            f"{len(tokens)} tokens cannot make {batch_size} streams of {seq_len + 1}; "
            "lower train.batch_size or model.seq_len, or use more text"
        )
    return (stream_len - 1) // seq_len


def _windows(tokens: torch.Tensor, seq_len: int) -> int:
    n = len(tokens) - seq_len
    if n < 1:
        raise DataError(
            f"{len(tokens)} tokens are too few for model.seq_len={seq_len}; "
            "use more text or a shorter seq_len"
        )
    return n


def _gather(
    tokens: torch.Tensor, offsets: torch.Tensor, seq_len: int, device: str | torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    # Offsets are drawn on the CPU (a CPU generator is the same on every machine); the gather runs
    # wherever the tokens live, so a corpus kept on the GPU costs no host round trip.
    idx = offsets.to(tokens.device)[:, None] + torch.arange(seq_len + 1, device=tokens.device)
    chunk = tokens[idx].long()
    x, y = chunk[:, :-1], chunk[:, 1:]
    if x.device != torch.device(device):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return x, y


def _generator(seed: int, position: int, stream: int) -> torch.Generator:
    """A generator whose seed mixes (seed, position, stream) through a hash, so nearby positions get
    unrelated draws."""
    mask = (1 << 64) - 1  # any Python int seed (negative or huge) packs; distinct small ones stay distinct
    digest = hashlib.blake2b(
        struct.pack("<QQQ", seed & mask, position & mask, stream), digest_size=8
    ).digest()
    g = torch.Generator()
    g.manual_seed(int.from_bytes(digest, "little") >> 1)
    return g
