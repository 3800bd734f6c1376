"""pymlm.Trainer: fit with a progress bar, history, callbacks, Ctrl-C, the GIL, resume, errors."""
import _thread
import json
import math
import os
import signal
import threading
import time

import numpy as np
import pytest

import pymlm


def make_trainer(tokenizer, config, sentences, out_dir=None, **options):
    options.setdefault("epochs", 1)
    options.setdefault("batch_size", 32)
    options.setdefault("progress", False)
    return pymlm.Trainer(config, tokenizer, sentences[:1000], sentences[1500:1700], out_dir=out_dir, **options)


def test_fit_history_and_result(tokenizer, tiny_config, sentences, capsys):
    trainer = make_trainer(tokenizer, tiny_config, sentences, epochs=2, lr=3e-3, eval_every_steps=16, progress=True)
    assert trainer.total_steps == 2 * math.ceil(1000 / 32)
    result = trainer.fit()
    assert result.stop_reason == "finished" and result.steps == trainer.total_steps == trainer.step
    assert result is trainer.result
    h = trainer.history
    assert len(h) == result.steps and h.train["step"] == list(range(1, result.steps + 1))
    assert set(h.train) >= {"step", "epoch", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s"}
    first, last = np.mean(h.train["loss"][:5]), np.mean(h.train["loss"][-5:])
    assert last < first - 0.3                      # it learns
    assert h.valid["step"] == [16, 32, 48, 64] and len(h.valid["loss"]) == 4
    assert all(0 <= a <= 1 for a in h.valid["single_mask_accuracy"])
    assert result.best_val_loss == pytest.approx(min(h.valid["loss"]))
    err = capsys.readouterr().err
    assert "training" in err and "step" in err      # tqdm's bar went to stderr
    m = trainer.evaluate()
    assert m.loss == pytest.approx(h.valid["loss"][-1])
    lm = trainer.to_masked_lm()
    assert np.array_equal(lm.model.flat_parameters, trainer.model.flat_parameters)
    assert "step=64/64" in repr(trainer)
    assert h.as_dict()["train"]["loss"] == h.train["loss"]


def test_plot_history(tokenizer, tiny_config, sentences, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    trainer = make_trainer(tokenizer, tiny_config, sentences, max_steps=8, eval_every_steps=4, out_dir=tmp_path)
    trainer.fit()
    fig = pymlm.plot_history(trainer)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 3         # raw, smoothed, validation
    fig2 = trainer.history.plot(smoothing=0, x="tokens")
    assert len(fig2.axes[0].lines) == 2
    from_log = pymlm.History.from_log(tmp_path)
    assert from_log.train["loss"] == pytest.approx(trainer.history.train["loss"])
    for key in ("step", "loss", "accuracy", "single_mask_accuracy", "single_mask_topk_accuracy", "perplexity"):
        assert from_log.valid[key] == pytest.approx(trainer.history.valid[key]), key
    assert len(pymlm.plot_history(tmp_path / "log.jsonl").axes) == 2
    with pytest.raises(ValueError):
        pymlm.plot_history(trainer, x="nothing")
    with pytest.raises(FileNotFoundError):
        pymlm.History.from_log(tmp_path / "missing")


def test_data_forms(tokenizer, tiny_config, sentences, tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("\n".join(sentences[:300]) + "\n", encoding="utf-8")
    ids = [tokenizer.encode(s) for s in sentences[:300]]
    corpus = pymlm.Corpus.from_sentences(tokenizer, sentences[:300])
    losses = []
    for data in (path, str(path), sentences[:300], ids, corpus):
        t = pymlm.Trainer(tiny_config, tokenizer, data, max_steps=3, batch_size=16, progress=False)
        # no valid_data: 10% of the sentences (at most 2,000) held out for evaluation, as `mlm train` does
        assert len(t.train_data) == 270 and len(t.valid_data) == 30
        losses.append(t.fit().last_loss)
    assert max(losses) == min(losses)          # the same sentences, the same run
    capped = pymlm.Trainer(tiny_config, tokenizer, path, max_sentences=100, max_steps=1, holdout=0, progress=False)
    assert len(capped.train_data) == 100 and capped.valid_data is None
    assert math.isnan(capped.evaluate().loss)  # no held-out data


def test_callbacks_and_stop(tokenizer, tiny_config, sentences):
    seen = []

    class Recorder(pymlm.Callback):
        def __init__(self):
            self.events = []

        def on_train_begin(self, trainer):
            self.events.append("begin")

        def on_step(self, trainer, record):
            self.events.append(("step", record.step))
            return record.step >= 5                 # stop after step 5

        def on_eval(self, trainer, record):
            self.events.append(("eval", record.step))

        def on_train_end(self, trainer, result):
            self.events.append(("end", result.stop_reason))

    rec = Recorder()
    trainer = make_trainer(tokenizer, tiny_config, sentences, eval_every_steps=2,
                           callbacks=[rec, lambda tr, r: seen.append(type(r).__name__)])
    result = trainer.fit()
    assert result.stop_reason == "stopped" and result.steps == 5
    assert rec.events[0] == "begin" and rec.events[-1] == ("end", "stopped")
    assert ("eval", 4) in rec.events and ("step", 5) in rec.events
    assert seen.count("StepRecord") == 5 and seen.count("EvalRecord") == 2
    # records handed to callbacks are copies that outlive the step
    kept = []
    t2 = make_trainer(tokenizer, tiny_config, sentences, max_steps=3, callbacks=[lambda tr, r: kept.append(r)])
    t2.fit()
    steps = [r for r in kept if isinstance(r, pymlm.StepRecord)]
    assert [r.step for r in steps] == [1, 2, 3] and all(r.loss > 0 for r in steps)
    assert isinstance(kept[-1], pymlm.EvalRecord) and kept[-1].metrics.loss > 0


def test_stop_from_another_thread(tokenizer, tiny_config, sentences):
    trainer = make_trainer(tokenizer, tiny_config, sentences, epochs=50)
    started = threading.Event()
    trainer.callbacks.append(lambda tr, r: started.set())

    def stopper():
        started.wait(30)
        trainer.stop()

    t = threading.Thread(target=stopper)
    t.start()
    result = trainer.fit()
    t.join()
    assert result.stop_reason == "stopped" and result.steps < trainer.total_steps


def test_exception_in_callback_propagates_after_checkpoint(tokenizer, tiny_config, sentences, tmp_path):
    def bad(trainer, record):
        if record.step == 3:
            raise ValueError("callback failed")

    trainer = make_trainer(tokenizer, tiny_config, sentences, out_dir=tmp_path, callbacks=[bad])
    with pytest.raises(ValueError, match="callback failed"):
        trainer.fit()
    assert trainer.step == 3
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["step"] == 3


def run_until_interrupted(trainer, interrupt):
    """fit() with `interrupt()` called from the step-2 callback; returns the KeyboardInterrupt."""
    def cb(tr, record):
        if isinstance(record, pymlm.StepRecord) and record.step == 2:
            interrupt()

    trainer.callbacks.append(cb)
    with pytest.raises(KeyboardInterrupt) as info:
        trainer.fit()
    return info


@pytest.mark.parametrize("how", ["interrupt_main", "sigint"])
def test_ctrl_c_stops_cleanly_with_the_checkpoint_intact(tokenizer, tiny_config, sentences, tmp_path, how, capsys):
    trainer = make_trainer(tokenizer, tiny_config, sentences, out_dir=tmp_path, epochs=3, progress=True)
    if how == "interrupt_main":
        interrupt = _thread.interrupt_main
    else:
        def interrupt():  # a real SIGINT, a moment later, while the C++ loop runs without the GIL
            threading.Timer(0.02, os.kill, args=(os.getpid(), signal.SIGINT)).start()
    run_until_interrupted(trainer, interrupt)
    stopped_at = trainer.step
    assert 2 <= stopped_at < trainer.total_steps
    assert "interrupted at step %d" % stopped_at in capsys.readouterr().out
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["step"] == stopped_at
    lm = pymlm.MaskedLM.load(tmp_path)              # the checkpoint is complete and loadable
    assert np.array_equal(lm.model.flat_parameters, trainer.model.flat_parameters)
    # the run resumes from it and ends where an uninterrupted run ends
    resumed = make_trainer(tokenizer, tiny_config, sentences, out_dir=tmp_path, epochs=3)
    resumed.resume()
    assert resumed.step == stopped_at and len(resumed.history) == stopped_at
    final = resumed.fit()
    straight = make_trainer(tokenizer, tiny_config, sentences, epochs=3).fit()
    assert final.steps == straight.steps and final.last_loss == straight.last_loss


def test_fit_releases_the_gil(tokenizer, tiny_config, sentences):
    counts = []
    done = threading.Event()

    def count():
        n = 0
        while not done.is_set():
            n += 1
        counts.append(n)

    trainer = make_trainer(tokenizer, tiny_config, sentences, epochs=2)
    t = threading.Thread(target=count)
    t.start()
    start = time.perf_counter()
    try:
        trainer.fit()
    finally:
        done.set()
        t.join()
    elapsed = time.perf_counter() - start
    assert counts[0] > 100_000 * elapsed, (counts, elapsed)


def test_two_threads_train_the_same(tokenizer, tiny_config, sentences):
    """set_num_threads(2) gives bit-identical training (the engine's promise), via the bindings."""
    if not pymlm.has_openmp:
        pytest.skip("built without OpenMP")
    one = make_trainer(tokenizer, tiny_config, sentences, max_steps=4).fit().last_loss
    pymlm.set_num_threads(2)
    try:
        two = make_trainer(tokenizer, tiny_config, sentences, max_steps=4).fit().last_loss
    finally:
        pymlm.set_num_threads(1)
    assert two == pytest.approx(one, rel=1e-5)


def test_options_and_errors(tokenizer, tiny_config, sentences, tmp_path):
    t = make_trainer(tokenizer, tiny_config, sentences, max_steps=2, mask_prob=0.3, optimizer="adamw",
                     schedule="constant", masking={"mask_probability": 0.3, "whole_word": True},
                     eval={"max_sentences": 50})
    cfg = t.config
    assert cfg.masking.mask_probability == 0.3 and cfg.masking.whole_word and cfg.eval.max_sentences == 50
    assert cfg.optimizer == "adamw" and cfg.schedule == "constant"
    assert t.fit().steps == 2
    base = pymlm.TrainerConfig(epochs=1, batch_size=16, lr=1e-3)
    t2 = pymlm.Trainer(tiny_config, tokenizer, sentences[:100], config=base, seed=3, progress=False)
    assert t2.config.batch_size == 16 and t2.config.seed == 3 and base.seed == 0
    assert "batch_size=16" in repr(base)
    assert pymlm.TrainerConfig.from_json(base.to_json()).lr == 1e-3
    budget = pymlm.TrainerConfig(epochs=0, max_total_time_s=7200.0, schedule="constant")
    assert pymlm.TrainerConfig.from_json(budget.to_json()).max_total_time_s == 7200.0
    with pytest.raises(ValueError, match="max_total_time_s"):
        pymlm.TrainerConfig(max_total_time_s=-1.0)
    with pytest.raises(TypeError, match="unknown option"):
        make_trainer(tokenizer, tiny_config, sentences, epochz=1)
    with pytest.raises(TypeError, match="unknown option"):
        pymlm.TrainerConfig(epochz=1)
    with pytest.raises(ValueError, match="optimizer"):
        make_trainer(tokenizer, tiny_config, sentences, optimizer="sgd")
    with pytest.raises(ValueError, match="grad_accum"):
        make_trainer(tokenizer, tiny_config, sentences, grad_accum=0)
    wrong = pymlm.ModelConfig(vocab_size=999, dim=32, n_heads=4, n_layers=1)
    with pytest.raises(ValueError, match="vocab_size"):
        make_trainer(tokenizer, wrong, sentences)
    with pytest.raises(TypeError, match="tokenizer"):
        pymlm.Trainer(tiny_config, None, sentences)
    with pytest.raises(FileNotFoundError):
        pymlm.Trainer(tiny_config, tokenizer, tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="more than max_len"):
        pymlm.Trainer(tiny_config, tokenizer, [list(range(3, 200))], progress=False)
    with pytest.raises(TypeError):
        pymlm.Trainer(tiny_config, tokenizer, [["a"], [1, 2]])
    # a directory that holds a run is not overwritten by accident
    make_trainer(tokenizer, tiny_config, sentences, out_dir=tmp_path, max_steps=1).fit()
    with pytest.raises(ValueError, match="already holds"):
        make_trainer(tokenizer, tiny_config, sentences, out_dir=tmp_path, max_steps=1).fit()
    make_trainer(tokenizer, tiny_config, sentences, out_dir=tmp_path, max_steps=1, overwrite=True).fit()


def test_start_from_a_model_or_masked_lm(tokenizer, tiny_config, sentences, lm):
    trainer = pymlm.Trainer(lm, None, sentences[:200], max_steps=1, progress=False)
    assert np.array_equal(trainer.model.flat_parameters, lm.model.flat_parameters)
    trainer.fit()
    assert not np.array_equal(trainer.model.flat_parameters, lm.model.flat_parameters)   # lm untouched
    model = pymlm.Model(tiny_config, seed=9)
    t2 = pymlm.Trainer(model, tokenizer, sentences[:200], max_steps=1, progress=False)
    assert np.array_equal(t2.model.flat_parameters, model.flat_parameters)


def test_the_model_in_training_is_guarded(tokenizer, tiny_config, sentences):
    """While fit() runs, a second fit() and forward/backward on the trained model raise instead of
    racing with the C++ loop; trainer.to_masked_lm() gives a usable copy."""
    errors = []
    copies = []

    def probe(trainer, record):
        if isinstance(record, pymlm.StepRecord) and record.step == 2:
            for call in (lambda: trainer.model.forward([[5, 6, 7]]), trainer.model.zero_grad, trainer.fit):
                try:
                    call()
                except RuntimeError as e:
                    errors.append(str(e))
            copies.append(trainer.to_masked_lm().fill_mask("the [MASK] of", top_k=1))

    trainer = make_trainer(tokenizer, tiny_config, sentences, max_steps=3, callbacks=[probe])
    trainer.fit()
    assert len(errors) == 3 and "being trained" in errors[0] and "already" in errors[2]
    assert len(copies) == 1 and len(copies[0]) == 1
    assert trainer.model.forward([[5, 6, 7]]).logits.shape == (1, 3, 1000)   # fine afterwards


def test_recipes(tokenizer, tiny_config, sentences):
    model, cfg = pymlm.apply_recipe("best", tiny_config, pymlm.TrainerConfig(epochs=2, seed=5))
    assert model.norm_placement == "pre" and model.dropout == 0.0 and model.dim == tiny_config.dim
    assert cfg.optimizer == "adamw" and cfg.schedule == "warmup_cosine" and cfg.lr == 1e-3
    assert cfg.batch_tokens == 4096 and cfg.clip_grad_norm == 1.0 and cfg.decay_weights_only
    assert cfg.masking.mask_probability == 0.3
    assert cfg.epochs == 2 and cfg.seed == 5                     # not a recipe knob: kept
    assert tiny_config.norm_placement == "reference"              # the arguments are not changed
    model0, cfg0 = pymlm.apply_recipe("original", model, cfg)
    assert model0.norm_placement == "reference" and model0.dropout == pytest.approx(0.1)
    assert cfg0.optimizer == "adam" and cfg0.schedule == "one_cycle" and cfg0.batch_tokens == 0
    with pytest.raises(ValueError, match="recipe"):
        pymlm.apply_recipe("fastest", tiny_config, cfg)

    # a recipe given to the Trainer sets the model's knobs too; options override it
    t = pymlm.Trainer(tiny_config, tokenizer, sentences[:100], recipe="best", lr=2e-3, dropout=0.05,
                      max_steps=1, progress=False)
    assert t.config.optimizer == "adamw" and t.config.lr == 2e-3 and t.config.max_steps == 1
    assert t.model_config.norm_placement == "pre" and t.model_config.dropout == pytest.approx(0.05)
    assert t.fit().steps == 1
    # without one: the default recipe for the trainer, the ModelConfig as given
    pre = pymlm.ModelConfig.from_json(tiny_config.to_json())
    pre.norm_placement = "pre"
    t = pymlm.Trainer(pre, tokenizer, sentences[:100], max_steps=1, progress=False)
    _, expected = pymlm.apply_recipe(pymlm.DEFAULT_RECIPE, pre, pymlm.TrainerConfig(max_steps=1))
    assert t.config.optimizer == expected.optimizer and t.config.schedule == expected.schedule
    assert t.model_config.norm_placement == "pre"
    # a config given without a recipe is used as given
    own = pymlm.TrainerConfig(epochs=1, optimizer="adamw", schedule="constant")
    t = pymlm.Trainer(tiny_config, tokenizer, sentences[:100], config=own, progress=False)
    assert t.config.optimizer == "adamw" and t.config.schedule == "constant"
    with pytest.raises(TypeError, match="weights"):
        pymlm.Trainer(pymlm.Model(tiny_config), tokenizer, sentences[:100], dropout=0.2, progress=False)
    with pytest.raises(TypeError, match="recipe"):
        pymlm.Trainer(tiny_config, tokenizer, sentences[:100], recipe=1, progress=False)


def test_batch_size_turns_off_a_recipes_token_budget(tokenizer, tiny_config, sentences):
    t = pymlm.Trainer(tiny_config, tokenizer, sentences[:100], recipe="best", batch_size=16, max_steps=1,
                      progress=False)
    assert t.config.batch_size == 16 and t.config.batch_tokens == 0
    assert t.config.optimizer == "adamw"                           # the recipe's other knobs stay
    t = pymlm.Trainer(tiny_config, tokenizer, sentences[:100], recipe="best", batch_tokens=512, max_steps=1,
                      progress=False)
    assert t.config.batch_tokens == 512
    with pytest.raises(ValueError, match="batch_tokens"):
        pymlm.Trainer(tiny_config, tokenizer, sentences[:100], recipe="best", batch_size=16, batch_tokens=512,
                      max_steps=1, progress=False)
