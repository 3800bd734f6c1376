"""pymlm.MaskingCollator and MaskedBatch: the original's masked sample, as numpy arrays."""
import numpy as np
import pytest

import pymlm


@pytest.fixture()
def seqs(tokenizer, sentences):
    return [tokenizer.encode(s) for s in sentences[:64]]


def test_sample_like_the_original(tokenizer, seqs):
    collator = pymlm.MaskingCollator(tokenizer, mask_prob=0.15, max_length=128, seed=0)
    batch = collator(seqs)
    for key in ("input_ids", "labels"):
        a = batch[key]
        assert a is getattr(batch, key)
        assert isinstance(a, np.ndarray) and a.dtype == np.int64 and a.shape == (64, 128)
    ids, labels = batch.input_ids, batch.labels
    assert batch.lengths.tolist() == [len(s) for s in seqs]
    for row, s in enumerate(seqs):
        n = len(s)
        assert (ids[row, n:] == tokenizer.pad_id).all()           # right padding with [PAD]
        assert (labels[row, n:] == -100).all()                    # never a label on padding
        sel = labels[row, :n] != -100
        assert (ids[row, :n][sel] == tokenizer.mask_id).all()     # selected -> [MASK] (100%)
        assert (labels[row, :n][sel] == np.array(s)[sel]).all()   # labels: the original ids
        assert (ids[row, :n][~sel] == np.array(s)[~sel]).all()    # the rest unchanged
    assert batch.num_masked == int((labels != -100).sum())
    share = batch.num_masked / sum(len(s) for s in seqs)
    assert 0.10 < share < 0.20
    assert set(batch.keys()) == {"input_ids", "labels", "lengths"} and len(batch) == 3
    assert "labels" in batch and dict(batch)["labels"] is labels
    assert "64x128" in repr(batch)


def test_padding_to_longest_and_inputs(tokenizer, sentences, seqs):
    collator = pymlm.MaskingCollator(tokenizer, seed=3)
    batch = collator(seqs[:4])
    assert batch.input_ids.shape == (4, max(len(s) for s in seqs[:4]))
    # texts are encoded with the tokenizer; a 2-D array's rows are sequences; max_length per call
    a = pymlm.MaskingCollator(tokenizer, seed=3)(sentences[:4])
    assert (a.input_ids == batch.input_ids).all() and (a.labels == batch.labels).all()
    b = pymlm.MaskingCollator(tokenizer, seed=3)([np.array(s, dtype=np.int32) for s in seqs[:4]], max_length=100)
    assert b.input_ids.shape == (4, 100) and (b.input_ids[:, : batch.input_ids.shape[1]] == batch.input_ids).all()
    rect = np.array([s[:5] for s in seqs[:3]], dtype=np.int64)
    assert pymlm.MaskingCollator(tokenizer)(rect).input_ids.shape == (3, 5)


def test_determinism_and_fresh_masks(tokenizer, seqs):
    c1 = pymlm.MaskingCollator(tokenizer, seed=7)
    c2 = pymlm.MaskingCollator(tokenizer, seed=7)
    first, second = c1(seqs), c1(seqs)
    assert (first.labels == c2(seqs).labels).all()          # same seed, same masks
    assert (first.labels != second.labels).any()            # the next call draws new ones
    assert c1.next_index == 2 * len(seqs)
    fixed = c1(seqs, sample_indices=list(range(len(seqs))))
    assert (fixed.labels == first.labels).all()
    assert (c1(seqs, epoch=1, sample_indices=list(range(len(seqs)))).labels != first.labels).any()
    other = pymlm.MaskingCollator(tokenizer, seed=8)(seqs)
    assert (other.labels != first.labels).any()


def test_mask_one_sequence_and_options(tokenizer, seqs):
    c = pymlm.MaskingCollator(tokenizer, mask_prob=1.0)
    ids, labels = c.mask(seqs[0])
    assert ids.shape == labels.shape == (len(seqs[0]),)
    assert (labels == np.array(seqs[0])).all() and (ids == tokenizer.mask_id).all()
    bert = pymlm.MaskingCollator(tokenizer, mask_prob=1.0, mask_fraction=0.8, random_fraction=0.1, seed=1)
    b = bert(seqs)
    lab = b.labels[b.labels != -100]
    inp = b.input_ids[b.labels != -100]
    share_mask = (inp == tokenizer.mask_id).mean()
    assert 0.7 < share_mask < 0.9 and (inp == lab).mean() > 0.03
    none = pymlm.MaskingCollator(tokenizer, mask_prob=0.0, at_least_one=True)(seqs)
    assert ((none.labels != -100).sum(axis=1) == 1).all()
    ww = pymlm.MaskingCollator(tokenizer, whole_word=True)
    assert ww.whole_word and "mask_prob=0.15" in repr(ww)


def test_errors(tokenizer, seqs):
    c = pymlm.MaskingCollator(tokenizer, max_length=8)
    with pytest.raises(ValueError, match="more than max_len 8"):
        c(seqs[:2])
    c = pymlm.MaskingCollator(tokenizer)
    with pytest.raises(TypeError, match="integer"):
        c([np.array([3.0, 4.0])])
    with pytest.raises(TypeError, match="integer"):
        c([[3, 4.5]])
    with pytest.raises(ValueError, match="outside the vocab"):
        c([[3, 4, 5000]])
    with pytest.raises(ValueError, match="outside the vocab"):
        c([[-1, 4]])
    with pytest.raises(ValueError, match="empty"):
        c([[3, 4], []])
    with pytest.raises(ValueError, match="no sequences"):
        c([])
    with pytest.raises(TypeError, match="one str"):
        c("a single text")
    with pytest.raises(ValueError, match="sample_indices"):
        c(seqs[:2], sample_indices=[0])
    with pytest.raises(ValueError, match="mask_probability"):
        pymlm.MaskingCollator(tokenizer, mask_prob=1.5)
    with pytest.raises(ValueError, match="max_length"):
        pymlm.MaskingCollator(tokenizer, max_length=0)
    with pytest.raises(TypeError):
        pymlm.MaskingCollator("not a tokenizer")
    with pytest.raises(KeyError):
        c(seqs[:2])["attention_mask"]
