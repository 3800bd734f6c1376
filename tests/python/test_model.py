"""pymlm.Model: forward / backward from numpy, zero-copy parameter views, state dicts, errors."""
import copy
import gc
import importlib.util
import pickle

import numpy as np
import pytest

import pymlm


@pytest.fixture()
def model(tiny_config):
    return pymlm.Model(tiny_config, seed=0)


@pytest.fixture()
def batch(tokenizer, sentences):
    collator = pymlm.MaskingCollator(tokenizer, seed=0, max_length=64)
    return collator([tokenizer.encode(s, max_length=64) for s in sentences[:8]])


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def test_parameters_count_and_names(model, tiny_config):
    assert model.num_parameters() == tiny_config.num_parameters()
    names = model.parameter_names()
    assert names[0] == "embedding.class_embedding.weight" and names[-1] == "ln_f.scale"
    params = model.parameters()
    assert list(params) == names
    assert sum(p.size for p in params.values()) == model.num_parameters()
    assert params["encoders.1.attn.in_proj.weight"].shape == (3 * 32, 32)
    assert params["embedding.class_embedding.weight"].dtype == np.float32
    assert (params["ln_f.scale"] == 1).all() and (params["encoders.0.attn.out_proj.bias"] == 0).all()
    assert "parameters=" in repr(model) and model.config == tiny_config


def test_forward_loss_and_logits(model, batch):
    out = model.forward(batch.input_ids, batch.labels)
    M = batch.num_masked
    assert isinstance(out.loss, float) and out.logits.shape == (M, 1000) and out.target_losses.shape == (M,)
    # the loss is the mean cross-entropy of the labelled positions, from the returned logits
    targets = batch.labels[batch.labels != -100]
    ce = -log_softmax(out.logits)[np.arange(M), targets]
    assert out.loss == pytest.approx(ce.mean(), rel=1e-4)
    assert np.allclose(out.target_losses, ce, rtol=1e-4)
    assert out.loss == pytest.approx(np.log(1000), rel=0.1)   # a fresh model is near uniform
    loss, logits = out                                         # unpacks like (loss, logits)
    assert out["loss"] == loss
    # logits at every position: (B, T, V), zeros at padding, equal to the masked rows
    full = model(batch.input_ids, batch.labels, logits="all")
    assert full.logits.shape == batch.input_ids.shape + (1000,)
    assert np.allclose(full.logits[batch.labels != -100], out.logits, atol=1e-5)
    pad = batch.input_ids == 1
    assert (full.logits[pad] == 0).all()
    none = model.forward(batch.input_ids, batch.labels, logits=None)
    assert none.logits is None and none.loss == pytest.approx(out.loss)
    # without labels: logits of every position, no loss
    inf = model(batch.input_ids)
    assert inf.loss is None and inf.logits.shape == full.logits.shape
    # int32 input, lists, and a 1-D row all work
    out32 = model.forward(batch.input_ids.astype(np.int32), batch.labels.astype(np.int32))
    assert out32.loss == out.loss
    row = batch.input_ids[0][: batch.lengths[0]]
    one = model(row.tolist(), logits="all")
    assert np.allclose(one.logits[0], full.logits[0, : batch.lengths[0]], atol=1e-5)


def test_dropout_only_in_training(tokenizer, batch):
    config = pymlm.ModelConfig(vocab_size=tokenizer.vocab_size, dim=32, n_heads=4, n_layers=2, dropout=0.3)
    model = pymlm.Model(config, seed=0)
    a = model.forward(batch.input_ids, batch.labels).loss
    assert model.forward(batch.input_ids, batch.labels).loss == a
    b = model.forward(batch.input_ids, batch.labels, train=True, dropout_key=1).loss
    assert b != a
    assert model.forward(batch.input_ids, batch.labels, train=True, dropout_key=1).loss == b


def test_parameter_views_share_memory(model, batch):
    params = model.parameters()
    flat = model.flat_parameters
    emb = params["embedding.class_embedding.weight"]
    assert np.shares_memory(emb, flat) and emb.flags.writeable and not emb.flags.owndata
    before = model.forward(batch.input_ids, batch.labels).loss
    params["ln_f.scale"][:] = 3.0                     # write through the view ...
    assert (model.parameter("ln_f.scale") == 3.0).all()
    assert model.forward(batch.input_ids, batch.labels).loss != before   # ... changes the model
    params["ln_f.scale"][:] = 1.0
    assert model.forward(batch.input_ids, batch.labels).loss == before
    assert np.shares_memory(model.parameter("mlm_head.weight"), emb)    # the tied head
    # the views keep the model alive
    view = pymlm.Model(model.config, seed=5).parameters()["ln_f.scale"]
    gc.collect()
    assert (view == 1).all()


def test_backward_and_gradients(model, batch):
    model.zero_grad()
    assert not model.flat_gradients.any()
    out = model.forward(batch.input_ids, batch.labels, logits=None)
    model.backward()
    grads = model.gradients()
    assert np.shares_memory(grads["ln_f.scale"], model.flat_gradients)
    assert all(np.isfinite(g).all() for g in grads.values())
    assert np.abs(grads["encoders.0.attn.in_proj.weight"]).sum() > 0
    # a finite-difference check on a few entries of one tensor (float32: loose tolerance)
    w = model.parameters()["encoders.1.ffd.feed_forward.0.weight"]
    g = grads["encoders.1.ffd.feed_forward.0.weight"].copy()
    idx = np.unravel_index(np.argsort(-np.abs(g), axis=None)[:3], g.shape)
    eps = 1e-2
    for i, j in zip(*idx):
        old = w[i, j]
        w[i, j] = old + eps
        up = model.forward(batch.input_ids, batch.labels, logits=None).loss
        w[i, j] = old - eps
        down = model.forward(batch.input_ids, batch.labels, logits=None).loss
        w[i, j] = old
        assert (up - down) / (2 * eps) == pytest.approx(g[i, j], rel=0.05, abs=1e-4)
    # backward accumulates: a second pass with loss_scale 2 triples the gradient
    first = model.flat_gradients.copy()
    model.forward(batch.input_ids, batch.labels, logits=None)
    model.backward(2.0)
    assert np.allclose(model.flat_gradients, 3 * first, rtol=1e-4, atol=1e-7)
    model.zero_grad()
    assert not model.flat_gradients.any()
    assert out.loss > 0


def test_state_dict_save_load_copy(tmp_path, model, batch, tiny_config):
    state = model.state_dict()
    other = pymlm.Model(tiny_config, seed=1)
    loss = model.forward(batch.input_ids, batch.labels).loss
    assert other.forward(batch.input_ids, batch.labels).loss != loss
    other.load_state_dict(state)
    assert other.forward(batch.input_ids, batch.labels).loss == loss
    assert not np.shares_memory(state["ln_f.scale"], model.flat_parameters)      # copies
    with_head = model.state_dict(include_head=True)
    assert "mlm_head.weight" in with_head
    other.load_state_dict(with_head)
    model.save(tmp_path / "m")
    assert pymlm.Model.load(tmp_path / "m").forward(batch.input_ids, batch.labels).loss == loss
    for dup in (model.copy(), copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert dup.forward(batch.input_ids, batch.labels).loss == loss
        assert not np.shares_memory(dup.flat_parameters, model.flat_parameters)
    bad = dict(state)
    bad["ln_f.scale"] = np.ones(5, dtype=np.float32)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(bad)
    del bad["ln_f.scale"]
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict(bad)
    other.load_state_dict(bad, strict=False)
    with pytest.raises(ValueError, match="unexpected"):
        other.load_state_dict({**state, "extra.weight": np.zeros(1)})


def test_errors(model, batch, tmp_path):
    with pytest.raises(TypeError, match="integer"):
        model.forward(batch.input_ids.astype(np.float32), batch.labels)
    with pytest.raises(TypeError, match="integer"):
        model.forward(batch.input_ids, batch.labels.astype(np.float64))
    with pytest.raises(TypeError):
        model.forward("some text")
    with pytest.raises(ValueError, match="outside the vocab"):
        model.forward(np.full((2, 3), 1000))
    with pytest.raises(ValueError, match=r"outside \[0, 1000\) or -100"):
        model.forward(batch.input_ids, np.full(batch.labels.shape, -5))
    with pytest.raises(ValueError, match="shape"):
        model.forward(batch.input_ids, batch.labels[:, :5])
    with pytest.raises(ValueError, match="shape"):
        model.forward(np.zeros((2, 3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="rectangular"):
        model.forward([[5, 6], [7]])
    with pytest.raises(ValueError, match="after a pad"):
        model.forward(np.array([[5, 1, 6]]))
    with pytest.raises(ValueError, match="max_len"):
        model.forward(np.full((1, 200), 5))
    with pytest.raises(ValueError, match="logits"):
        model.forward(batch.input_ids, batch.labels, logits="some")
    with pytest.raises(ValueError, match="needs labels"):
        model.forward(batch.input_ids, logits="masked")
    with pytest.raises(KeyError):
        model.parameter("no.such.tensor")
    with pytest.raises(RuntimeError, match="without a forward"):
        pymlm.Model(model.config).backward()
    with pytest.raises(FileNotFoundError):
        pymlm.Model.load(tmp_path / "missing")
    with pytest.raises(ValueError):
        pymlm.Model(pymlm.ModelConfig(dim=30))


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_matches_the_pytorch_reference(model, batch, tiny_config):
    """The same weights (through state_dict) give the PyTorch reference model's loss and logits."""
    import torch

    import pymlm.torch as ref

    cfg = ref.Config.from_json(tiny_config.to_json())
    ref_model = ref.MLMEncoder(cfg, seed=123).eval()
    ref_model.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict(include_head=True).items()})
    with torch.no_grad():
        loss, logits = ref_model(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.labels))
    out = model.forward(batch.input_ids, batch.labels, logits="all")
    assert out.loss == pytest.approx(loss.item(), rel=1e-5)
    real = batch.input_ids != 1
    assert np.allclose(out.logits[real], logits.numpy()[real], atol=1e-4)
