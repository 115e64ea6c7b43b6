"""Tokenizers: lossless round trips on arbitrary unicode, vocab bounds, and the saved BPE a resume reuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data import stdlib_root
from engine.tokenizer import TOKENIZER_FILE, BpeTokenizer, ByteTokenizer, load_or_train
from nexus_core.config import DataConfig
from nexus_core.errors import DataError

VOCAB = 400


def _sample_texts() -> list[str]:
    """A few real stdlib modules: enough text for every merge of a small vocab."""
    root = stdlib_root()
    return [(root / name).read_text(encoding="utf-8") for name in ("textwrap.py", "shlex.py", "glob.py")]


@pytest.fixture(scope="module")
def bpe() -> BpeTokenizer:
    return BpeTokenizer.train(_sample_texts(), VOCAB)


@given(st.text())
def test_byte_round_trip(s: str) -> None:
    tok = ByteTokenizer()
    ids = tok.encode(s)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert ids == list(s.encode("utf-8"))
    assert tok.decode(ids) == s


@settings(max_examples=200, deadline=None)
@given(s=st.text())
def test_bpe_round_trip(bpe: BpeTokenizer, s: str) -> None:
    ids = bpe.encode(s)
    assert all(0 <= i < bpe.vocab_size for i in ids)
    assert bpe.decode(ids) == s


def test_bpe_round_trip_of_bytes_absent_from_training(bpe: BpeTokenizer) -> None:
    # The training text is ASCII Python; these characters only survive thanks to the byte alphabet.
    s = "naïve Σ 漢字 😀 \x00\x7f\u200b"
    assert bpe.decode(bpe.encode(s)) == s


def test_bpe_compresses_and_respects_vocab(bpe: BpeTokenizer) -> None:
    text = "\n".join(_sample_texts())
    ids = bpe.encode(text)
    assert bpe.tok.get_vocab_size() == VOCAB
    assert bpe.vocab_size == VOCAB
    assert max(ids) < VOCAB
    assert len(ids) < 0.6 * len(text.encode("utf-8"))  # merges were learned and used


def test_encode_many_matches_encode(bpe: BpeTokenizer) -> None:
    texts = ["def f(x):\n    return x\n", "", "héllo"]
    for tok in (ByteTokenizer(), bpe):
        joined = [i for t in texts for i in tok.encode(t)]
        assert tok.encode_many(texts).tolist() == joined


def test_small_corpus_keeps_configured_id_space() -> None:
    tok = BpeTokenizer.train(["abc abc abc"], 1000)
    assert tok.tok.get_vocab_size() < 1000
    assert tok.vocab_size == 1000


def test_invalid_utf8_decodes_with_replacement(bpe: BpeTokenizer) -> None:
    assert ByteTokenizer().decode([0x66, 0xC3, 0x28]) == "f\ufffd("
    first_byte_of_e_acute = bpe.encode("é")[:1]
    assert bpe.decode(first_byte_of_e_acute) == "\ufffd"


def test_save_load_round_trip(tmp_path: Path, bpe: BpeTokenizer) -> None:
    bpe.save(tmp_path)
    loaded = BpeTokenizer.load(tmp_path / TOKENIZER_FILE, VOCAB)
    text = "\n".join(_sample_texts())[:5000] + " 😀"
    assert loaded.encode(text) == bpe.encode(text)
    assert loaded.decode(bpe.encode(text)) == text
    assert not list(tmp_path.glob("*.tmp"))


def test_load_or_train_trains_once_then_reuses(tmp_path: Path) -> None:
    cfg = DataConfig(tokenizer="bpe", bpe_vocab=300)
    calls = []

    def texts() -> list[str]:
        calls.append(1)
        return _sample_texts()

    first = load_or_train(cfg, tmp_path, texts)
    assert (tmp_path / TOKENIZER_FILE).exists() and calls == [1]
    # A resume must reuse the saved tokenizer even if the corpus now differs: texts is never called.
    second = load_or_train(cfg, tmp_path, lambda: pytest.fail("retrained instead of reusing tokenizer.json"))
    probe = "import os\nclass Foo:\n    pass\n"
    assert second.encode(probe) == first.encode(probe)


def test_byte_config_needs_no_training(tmp_path: Path) -> None:
    tok = load_or_train(DataConfig(tokenizer="byte"), tmp_path, lambda: pytest.fail("bytes need no training"))
    assert tok.kind == "byte" and tok.vocab_size == 256
    assert list(tmp_path.iterdir()) == []


def test_corrupt_tokenizer_file_is_one_line_data_error(tmp_path: Path) -> None:
    (tmp_path / TOKENIZER_FILE).write_text('{"model": {"type": "BPE", "vocab": ')
    with pytest.raises(DataError) as e:
        load_or_train(DataConfig(tokenizer="bpe"), tmp_path, _sample_texts)
    assert "tokenizer.json" in str(e.value) and "\n" not in str(e.value)


def test_mismatched_tokenizer_file_is_data_error(tmp_path: Path, bpe: BpeTokenizer) -> None:
    bpe.save(tmp_path)
    with pytest.raises(DataError, match="bpe_vocab"):
        load_or_train(DataConfig(tokenizer="bpe", bpe_vocab=300), tmp_path, _sample_texts)
    with pytest.raises(DataError, match="data.tokenizer = byte"):
        load_or_train(DataConfig(tokenizer="byte"), tmp_path, _sample_texts)


def test_non_bpe_tokenizer_file_is_data_error(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models

    Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).save(str(tmp_path / TOKENIZER_FILE))
    assert json.loads((tmp_path / TOKENIZER_FILE).read_text())["model"]["type"] == "WordLevel"
    with pytest.raises(DataError, match="not byte-level BPE"):
        load_or_train(DataConfig(tokenizer="bpe"), tmp_path, _sample_texts)
