"""Shared fixtures of the pymlm tests: a small tokenizer and a briefly trained tiny model, made once
per session from the bundled Wikipedia sample (data/wiki-valid-2k.txt), so the suite stays fast."""
import os
import pathlib

import pytest

import pymlm

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = REPO / "data"
VALID_TXT = DATA / "wiki-valid-2k.txt"
TRAIN_XZ = DATA / "wiki-train-30k.txt.xz"

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models are dominated by thread synchronisation, which is erratic on a shared 2-core
    machine: run the suite on one OpenMP thread (tests that need two set it themselves)."""
    before = pymlm.get_num_threads()
    pymlm.set_num_threads(1)
    yield
    pymlm.set_num_threads(before)


@pytest.fixture(scope="session")
def sentences():
    """The 2,000 held-out sentences of the bundled sample."""
    return pymlm.read_lines(VALID_TXT)


@pytest.fixture(scope="session")
def tokenizer(sentences):
    """A unigram tokenizer with 1,000 pieces trained on the 2,000 sentences (about a second)."""
    return pymlm.Tokenizer.train(sentences, vocab_size=1000)


@pytest.fixture(scope="session")
def tiny_config(tokenizer):
    return pymlm.ModelConfig(vocab_size=tokenizer.vocab_size, dim=32, n_heads=4, n_layers=2, dropout=0.0)


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory, tokenizer, tiny_config, sentences):
    """A checkpoint directory of a tiny model trained for two epochs on 1,500 sentences."""
    out = tmp_path_factory.mktemp("run")
    trainer = pymlm.Trainer(
        tiny_config, tokenizer, sentences[:1500], sentences[1500:], epochs=2, batch_size=32, lr=3e-3,
        out_dir=out, progress=False, seed=1,
    )
    trainer.fit()
    return out


@pytest.fixture(scope="session")
def lm(trained_dir):
    return pymlm.MaskedLM.load(trained_dir)
