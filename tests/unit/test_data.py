"""Corpus loading and batches on real files: splits, byte caps, errors, reproducible batches, streams."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data import (
    EXCLUDED_DIRS,
    SourceFile,
    contiguous_streams,
    eval_batches,
    get_batch,
    list_source,
    load_corpus,
    split_files,
    stream_period,
    unigram_entropy,
)
from nexus_core.config import DataConfig
from nexus_core.errors import DataError


def _folder(root: Path, n: int = 40, size: int = 600) -> Path:
    """n small text files in nested folders, each with distinct content."""
    for i in range(n):
        sub = root / f"pkg{i % 4}" / ("deep" if i % 3 else "")
        sub.mkdir(parents=True, exist_ok=True)
        body = f"# file {i}\n" + "".join(f"value_{i}_{j} = {i * j}\n" for j in range(size // 16))
        (sub / f"mod{i:02d}.txt").write_text(body[:size])
    return root


def _ids(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.int32)


# ------------------------------------------------------------------------------------------ splits


def test_file_split_deterministic_disjoint_and_complete(tmp_path: Path) -> None:
    files, _ = list_source(str(_folder(tmp_path / "c", n=200)))
    train, val = split_files(files, 0.1)
    again_train, again_val = split_files(list(reversed(files)), 0.1)
    assert [f.rel for f in train] == [f.rel for f in again_train]
    assert [f.rel for f in val] == [f.rel for f in again_val]
    assert not {f.rel for f in train} & {f.rel for f in val}
    assert {f.rel for f in train} | {f.rel for f in val} == {f.rel for f in files}
    assert 5 <= len(val) <= 40  # about 10% of 200 by a uniform hash


def test_split_never_leaves_a_side_empty() -> None:
    two = [SourceFile("a.txt", Path("a.txt")), SourceFile("b.txt", Path("b.txt"))]
    for fraction in (1e-9, 0.49):
        train, val = split_files(two, fraction)
        assert len(train) == 1 and len(val) == 1


def test_split_depends_on_relative_path_not_location(tmp_path: Path) -> None:
    a = _folder(tmp_path / "a", n=60)
    b = _folder(tmp_path / "elsewhere" / "b", n=60)
    val_a = {f.rel for f in split_files(list_source(str(a))[0], 0.2)[1]}
    val_b = {f.rel for f in split_files(list_source(str(b))[0], 0.2)[1]}
    assert val_a == val_b


def test_folder_corpus_loads_both_splits(tmp_path: Path) -> None:
    src = _folder(tmp_path / "c", n=40)
    c = load_corpus(DataConfig(source=str(src), val_fraction=0.2), tmp_path / "run", seq_len=32)
    total = sum(p.stat().st_size for p in src.rglob("*.txt"))
    assert c.train_files + c.val_files == 40 and c.val_files >= 1
    assert c.train_bytes + c.val_bytes == total
    assert len(c.train) == c.train_bytes and len(c.val) == c.val_bytes  # ASCII bytes, one token each
    assert c.train.dtype == torch.int32 and c.train.ndim == 1
    assert c.description.startswith(str(src)) and "40 files" in c.description
    val_text = c.tokenizer.decode(c.val.tolist())
    train_text = c.tokenizer.decode(c.train.tolist())
    for line in val_text.splitlines():  # file-level split: no val line appears in train
        if line.startswith("# file"):
            assert line + "\n" not in train_text


def test_single_file_is_split_by_bytes_at_the_end(tmp_path: Path) -> None:
    text = "".join(f"line {i}\n" for i in range(2000))
    (tmp_path / "one.txt").write_text(text)
    c = load_corpus(DataConfig(source=str(tmp_path / "one.txt"), val_fraction=0.1), tmp_path / "run", 16)
    train, val = c.tokenizer.decode(c.train.tolist()), c.tokenizer.decode(c.val.tolist())
    assert train + val == text
    assert len(val) == int(len(text) * 0.1)


def test_run_folder_inside_the_source_is_not_read(tmp_path: Path) -> None:
    src = _folder(tmp_path / "c", n=10)
    run = src / "runs" / "r1"
    cfg = DataConfig(source=str(src), val_fraction=0.2)
    before = load_corpus(cfg, run, 16)
    run.mkdir(parents=True, exist_ok=True)
    (run / "engine.log").write_text("a log that grows while the run trains\n" * 100)
    after = load_corpus(cfg, run, 16)  # a resume must see the same corpus
    assert torch.equal(before.train, after.train) and torch.equal(before.val, after.val)


# ------------------------------------------------------------------------------------------ byte cap


def test_max_bytes_caps_and_is_deterministic(tmp_path: Path) -> None:
    src = _folder(tmp_path / "c", n=40, size=600)
    cfg = DataConfig(source=str(src), val_fraction=0.2, max_bytes=5000)
    a = load_corpus(cfg, tmp_path / "r1", seq_len=32)
    b = load_corpus(cfg, tmp_path / "r2", seq_len=32)
    assert a.train_bytes + a.val_bytes == 5000
    assert len(a.train) + len(a.val) == 5000
    assert a.val_bytes == math.ceil(5000 * 0.2)
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)


def test_max_bytes_never_cuts_a_character_in_half(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    for i in range(10):
        (tmp_path / "c" / f"f{i}.txt").write_text("é" * 400)  # 2 bytes per character
    c = load_corpus(DataConfig(source=str(tmp_path / "c"), max_bytes=1001), tmp_path / "run", 8)
    assert len(c.train) + len(c.val) <= 1001
    text = c.tokenizer.decode(c.train.tolist()) + c.tokenizer.decode(c.val.tolist())
    assert "\ufffd" not in text and set(text) == {"é"}


# ------------------------------------------------------------------------------------------ bad input


def test_missing_source_is_one_line_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        load_corpus(DataConfig(source=str(tmp_path / "nope")), tmp_path / "run", 16)
    assert "does not exist" in str(e.value) and "nope" in str(e.value) and "\n" not in str(e.value)


def test_empty_folder_and_binary_only_folder_are_data_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no readable text"):
        load_corpus(DataConfig(source=str(tmp_path / "empty")), tmp_path / "run", 16)
    (tmp_path / "bin").mkdir()
    for i in range(3):
        (tmp_path / "bin" / f"b{i}.dat").write_bytes(b"\x89PNG\x00\x01\x02" * 50)
    (tmp_path / "bin" / "empty.txt").write_text("")
    with pytest.raises(DataError, match="4 binary or empty files skipped"):
        load_corpus(DataConfig(source=str(tmp_path / "bin")), tmp_path / "run", 16)


def test_split_too_short_for_seq_len_says_what_to_fix(tmp_path: Path) -> None:
    (tmp_path / "tiny.txt").write_text("x" * 300)
    with pytest.raises(DataError, match=r"val split has 30 tokens but model.seq_len=64"):
        load_corpus(DataConfig(source=str(tmp_path / "tiny.txt"), val_fraction=0.1), tmp_path / "run", 64)


def test_binary_skipped_and_bad_utf8_replaced(tmp_path: Path) -> None:
    src = _folder(tmp_path / "c", n=10)
    (src / "blob.bin").write_bytes(b"abc\x00def" * 100)
    (src / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 50)
    (src / ".hidden.txt").write_text("SECRET " * 50)
    c = load_corpus(DataConfig(source=str(src), val_fraction=0.3), tmp_path / "run", 16)
    assert c.skipped_files == 1 and c.train_files + c.val_files == 11
    text = c.tokenizer.decode(c.train.tolist()) + c.tokenizer.decode(c.val.tolist())
    assert "caf\ufffd " in text and "abc" not in text and "SECRET" not in text


# ------------------------------------------------------------------------------------------ stdlib


def test_stdlib_corpus_found_without_tests_or_packages(tmp_path: Path) -> None:
    files, label = list_source("stdlib")
    rels = [f.rel for f in files]
    assert label == "stdlib" and "os.py" in rels and "json/decoder.py" in rels
    assert rels == sorted(rels) and all(r.endswith(".py") for r in rels)
    assert not any(set(r.split("/")) & EXCLUDED_DIRS for r in rels)
    c = load_corpus(DataConfig(max_bytes=200_000), tmp_path / "run", seq_len=128)
    assert c.description.startswith("stdlib:") and c.train_bytes + c.val_bytes <= 200_000
    assert c.val_files >= 1 and c.train_files > c.val_files
    assert 2.0 < c.unigram_entropy < 4.5  # Python source in bytes: far below ln 256 = 5.55


def test_stdlib_bpe_corpus_uses_and_refreshes_token_cache(tmp_path: Path) -> None:
    cfg = DataConfig(tokenizer="bpe", bpe_vocab=320, max_bytes=150_000)
    run = tmp_path / "run"
    a = load_corpus(cfg, run, seq_len=64)
    assert (run / "tokenizer.json").exists() and (run / "tokens_train.npy").exists()
    assert len(a.train) < a.train_bytes and int(a.train.max()) < 320
    b = load_corpus(cfg, run, seq_len=64)
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    # A cache for other text must never be trusted: change the corpus and the tokens follow it,
    # exactly as a fresh run folder holding the same tokenizer (and no cache) tokenizes it.
    smaller_cfg = DataConfig(tokenizer="bpe", bpe_vocab=320, max_bytes=100_000)
    smaller = load_corpus(smaller_cfg, run, seq_len=64)
    fresh_run = tmp_path / "fresh"
    fresh_run.mkdir()
    (fresh_run / "tokenizer.json").write_bytes((run / "tokenizer.json").read_bytes())
    fresh = load_corpus(smaller_cfg, fresh_run, seq_len=64)
    assert len(smaller.train) < len(a.train)
    assert torch.equal(smaller.train, fresh.train) and torch.equal(smaller.val, fresh.val)


# ------------------------------------------------------------------------------------------ entropy


def test_unigram_entropy_of_toy_texts(tmp_path: Path) -> None:
    (tmp_path / "ab.txt").write_text("ab" * 1000)
    c = load_corpus(DataConfig(source=str(tmp_path / "ab.txt"), val_fraction=0.1), tmp_path / "run", 16)
    assert c.unigram_entropy == pytest.approx(math.log(2), abs=1e-3)
    assert unigram_entropy(np.array([0, 1, 2, 3] * 5), 256) == pytest.approx(math.log(4))
    assert unigram_entropy(np.array([7, 7, 7, 9]), 16) == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    )
    assert unigram_entropy(torch.tensor([5] * 10, dtype=torch.int32), 16) == 0.0


# ------------------------------------------------------------------------------------------ batches


def test_get_batch_reproducible_and_shifted() -> None:
    tokens = _ids(5000)
    rng_before = torch.get_rng_state()
    x, y = get_batch(tokens, 8, 32, seed=3, position=17)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG is never used
    assert x.shape == y.shape == (8, 32) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(y, x + 1)  # with tokens = arange, every row is one contiguous window
    x2, y2 = get_batch(tokens, 8, 32, seed=3, position=17)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(get_batch(tokens, 8, 32, seed=3, position=18)[0], x)
    assert not torch.equal(get_batch(tokens, 8, 32, seed=4, position=17)[0], x)


def test_get_batch_covers_the_whole_split() -> None:
    tokens = _ids(200)
    starts = torch.cat([get_batch(tokens, 16, 8, seed=0, position=p)[0][:, 0] for p in range(100)])
    assert int(starts.min()) == 0 and int(starts.max()) == 200 - 8 - 1  # last window still has its target


def test_eval_batches_same_every_eval() -> None:
    tokens = _ids(3000)
    a = eval_batches(tokens, 4, 16, n_batches=3, seed=1)
    b = eval_batches(tokens, 4, 16, n_batches=3, seed=1)
    assert len(a) == 3
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ya, xa + 1)
    assert not torch.equal(a[0][0], a[1][0])


def test_contiguous_streams_continue_and_wrap() -> None:
    tokens = _ids(1000)
    batch, seq = 4, 10
    period = stream_period(tokens, batch, seq)
    assert period == (1000 // batch - 1) // seq
    for s in range(period - 1):
        x0, y0 = contiguous_streams(tokens, batch, seq, s)
        x1, _ = contiguous_streams(tokens, batch, seq, s + 1)
        assert torch.equal(x1[:, 0], y0[:, -1])  # row b of batch s+1 starts where row b of batch s ended
        assert torch.equal(torch.cat([x0, x1], 1), x0[:, :1] + torch.arange(2 * seq))
    rows = contiguous_streams(tokens, batch, seq, 0)[0][:, 0]
    assert torch.equal(rows, torch.arange(batch) * (1000 // batch))  # B disjoint parts of the corpus
    assert torch.equal(
        contiguous_streams(tokens, batch, seq, period)[0], contiguous_streams(tokens, batch, seq, 0)[0]
    )


def test_batches_refuse_too_few_tokens() -> None:
    with pytest.raises(DataError, match="seq_len=32"):
        get_batch(_ids(32), 2, 32, seed=0, position=0)
    with pytest.raises(DataError, match="streams"):
        contiguous_streams(_ids(100), 8, 16, 0)
