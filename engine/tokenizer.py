"""Tokenizers: raw UTF-8 bytes, or byte-level BPE trained with the `tokenizers` library.

Both map any text to ids and back without loss (byte-level BPE starts from all 256 byte symbols, so
no character can fall outside the vocabulary). A BPE tokenizer is saved in the run folder as
`tokenizer.json`; a resumed run must reload that file rather than retrain, because a retrained
tokenizer would give the checkpoint's embedding rows different meanings. BPE ids of a corpus are
cached beside it (`tokens_*.npy`, plain arrays) so a resume does not re-tokenize either.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from nexus_core.config import DataConfig
from nexus_core.errors import DataError
from nexus_core.safefile import atomic_write, atomic_writer, open_regular, parse_json, read_json, read_text

TOKENIZER_MAX_BYTES = 256 << 20
"""A tokenizer.json larger than this is not one Nexus wrote (a 64k-token BPE is a few MB)."""

TOKENIZER_FILE = "tokenizer.json"
TOKEN_CACHE = ("tokens_train.npy", "tokens_val.npy", "tokens_meta.json")
"""Cached BPE ids of the train and val splits, and the fingerprint that vouches for them."""


@runtime_checkable
class Tokenizer(Protocol):
    """What the data pipeline, the model builder and sampling need from a tokenizer."""

    vocab_size: int
    """Size of the id space: every id is < vocab_size (the model's embedding has this many rows)."""
    kind: str
    """'byte' or 'bpe'."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def encode_many(self, texts: list[str]) -> np.ndarray:
        """All texts encoded back to back as one int32 array (the fast path for a whole corpus)."""
        ...

    def save(self, run_dir: Path) -> None: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens: vocab 256, no training, nothing to save."""

    kind = "byte"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        # A sampled model can emit byte sequences that are not UTF-8; show them, never crash.
        return bytes(int(i) & 0xFF for i in ids).decode("utf-8", errors="replace")

    def encode_many(self, texts: list[str]) -> np.ndarray:
        data = "".join(texts).encode("utf-8")
        return np.frombuffer(data, dtype=np.uint8).astype(np.int32)

    def save(self, run_dir: Path) -> None:
        """Nothing to write: the byte tokenizer is fully defined by its kind (config.toml says so)."""


class BpeTokenizer:
    """Byte-level BPE from the `tokenizers` library (models.BPE + ByteLevel pre-tokenizer/decoder)."""

    kind = "bpe"

    def __init__(self, tok: HFTokenizer, vocab_size: int) -> None:
        self.tok = tok
        # A small corpus may stop merging before the target; the id space stays the configured size
        # so the model shape depends on the config alone.
        self.vocab_size = max(vocab_size, tok.get_vocab_size())

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> BpeTokenizer:
        """Train on `texts`. The initial alphabet is all 256 byte symbols: without it, bytes absent
        from the training text would have no token and vanish on encode."""
        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok, vocab_size)

    @classmethod
    def load(cls, path: Path, vocab_size: int) -> BpeTokenizer:
        """Read a saved tokenizer.json; anything that is not a byte-level BPE of at most `vocab_size`
        tokens is a DataError (it would not match the run's model)."""
        try:
            text = read_text(path, TOKENIZER_MAX_BYTES)  # a regular file (a FIFO would hang), bounded
            spec = parse_json(text)
            tok = HFTokenizer.from_str(text)
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise DataError(
                f"{path} is not a readable tokenizer file ({_first_line(e)}); delete it to retrain"
            ) from None
        except Exception as e:  # the Rust side raises a bare Exception for a malformed file
            raise DataError(
                f"{path} is not a valid tokenizer file ({_first_line(e)}); delete it to retrain"
            ) from None
        model_type = (spec.get("model") or {}).get("type") if isinstance(spec, dict) else None
        pre = (spec.get("pre_tokenizer") or {}).get("type") if isinstance(spec, dict) else None
        if model_type != "BPE" or pre != "ByteLevel":
            raise DataError(
                f"{path} is a {model_type}/{pre} tokenizer, not byte-level BPE; delete it to retrain"
            )
        if tok.get_vocab_size() > vocab_size:
            raise DataError(
                f"{path} has {tok.get_vocab_size()} tokens but data.bpe_vocab is {vocab_size}; "
                f"set data.bpe_vocab={tok.get_vocab_size()} or delete the file to retrain"
            )
        return cls(tok, vocab_size)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        # The ByteLevel decoder turns invalid UTF-8 into U+FFFD; ids past the trained vocab (possible
        # from an untrained model when the corpus was small) are dropped by the library.
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def encode_many(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.int32)
        # encode_batch_fast (tokenizers >= 0.21) skips the character offsets we never use.
        encode = getattr(self.tok, "encode_batch_fast", self.tok.encode_batch)
        encs = encode(texts)
        return np.concatenate([np.asarray(e.ids, dtype=np.int32) for e in encs])

    def save(self, run_dir: Path) -> None:
        """Write run_dir/tokenizer.json atomically (a crash mid-write must not leave a torn file that
        a resume would then refuse), through the file door (a unique temp name: DDP ranks never share
        one; never written through a link out of the folder)."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / TOKENIZER_FILE, self.tok.to_str(pretty=True), within=run_dir)


def load_or_train(cfg: DataConfig, run_dir: Path, texts: Callable[[], Iterable[str]]) -> Tokenizer:
    """The run's tokenizer: bytes; or the BPE saved in run_dir (a resume must reuse it); or a BPE
    trained on `texts()` and saved. `texts` is only called when training is needed."""
    path = Path(run_dir) / TOKENIZER_FILE
    if cfg.tokenizer == "byte":
        if path.exists():
            raise DataError(
                f"{path} holds a BPE tokenizer but data.tokenizer = byte; "
                "use data.tokenizer=bpe for this run folder or start a new run"
            )
        return ByteTokenizer()
    if cfg.tokenizer != "bpe":
        raise DataError(f"data.tokenizer must be byte or bpe, got {cfg.tokenizer!r}")
    if path.exists():
        return BpeTokenizer.load(path, cfg.bpe_vocab)
    tok = BpeTokenizer.train(texts(), cfg.bpe_vocab)
    tok.save(Path(run_dir))
    return tok


def encode_splits(
    tok: Tokenizer, train: list[str], val: list[str], run_dir: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of both splits. BPE ids are cached in run_dir keyed by a fingerprint of the texts and
    the tokenizer, so a resume does not spend seconds re-tokenizing; bytes are faster than the cache."""
    if not isinstance(tok, BpeTokenizer):
        return tok.encode_many(train), tok.encode_many(val)
    h = hashlib.blake2b(tok.tok.to_str().encode("utf-8"), digest_size=16)
    for split in (train, val):
        h.update(struct.pack("<q", len(split)))
        for t in split:
            h.update(t.encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
    fingerprint = h.hexdigest()
    cached = _load_token_cache(run_dir, fingerprint, tok.vocab_size)
    if cached is not None:
        return cached
    arrays = tok.encode_many(train), tok.encode_many(val)
    _save_token_cache(run_dir, fingerprint, arrays)
    return arrays


def _load_array(path: Path) -> np.ndarray:
    """One cached .npy array, from a regular file only (np.load would block on a FIFO)."""
    with open_regular(path) as f:
        return np.load(f, allow_pickle=False)


def _load_token_cache(run_dir: Path, fingerprint: str, vocab: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays when they match; any doubt (missing, stale, torn) means re-tokenize."""
    train_p, val_p, meta_p = (run_dir / n for n in TOKEN_CACHE)
    try:
        meta = read_json(meta_p)
        if not isinstance(meta, dict) or meta.get("fingerprint") != fingerprint:
            return None
        arrays = tuple(_load_array(p) for p in (train_p, val_p))
    except (OSError, ValueError):
        return None
    for a, n in zip(arrays, (meta.get("train"), meta.get("val")), strict=True):
        if (
            len(a) != n
            or a.ndim != 1
            or a.dtype != np.int32
            or (len(a) and (a.min() < 0 or a.max() >= vocab))
        ):
            return None
    return arrays[0], arrays[1]


def _save_token_cache(run_dir: Path, fingerprint: str, arrays: tuple[np.ndarray, np.ndarray]) -> None:
    """Write the arrays, then the meta file that vouches for them (so a crash leaves no false match)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / TOKEN_CACHE[2]).unlink(missing_ok=True)  # no stale vouching while arrays are replaced
    for name, a in zip(TOKEN_CACHE[:2], arrays, strict=True):
        with atomic_writer(run_dir / name, within=run_dir) as fh:
            np.save(fh, a, allow_pickle=False)
    meta = {"fingerprint": fingerprint, "train": len(arrays[0]), "val": len(arrays[1])}
    atomic_write(run_dir / TOKEN_CACHE[2], json.dumps(meta), within=run_dir)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
