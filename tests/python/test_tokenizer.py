"""pymlm.Tokenizer: training from files and sentences, encode / decode, persistence, errors, GIL."""
import copy
import pickle
import threading
import time

import numpy as np
import pytest

import pymlm
from conftest import TRAIN_XZ, VALID_TXT


def test_special_ids_and_properties(tokenizer):
    assert (tokenizer.unk_id, tokenizer.pad_id, tokenizer.mask_id) == (0, 1, 2)
    assert tokenizer.vocab_size == len(tokenizer) == 1000
    assert tokenizer.mask_token == "[MASK]" and tokenizer.pad_token == "[PAD]" and tokenizer.unk_token == "[UNK]"
    assert tokenizer.max_length == 128
    assert tokenizer.is_special(tokenizer.mask_id) and tokenizer.is_special(tokenizer.pad_id)
    assert tokenizer.is_unknown(0) and not tokenizer.is_unknown(5)
    vocab = tokenizer.get_vocab()
    assert len(vocab) == 1000 and vocab["[MASK]"] == 2
    assert tokenizer.piece_to_id(tokenizer.id_to_piece(42)) == 42
    assert "vocab_size=1000" in repr(tokenizer)


def test_encode_decode_and_mask(tokenizer):
    ids = tokenizer.encode("The film wrapped on 9 July 2018 in London.")
    assert all(isinstance(i, int) for i in ids)
    assert tokenizer.decode(ids) == "the film wrapped on 9 july 2018 in london."
    masked = tokenizer.encode("the film [MASK] on 9 july.")
    assert masked.count(tokenizer.mask_id) == 1
    assert tokenizer.decode(masked) == "the film [MASK] on 9 july."
    assert "[MASK]" in tokenizer.encode_pieces("a [MASK] b")
    # numpy input, and pads are dropped when decoding
    padded = np.array(ids + [tokenizer.pad_id] * 5, dtype=np.int32)
    assert tokenizer.decode(padded) == tokenizer.decode(ids)
    assert tokenizer.decode_batch(np.array([ids, ids])) == [tokenizer.decode(ids)] * 2
    assert tokenizer.encode("") == []


def test_truncation(tokenizer, sentences):
    longest = max(sentences, key=len)
    assert len(tokenizer.encode(longest)) == 128
    assert len(tokenizer.encode(longest, max_length=10)) == 10
    assert len(tokenizer.encode(longest, max_length=0)) > 128


def test_encode_batch_matches_encode(tokenizer, sentences):
    batch = tokenizer.encode_batch(sentences[:200])
    assert batch == [tokenizer.encode(s) for s in sentences[:200]]
    assert tokenizer.encode_batch(sentences[:3], max_length=4) == [tokenizer.encode(s)[:4] for s in sentences[:3]]
    with pytest.raises(TypeError, match="list of str"):
        tokenizer.encode_batch("one text")


def test_train_from_file_list_and_path_forms(tmp_path, sentences):
    path = tmp_path / "few.txt"
    path.write_text("\n".join(sentences[:600]) + "\n", encoding="utf-8")
    a = pymlm.Tokenizer.train(str(path), vocab_size=300)
    b = pymlm.Tokenizer.train([path], vocab_size=300)           # pathlib in a list
    c = pymlm.Tokenizer.train_from_files([path], vocab_size=300)
    d = pymlm.Tokenizer.train(sentences[:600], vocab_size=300)    # the same text in memory
    assert a == b == c == d                                       # deterministic, same bytes
    assert a.fingerprint == d.fingerprint


def test_train_reads_xz_and_caps_sentences():
    tok = pymlm.Tokenizer.train(TRAIN_XZ, vocab_size=300, max_sentences=2000)
    assert tok.vocab_size == 300


def test_train_options(sentences):
    bpe = pymlm.Tokenizer.train(sentences[:800], vocab_size=400, model="bpe", max_length=64)
    assert bpe.vocab_size == 400 and bpe.max_length == 64
    cased = pymlm.Tokenizer.train(sentences[:800], vocab_size=400, lower_case=False)
    assert "London" in cased.decode(cased.encode("London"))
    with pytest.raises(ValueError, match="unigram"):
        pymlm.Tokenizer.train(sentences[:100], vocab_size=100, model="wordpiece")
    with pytest.raises(ValueError):
        pymlm.Tokenizer.train(["tiny text", "more"], vocab_size=5000)  # too little text
    small = pymlm.Tokenizer.train(["tiny text", "more text"], vocab_size=5000, allow_smaller_vocab=True)
    assert 3 < small.vocab_size < 5000


def test_save_load_bytes_pickle(tmp_path, tokenizer):
    path = tmp_path / "tok.model"
    tokenizer.save(path)
    loaded = pymlm.Tokenizer.load(path)
    assert loaded == tokenizer and pymlm.Tokenizer(str(path)) == tokenizer
    assert pymlm.Tokenizer.from_bytes(tokenizer.to_bytes()) == tokenizer
    assert path.read_bytes() == tokenizer.to_bytes()
    assert pickle.loads(pickle.dumps(tokenizer)) == tokenizer
    assert copy.deepcopy(tokenizer) == tokenizer
    t2 = copy.copy(tokenizer)
    t2.max_length = 16
    assert tokenizer.max_length == 128 and t2 != tokenizer


def test_errors(tmp_path, tokenizer):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pymlm.Tokenizer.load(tmp_path / "missing.model")
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a sentencepiece model")
    with pytest.raises(ValueError):
        pymlm.Tokenizer.load(bad)
    with pytest.raises(ValueError):
        pymlm.Tokenizer.from_bytes(b"")
    with pytest.raises(FileNotFoundError):
        pymlm.Tokenizer.train(tmp_path / "missing.txt", vocab_size=100)
    with pytest.raises(FileNotFoundError):
        pymlm.Tokenizer.train(["data/missing-file.txt"], vocab_size=100)   # looks like a path
    with pytest.raises(FileNotFoundError):
        pymlm.Tokenizer.train([str(VALID_TXT), "data/missing-file.txt"], vocab_size=100)
    with pytest.raises(TypeError):
        pymlm.Tokenizer.train([1, 2, 3], vocab_size=100)
    with pytest.raises(ValueError, match="outside the vocab"):
        tokenizer.decode([5, 1000])
    with pytest.raises(IndexError):                   # OutOfRangeError is also an IndexError
        tokenizer.id_to_piece(1000)
    with pytest.raises(pymlm.OutOfRangeError):
        tokenizer.id_to_piece(-1)
    with pytest.raises(TypeError, match="integer"):
        tokenizer.decode(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="integer"):
        tokenizer.decode([3, 4.5])
    with pytest.raises(TypeError, match="string"):
        tokenizer.decode("hello")
    with pytest.raises(TypeError):
        tokenizer.encode(123)


def test_long_calls_release_the_gil(sentences):
    """Tokenizer training and batch encoding run without the GIL: a Python thread keeps counting."""
    counts = []
    done = threading.Event()

    def count():
        n = 0
        while not done.is_set():
            n += 1
        counts.append(n)

    many = sentences * 20
    t = threading.Thread(target=count)
    t.start()
    start = time.perf_counter()
    try:
        pymlm.Tokenizer.train(sentences, vocab_size=800)
        tok = pymlm.Tokenizer.train(sentences, vocab_size=800)
        tok.encode_batch(many)
    finally:
        done.set()
        t.join()
    elapsed = time.perf_counter() - start
    # a thread that gets the GIL counts millions of times per second; with the GIL held by the
    # C++ calls it would count (almost) nothing until they return
    assert counts[0] > 100_000 * elapsed, (counts, elapsed)
