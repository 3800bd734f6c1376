"""pymlm.torch: a checkpoint mlm saved loads into the PyTorch reference model with mlm's logits.

The bound is pymlm.torch's own: |torch - mlm| <= LOGITS_ATOL + LOGITS_RTOL * |torch| (float32 on
both sides, different summation orders), and the same argmax at every position.
"""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import pymlm

SENTENCES = [
    "the old stone bridge across the river was rebuilt after a winter flood.",
    "the capital of france is [MASK].",
    "hello! how are you?",
    "in 1875 the town had a railway station, a school and two churches.",
]


def test_import_pymlm_does_not_import_torch():
    code = "import sys, pymlm; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_module_is_installed_with_the_package():
    spec = importlib.util.find_spec("pymlm.torch")
    assert spec is not None
    assert os.path.dirname(spec.origin) == os.path.dirname(pymlm.__file__)


@pytest.fixture()
def ref():
    """pymlm.torch, on one thread on both sides (`import torch` sets the process's OpenMP
    threads, so they are set explicitly); skips when torch is not installed."""
    torch = pytest.importorskip("torch")
    import pymlm.torch

    torch_before = torch.get_num_threads()
    torch.set_num_threads(1)
    pymlm.set_num_threads(1)
    yield pymlm.torch
    torch.set_num_threads(torch_before)


def assert_same_logits(ref, torch_model, lm, texts):
    """Every position of every text, one text at a time on mlm's side, padded batch on torch's.
    Returns the largest |torch - mlm|."""
    import torch

    ids = torch_model.tokenize(texts)
    with torch.no_grad():
        _, logits = torch_model(ids)
    worst = 0.0
    for b, text in enumerate(texts):
        row = lm.encode(text)
        assert ids[b, :len(row)].tolist() == row
        assert (ids[b, len(row):] == torch_model.config.pad_id).all()
        want = lm.logits(row)
        got = logits[b, :len(row)].numpy()
        assert got.shape == want.shape
        err = np.abs(got - want)
        assert (err <= ref.LOGITS_ATOL + ref.LOGITS_RTOL * np.abs(got)).all(), err.max()
        assert (got.argmax(-1) == want.argmax(-1)).all()
        worst = max(worst, float(err.max()))
    return worst


def test_a_trained_checkpoint_gives_mlms_logits(ref, trained_dir, lm):
    import torch

    model = ref.load(trained_dir)
    assert isinstance(model, torch.nn.Module) and not model.training
    assert model.mlm_head.weight is model.embedding.class_embedding.weight
    assert next(model.parameters()).dtype == torch.float32
    assert pymlm.ModelConfig.from_json(model.config.to_json()) == lm.config
    assert model.num_parameters() == lm.config.num_parameters()
    assert model.tokenizer.vocab_size == lm.tokenizer.vocab_size
    worst = assert_same_logits(ref, model, lm, SENTENCES)
    print(f"trained tiny model: max |torch - mlm| = {worst:.3g}")


@pytest.mark.parametrize("placement", ["reference", "pre"])
def test_both_norm_placements(ref, tmp_path, tokenizer, placement):
    """Untrained weights with a wide init (logits of order 1) and both block orders."""
    config = pymlm.ModelConfig(vocab_size=tokenizer.vocab_size, dim=64, n_heads=4, n_layers=2,
                               max_len=32, norm_placement=placement, init_std=0.3)
    lm = pymlm.MaskedLM(config, tokenizer, seed=5)
    lm.save(tmp_path)
    model = ref.load(tmp_path)
    assert model.config.norm_placement == placement
    worst = assert_same_logits(ref, model, lm, SENTENCES + ["a sentence long enough to be cut at max_len " * 4])
    print(f"{placement}: max |torch - mlm| = {worst:.3g}")


def test_a_safetensors_file_and_float64(ref, trained_dir, lm):
    import torch

    model = ref.load(os.path.join(trained_dir, "model.safetensors"), dtype=torch.float64)
    assert next(model.parameters()).dtype == torch.float64
    ids = model.tokenize(SENTENCES[0])
    with torch.no_grad():
        _, logits = model(ids)
    assert np.allclose(logits[0].numpy(), lm.logits(lm.encode(SENTENCES[0])), atol=1e-3)


def test_load_errors(ref, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        ref.load(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        ref.load(tmp_path)
    bare = ref.MLMEncoder(ref.Config(vocab_size=64, dim=32, n_heads=2, n_layers=1, max_len=16))
    with pytest.raises(ValueError, match="no tokenizer"):
        bare.tokenize("hello")


def test_the_oracles_config_mirrors_the_field_table(ref):
    """pymlm.torch keeps its own config class (the oracle does not use mlm's code); it must list
    the same fields with the same defaults as mlm's ModelConfig table."""
    import dataclasses

    mirror = {f.name: f.default for f in dataclasses.fields(ref.Config)}
    table = {f["name"]: f["default"] for f in pymlm.ModelConfig.fields()}
    assert mirror == table
