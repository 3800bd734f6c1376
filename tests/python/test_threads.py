"""Inference from several Python threads at once on one MaskedLM gives exactly the serial results.

The bindings release the GIL in predict_mask, fill_mask and logits, so the C++ calls of the
threads really run side by side; MaskedLM hands each concurrent caller its own workspace. A
workspace shared by mistake would mix the activations of two inputs, and the results of at least
some calls would differ from the serial ones: they are compared bit for bit."""
import threading

import numpy as np
import pytest

import pymlm

N_THREADS = 4
ROUNDS = 6

# Different lengths, so that workspaces of different sizes are in use at the same time; some with
# one or several [MASK]s for fill_mask.
TEXTS = [
    "hello! how are you?",
    "the capital of france is [MASK].",
    "the film wrapped on 9 july 2018 in london.",
    "[MASK] the year, the facility hosts a variety of programs and [MASK] events for the community.",
    "a",
    "throughout the year, the facility hosts a variety of programs, concerts, lectures and exhibitions that draw "
    "visitors from the whole region and beyond, many of them for the first time in their lives.",
    "the larvae are black and flattened and feed on [MASK] as well.",
]
MASKED = [t for t in TEXTS if "[MASK]" in t]


def prediction_key(p):
    """Everything of a MaskPrediction that depends on the model's output, exactly."""
    return (p.position, p.predicted_id, p.predicted_probability, p.predicted_text,
            [(t.id, t.probability) for t in p.top_k])


def one_input(lm, i):
    """predict_mask, fill_mask (texts with a [MASK]) and the logits at every position of TEXTS[i]."""
    text = TEXTS[i]
    fill = lm.fill_mask(text, top_k=5) if "[MASK]" in text else None
    logits = lm.logits(lm.encode(text))
    return prediction_key(lm.predict_mask(text, seed=i)), fill, (logits.shape, logits.tobytes())


def batched(lm):
    """The list forms: one long call (one GIL release) over all the texts."""
    return [prediction_key(p) for p in lm.predict_mask(TEXTS, seed=3)], lm.fill_mask(MASKED, top_k=3)


@pytest.fixture(params=[1, 2], ids=["1-omp-thread", "2-omp-threads"])
def omp_threads(request):
    """Each call single-threaded, and each call itself running an OpenMP team (where built with
    OpenMP): both must give the serial results of the same setting."""
    before = pymlm.get_num_threads()
    pymlm.set_num_threads(request.param)
    yield request.param
    pymlm.set_num_threads(before)


def test_inference_from_threads_matches_serial(lm, omp_threads):
    serial = [one_input(lm, i) for i in range(len(TEXTS))]
    serial_batched = batched(lm)
    assert any(fill is not None for _, fill, _ in serial)

    barrier = threading.Barrier(N_THREADS)
    results = [None] * N_THREADS
    errors = []

    def work(t):
        try:
            barrier.wait(timeout=60)
            mine = []
            for _ in range(ROUNDS):
                # each thread starts at another input: different inputs and sizes side by side
                for j in range(len(TEXTS)):
                    i = (j + t) % len(TEXTS)
                    mine.append((i, one_input(lm, i)))
                mine.append((None, batched(lm)))
            results[t] = mine
        except BaseException as e:  # reported by the main thread
            errors.append((t, e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(N_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []

    for t, mine in enumerate(results):
        assert len(mine) == ROUNDS * (len(TEXTS) + 1)
        for i, got in mine:
            expected = serial_batched if i is None else serial[i]
            assert got == expected, "thread %d, input %s" % (t, "batched" if i is None else i)
