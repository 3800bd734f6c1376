"""pymlm.MaskedLM, predict_mask (the original's four lines) and fill_mask (Hugging Face's shapes)."""
import io
import random
import shutil
import threading

import numpy as np
import pytest

import pymlm

SENTENCE = "the film wrapped on 9 july 2018 in london."


def check_candidates(cands, top_k):
    assert isinstance(cands, list) and len(cands) == top_k
    for c in cands:
        assert set(c) == {"score", "token", "token_str", "sequence"}
        assert isinstance(c["score"], float) and 0.0 <= c["score"] <= 1.0
        assert isinstance(c["token"], int) and isinstance(c["token_str"], str) and isinstance(c["sequence"], str)
    scores = [c["score"] for c in cands]
    assert scores == sorted(scores, reverse=True) and sum(scores) <= 1.0 + 1e-9


def test_load_save_round_trip(tmp_path, lm, trained_dir):
    assert lm.config.dim == 32 and lm.tokenizer.vocab_size == 1000
    assert lm.model.num_parameters() == lm.config.num_parameters()
    lm.save(tmp_path / "copy")
    again = pymlm.MaskedLM.load(tmp_path / "copy")
    assert np.array_equal(again.model.flat_parameters, lm.model.flat_parameters)
    assert again.tokenizer == lm.tokenizer
    a = lm.predict_mask(SENTENCE, seed=4)
    b = again.predict_mask(SENTENCE, seed=4)
    assert (a.position, a.predicted_id, a.predicted_probability) == (b.position, b.predicted_id, b.predicted_probability)
    # lm.model is a view of the MaskedLM's weights, kept alive by it
    view = pymlm.MaskedLM.load(trained_dir).model.parameters()["ln_f.scale"]
    assert view.shape == (32,)


def test_predict_mask_prints_the_original_lines(lm, capsys):
    p = pymlm.predict_mask("hello! how are you?", lm, seed=1)
    printed = capsys.readouterr().out.splitlines()
    assert printed == p.lines == str(p).splitlines()
    assert printed[0] == "masked: %s predicted: %s" % (p.masked_token, p.predicted_token)
    assert printed[1] == "ACTUAL: hello! how are you?"
    assert printed[2].startswith("MASKED: ") and "[MASK]" in printed[2]
    assert printed[3].startswith(" MODEL: ") and "[MASK]" not in printed[3]
    assert p.sentence == "hello! how are you?"
    assert p.masked_text == printed[2][len("MASKED: "):] and p.predicted_text == printed[3][len(" MODEL: "):]
    assert p.masked_id == p.input_ids[p.position]
    assert p.correct == (p.predicted_id == p.masked_id)
    assert len(p.top_k) == 5 and p.top_k[0].id == p.predicted_id
    assert p.top_k[0].probability == pytest.approx(p.predicted_probability)
    token, prob = p.top_k[0]
    assert token == p.predicted_token and prob == p.top_k[0].probability
    assert "MaskPrediction(" in repr(p)


def test_predict_mask_which_token(lm):
    ids = lm.encode(SENTENCE)
    at = lm.predict_mask(SENTENCE, position=2)
    assert at.position == 2 and at.masked_id == ids[2]
    given = lm.predict_mask("the film [MASK] on 9 july 2018 in london.")
    assert given.masked_token == "[MASK]" and given.correct is False
    assert given.input_ids[given.position] == lm.tokenizer.mask_id
    # seeds: fixed -> repeatable; None -> drawn from Python's random (random.seed repeats it)
    assert lm.predict_mask(SENTENCE, seed=9).position == lm.predict_mask(SENTENCE, seed=9).position
    random.seed(5)
    first = [lm.predict_mask(SENTENCE).position for _ in range(8)]
    random.seed(5)
    assert [lm.predict_mask(SENTENCE).position for _ in range(8)] == first
    assert len(set(first)) > 1
    several = pymlm.predict_mask([SENTENCE, "hello! how are you?"], lm, seed=0, verbose=False)
    assert [p.sentence for p in several] == [SENTENCE, "hello! how are you?"]
    out = io.StringIO()
    pymlm.predict_mask(SENTENCE, lm, file=out)
    assert len(out.getvalue().splitlines()) == 4


def test_predict_mask_from_a_checkpoint_path(trained_dir, capsys):
    p = pymlm.predict_mask(SENTENCE, trained_dir, seed=2)
    assert capsys.readouterr().out.splitlines() == p.lines


def test_predict_mask_errors(lm):
    with pytest.raises(IndexError, match="outside the sentence"):
        lm.predict_mask("hello", position=50)
    with pytest.raises(ValueError, match="no tokens"):
        lm.predict_mask("")
    with pytest.raises(ValueError):
        lm.predict_mask("hello", position=-1)
    with pytest.raises(TypeError):
        pymlm.predict_mask(SENTENCE, object())


def test_fill_mask_shapes_like_hugging_face(lm):
    one = lm.fill_mask("the film was made in [MASK].", top_k=3)
    check_candidates(one, 3)
    assert all("[MASK]" not in c["sequence"] for c in one)
    assert one[0]["sequence"] == lm.tokenizer.decode(
        [one[0]["token"] if i == lm.tokenizer.mask_id else i for i in lm.encode("the film was made in [MASK].")]
    )
    two = lm.fill_mask("the [MASK] was made in [MASK].", top_k=2)
    assert len(two) == 2
    for cands in two:
        check_candidates(cands, 2)
        assert all(c["sequence"].count("[MASK]") == 1 for c in cands)   # the other mask stays
    texts = lm.fill_mask(["the [MASK] of the city.", "a [MASK] and a [MASK]."], top_k=4)
    assert len(texts) == 2
    check_candidates(texts[0], 4)
    assert len(texts[1]) == 2 and all(len(c) == 4 for c in texts[1])
    assert pymlm.fill_mask("the [MASK] of the city.", lm, top_k=4) == texts[0]


def test_fill_mask_targets(lm):
    full = lm.fill_mask("the [MASK] of the city.", top_k=1000)
    by_token = {c["token_str"]: c["score"] for c in full}
    res = lm.fill_mask("the [MASK] of the city.", targets=["city", "film"], top_k=5)
    assert {c["token_str"] for c in res} == {"city", "film"}
    for c in res:
        assert c["score"] == pytest.approx(by_token[c["token_str"]])
    assert lm.fill_mask("the [MASK] of the city.", targets="city")[0]["token_str"] == "city"
    with pytest.raises(ValueError, match="single token"):
        lm.fill_mask("the [MASK] of the city.", targets=["antidisestablishmentarianism"])


def test_fill_mask_errors(lm):
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        lm.fill_mask("there is no mask here")
    with pytest.raises(ValueError, match="text 1"):
        lm.fill_mask(["a [MASK].", "no mask"])
    with pytest.raises(ValueError, match="top_k"):
        lm.fill_mask("a [MASK].", top_k=0)
    with pytest.raises(TypeError):
        lm.fill_mask(42)


def test_checkpoint_errors(tmp_path, lm, sentences):
    with pytest.raises(FileNotFoundError, match="checkpoint directory does not exist"):
        pymlm.MaskedLM.load(tmp_path / "nothing")
    ckpt = tmp_path / "ckpt"
    lm.save(ckpt)
    # a missing file
    broken = tmp_path / "no_tokenizer"
    shutil.copytree(ckpt, broken)
    (broken / "tokenizer.model").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        pymlm.MaskedLM.load(broken)
    # a tokenizer whose vocab does not match config.json
    mismatch = tmp_path / "mismatch"
    shutil.copytree(ckpt, mismatch)
    pymlm.Tokenizer.train(sentences, vocab_size=700).save(mismatch / "tokenizer.model")
    with pytest.raises(pymlm.CheckpointError, match="700"):
        pymlm.MaskedLM.load(mismatch)
    assert issubclass(pymlm.CheckpointError, ValueError)
    # a truncated weights file
    corrupt = tmp_path / "corrupt"
    shutil.copytree(ckpt, corrupt)
    data = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(pymlm.CheckpointError):
        pymlm.MaskedLM.load(corrupt)
    # a model and a tokenizer that do not belong together
    other = pymlm.Tokenizer.train(sentences, vocab_size=700)
    with pytest.raises(ValueError, match="700"):
        pymlm.MaskedLM(lm.model, other)
    with pytest.raises(ValueError):
        pymlm.MaskedLM(lm.config, other)


def test_evaluate_and_logits(lm, sentences, tmp_path):
    m = lm.evaluate(sentences[1500:], max_sentences=200)
    assert m.sentences == 200 and m.masked_tokens > 0
    assert 0 < m.loss < 10 and 0 <= m.accuracy <= 1 and 0 <= m.single_mask_accuracy <= 1
    assert m.perplexity == pytest.approx(np.exp(m.loss))
    assert m.as_dict()["loss"] == m.loss and m["accuracy"] == m.accuracy
    path = tmp_path / "valid.txt"
    path.write_text("\n".join(sentences[1500:1700]) + "\n", encoding="utf-8")
    assert lm.evaluate(path).loss == pytest.approx(m.loss)
    assert lm.evaluate(pymlm.Corpus.from_sentences(lm.tokenizer, sentences[1500:1700])).loss == pytest.approx(m.loss)
    with pytest.raises(FileNotFoundError):
        lm.evaluate(str(tmp_path / "missing.txt"))
    ids = lm.encode(SENTENCE)
    logits = lm.logits(ids)
    assert logits.shape == (len(ids), 1000)
    assert np.allclose(lm.logits(ids, [2])[0], logits[2], atol=1e-5)
    assert lm.token_string(lm.tokenizer.mask_id) == "[MASK]"


def test_inference_releases_the_gil(lm, sentences):
    texts = [s.split(" ", 1)[0] + " [MASK] " + s.split(" ", 1)[-1] for s in sentences[:300]]
    counts = []
    done = threading.Event()

    def count():
        n = 0
        while not done.is_set():
            n += 1
        counts.append(n)

    t = threading.Thread(target=count)
    t.start()
    try:
        import time

        start = time.perf_counter()
        lm.fill_mask(texts, top_k=1)
        lm.predict_mask(sentences[:300], seed=0)
        elapsed = time.perf_counter() - start
    finally:
        done.set()
        t.join()
    assert counts[0] > 100_000 * elapsed
