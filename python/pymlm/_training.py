"""pymlm.Trainer: the C++ training loop (TrainerCore) with data conversion, a tqdm progress bar,
callbacks, a history for plotting, and clean Ctrl-C handling."""
from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

from ._core import (
    Corpus,
    EvalMetrics,
    EvalOptions,
    EvalRecord,
    MaskedLM,
    MaskingOptions,
    Model,
    ModelConfig,
    StepRecord,
    Tokenizer,
    TrainerConfig,
    TrainerCore,
    TrainResult,
    apply_recipe,
)

__all__ = ["Trainer", "Callback", "History", "plot_history", "DEFAULT_RECIPE"]

#: The recipe of a Trainer made without ``recipe`` or ``config``: the same as ``mlm train``'s.
DEFAULT_RECIPE = "best"
_MODEL_OPTIONS = ("dropout", "norm_placement")

PathLike = Union[str, "os.PathLike[str]"]
Data = Union[Corpus, PathLike, Sequence[str], Sequence[Sequence[int]]]

_TRAIN_KEYS = ("step", "epoch", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s")
_VALID_KEYS = (
    "step",
    "epoch",
    "tokens",
    "loss",
    "accuracy",
    "perplexity",
    "single_mask_accuracy",
    "single_mask_topk_accuracy",
    "single_mask_loss",
    "elapsed_s",
)


class History:
    """Losses and metrics of a training run, as lists ready for matplotlib.

    ``history.train`` maps ``step, epoch, tokens, loss, lr, grad_norm, tokens_per_s, elapsed_s``
    to one list entry per optimizer step; ``history.valid`` maps ``step, epoch, tokens, loss,
    accuracy, perplexity, single_mask_accuracy, single_mask_topk_accuracy, single_mask_loss,
    elapsed_s`` to one entry per evaluation.

        plt.plot(history.train["step"], history.train["loss"])
        history.plot()                     # or pymlm.plot_history(history)
    """

    def __init__(self) -> None:
        self.train: Dict[str, List[float]] = {k: [] for k in _TRAIN_KEYS}
        self.valid: Dict[str, List[float]] = {k: [] for k in _VALID_KEYS}

    def add_step(self, record: StepRecord) -> None:
        """Appends one optimizer step."""
        for k in _TRAIN_KEYS:
            self.train[k].append(getattr(record, k))

    def add_eval(self, record: EvalRecord) -> None:
        """Appends one evaluation."""
        values = record.as_dict()
        for k in _VALID_KEYS:
            self.valid[k].append(values[k])

    @classmethod
    def from_log(cls, path: PathLike) -> "History":
        """Reads a run's ``log.jsonl`` (a Trainer's out_dir, or the file itself): the history of a
        run made by the ``mlm`` command line or an earlier session."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "log.jsonl")
        if not os.path.exists(path):
            raise FileNotFoundError(2, "training log does not exist", path)
        h = cls()
        nan = float("nan")
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line
                if "loss" in rec:
                    for k in _TRAIN_KEYS:
                        v = rec.get(k)
                        h.train[k].append(nan if v is None else v)
                if "val_loss" in rec:
                    for key in list(rec):  # the log names the top-k accuracy by its k: val_single_mask_top5_accuracy
                        if key.startswith("val_single_mask_top") and key.endswith("_accuracy"):
                            rec.setdefault("val_single_mask_topk_accuracy", rec[key])
                    for k in _VALID_KEYS:
                        v = rec.get(k) if k in ("step", "epoch", "tokens", "elapsed_s") else rec.get("val_" + k)
                        if k == "perplexity" and v is None and rec.get("val_loss") is not None:
                            v = math.exp(rec["val_loss"])
                        h.valid[k].append(nan if v is None else v)
        return h

    def __len__(self) -> int:
        return len(self.train["step"])

    def as_dict(self) -> Dict[str, Dict[str, List[float]]]:
        """``{"train": {...}, "valid": {...}}`` (copies of the lists)."""
        return {
            "train": {k: list(v) for k, v in self.train.items()},
            "valid": {k: list(v) for k, v in self.valid.items()},
        }

    def plot(self, **kwargs: Any) -> Any:
        """:func:`plot_history` of this history."""
        return plot_history(self, **kwargs)

    def __repr__(self) -> str:
        last = self.train["loss"][-1] if self.train["loss"] else float("nan")
        return "History(%d steps, %d evaluations, last loss %.4f)" % (len(self), len(self.valid["step"]), last)


def _smooth(values: Sequence[float], weight: float) -> List[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing)."""
    out, avg, norm = [], 0.0, 0.0
    for v in values:
        if v != v:  # NaN: skipped step
            out.append(float("nan"))
            continue
        avg = weight * avg + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(avg / norm)
    return out


def plot_history(
    history: Union[History, "Trainer", PathLike],
    *,
    smoothing: float = 0.9,
    x: str = "step",
    figsize: Optional[Sequence[float]] = None,
    title: Optional[str] = None,
) -> Any:
    """Plots a run with matplotlib: training loss (raw and smoothed) and validation loss against
    ``x`` ("step", "epoch", "tokens" or "elapsed_s"), and, when there were evaluations, the
    validation accuracies (masked-token and single-mask) in a second panel.

    history: a History, a Trainer, or a run directory / log.jsonl path.
    smoothing: EMA weight of the smoothed training curve (0: none).
    Returns the matplotlib Figure (it shows inline in a notebook).
    """
    import matplotlib.pyplot as plt

    if isinstance(history, Trainer):
        history = history.history
    elif not isinstance(history, History):
        history = History.from_log(history)
    if x not in _TRAIN_KEYS or x not in _VALID_KEYS:
        raise ValueError('x must be "step", "epoch", "tokens" or "elapsed_s", got %r' % (x,))
    has_valid = bool(history.valid["step"])
    ncols = 2 if has_valid else 1
    fig, axes = plt.subplots(1, ncols, figsize=figsize or (6.0 * ncols, 4.0), squeeze=False)
    ax = axes[0][0]
    tx, loss = history.train[x], history.train["loss"]
    if loss:
        ax.plot(tx, loss, color="tab:blue", alpha=0.25 if smoothing > 0 else 1.0, linewidth=0.8,
                label="train (per step)" if smoothing > 0 else "train")
        if smoothing > 0:
            ax.plot(tx, _smooth(loss, smoothing), color="tab:blue", linewidth=1.5, label="train (smoothed)")
    if has_valid:
        ax.plot(history.valid[x], history.valid["loss"], "o-", color="tab:orange", label="validation")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel("MLM loss (nats per masked token)")
    ax.set_title(title or "loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    if has_valid:
        ax2 = axes[0][1]
        vx = history.valid[x]
        ax2.plot(vx, history.valid["accuracy"], "o-", label="masked-token accuracy")
        ax2.plot(vx, history.valid["single_mask_accuracy"], "s-", label="single-mask accuracy")
        ax2.plot(vx, history.valid["single_mask_topk_accuracy"], "^--", label="single-mask top-k accuracy")
        ax2.set_xlabel(x.replace("_", " "))
        ax2.set_ylabel("accuracy")
        ax2.set_ylim(bottom=0)
        ax2.set_title("validation accuracy")
        ax2.grid(True, alpha=0.3)
        ax2.legend()
    fig.tight_layout()
    return fig


class Callback:
    """Base class of training callbacks; override what you need. Returning True from on_step or
    on_eval stops training after the current step (the checkpoint is written as usual).

    A plain function ``f(trainer, record)`` works too: it is called after every step (with a
    StepRecord) and every evaluation (with an EvalRecord).
    """

    def on_train_begin(self, trainer: "Trainer") -> None:
        """Called when fit() starts."""

    def on_step(self, trainer: "Trainer", record: StepRecord) -> Optional[bool]:
        """Called after every optimizer step."""
        return None

    def on_eval(self, trainer: "Trainer", record: EvalRecord) -> Optional[bool]:
        """Called after every evaluation on the held-out data."""
        return None

    def on_train_end(self, trainer: "Trainer", result: Optional[TrainResult]) -> None:
        """Called when fit() ends (result is None when it ended with an exception)."""


def _tqdm():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm.auto warns when ipywidgets is missing, then falls back
        from tqdm.auto import tqdm
    return tqdm


class Trainer:
    """Masked-language-model pre-training with a recipe (``DEFAULT_RECIPE`` unless told),
    running in C++ without the GIL.

        trainer = pymlm.Trainer(pymlm.ModelConfig(vocab_size=tok.vocab_size, dim=128, n_layers=2),
                                tok, "data/wiki-train-30k.txt.xz", "data/wiki-valid-2k.txt",
                                epochs=1, batch_size=64, out_dir="runs/small")
        trainer.fit()                      # tqdm progress bar; Ctrl-C stops cleanly
        trainer.history.plot()
        lm = trainer.to_masked_lm()

    model: a ModelConfig (a new model, initialised from ``seed``), a Model (start from its
        weights) or a MaskedLM (its weights and, by default, its tokenizer).
    tokenizer: the Tokenizer; its vocab size and special ids must match the model config.
    train_data, valid_data: a Corpus, a text file path (plain, .gz, .xz; tokenized with
        max_length = the model's max_len), a list of sentences, or a list of id sequences.
        valid_data is optional (no evaluation without it).
    recipe: "original" (the notebook's: reference block order, dropout 0.1, Adam, one-cycle LR
        peaking at 6e-4, batches of 128 sentences, 15% masking) or "best" (the project's: pre-norm,
        no dropout, AdamW, warm-up and cosine decay from 1e-3, clipping, batches of 4,096 tokens,
        30% masking);
        see pymlm.apply_recipe and docs/quality.md. A recipe given here sets its knobs in the
        TrainerConfig and in the ModelConfig (block order, dropout). Without it, a Trainer made
        without ``config`` trains with DEFAULT_RECIPE, and a ModelConfig you pass is used as given.
    config: a TrainerConfig to start from (then no recipe applies unless ``recipe`` is given);
        keyword ``options`` set its fields by name (epochs, max_steps, batch_size, lr, schedule,
        seed, out_dir, eval_every_steps, ...; see TrainerConfig), over the recipe's;
        ``batch_size`` without ``batch_tokens`` means batches of that many sentences (it sets
        batch_tokens to 0).
        ``mask_prob`` sets masking.mask_probability; ``masking`` and ``eval`` accept
        MaskingOptions / EvalOptions or dicts; ``dropout`` and ``norm_placement`` set those
        ModelConfig knobs (when the model is a ModelConfig).
    callbacks: Callback objects or functions ``f(trainer, record)``.
    progress: show a tqdm progress bar (tqdm.auto: a widget in notebooks with ipywidgets, text
        otherwise). The C++ progress printer is turned off.
    max_sentences: read at most this many lines of a text-file train_data (0: all).

    The schedule's length is fixed at construction. After a stop (a callback, stop(), Ctrl-C),
    fit() continues the run; a new Trainer with resume() continues a checkpointed one.
    """

    def __init__(
        self,
        model: Union[ModelConfig, Model, MaskedLM, None] = None,
        tokenizer: Optional[Tokenizer] = None,
        train_data: Optional[Data] = None,
        valid_data: Optional[Data] = None,
        *,
        recipe: Optional[str] = None,
        config: Optional[TrainerConfig] = None,
        callbacks: Iterable[Union[Callback, Callable[..., Any]]] = (),
        progress: bool = True,
        max_sentences: int = 0,
        **options: Any,
    ) -> None:
        if isinstance(model, MaskedLM):
            if tokenizer is None:
                tokenizer = model.tokenizer
            model = model.model
        if tokenizer is None:
            raise TypeError("Trainer needs a tokenizer (or a MaskedLM, which brings its own)")
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError("tokenizer must be a pymlm.Tokenizer, got %s" % type(tokenizer).__name__)
        model_given = model is not None
        if model is None:
            model = ModelConfig(vocab_size=tokenizer.vocab_size)
        if not isinstance(model, (ModelConfig, Model)):
            raise TypeError("model must be a ModelConfig, Model or MaskedLM, got %s" % type(model).__name__)
        if train_data is None:
            raise TypeError("Trainer needs train_data (a Corpus, a text file, or a list of sentences)")
        if recipe is not None and not isinstance(recipe, str):
            raise TypeError("recipe must be \"original\" or \"best\", got %s" % type(recipe).__name__)

        cfg = TrainerConfig() if config is None else TrainerConfig.from_json(config.to_json())
        chosen = recipe if recipe is not None else (DEFAULT_RECIPE if config is None else None)
        if chosen is not None:
            base = model if isinstance(model, ModelConfig) else ModelConfig(vocab_size=tokenizer.vocab_size)
            recipe_model, cfg = apply_recipe(chosen, base, cfg)
            if isinstance(model, ModelConfig) and (recipe is not None or not model_given):
                model = recipe_model
        model_options = {name: options.pop(name) for name in _MODEL_OPTIONS if name in options}
        if model_options:
            if not isinstance(model, ModelConfig):
                raise TypeError(
                    "%s: the model's own settings are fixed by its weights; give a ModelConfig to set them"
                    % ", ".join(sorted(model_options))
                )
            model = ModelConfig.from_json(model.to_json())
            for name, value in model_options.items():
                setattr(model, name, value)
            model.validate()
        if "mask_prob" in options:
            cfg.masking.mask_probability = float(options.pop("mask_prob"))
        for name, value in options.items():
            if name not in TrainerConfig.field_names():
                raise TypeError("Trainer got an unknown option %r (see pymlm.TrainerConfig.field_names())" % name)
            if name == "masking" and isinstance(value, dict):
                value = MaskingOptions(**value)
            elif name == "eval" and isinstance(value, dict):
                value = EvalOptions(**value)
            elif name == "out_dir" and value is not None:
                value = os.fspath(value)
            elif name == "out_dir":
                value = ""
            setattr(cfg, name, value)
        # batch_size asks for batches of that many sentences: it turns off a recipe's token budget
        if "batch_size" in options:
            if "batch_tokens" not in options:
                cfg.batch_tokens = 0
            elif cfg.batch_tokens > 0:
                raise ValueError(
                    "batch_size=%d and batch_tokens=%d: give one (token-budget batches ignore batch_size; "
                    "cap their sentences with max_batch_sequences)" % (cfg.batch_size, cfg.batch_tokens)
                )
        cfg.progress = "none"  # tqdm instead
        cfg.validate()

        model_config = model if isinstance(model, ModelConfig) else model.config
        self.tokenizer: Tokenizer = tokenizer
        self.core = TrainerCore(model, tokenizer, cfg)
        train_corpus = _as_corpus(train_data, tokenizer, model_config.max_len, max_sentences, "train_data")
        valid_corpus = _as_corpus(valid_data, tokenizer, model_config.max_len, 0, "valid_data")
        self.train_data: Corpus = train_corpus
        self.valid_data: Optional[Corpus] = valid_corpus
        self.core.set_data(train_corpus, valid_corpus)
        self.callbacks: List[Union[Callback, Callable[..., Any]]] = list(callbacks)
        self.progress = progress
        self.history = History()
        self.result: Optional[TrainResult] = None
        self._bar: Any = None
        self._loss_ema: Optional[float] = None
        self._running = False

    # ---- the run ---------------------------------------------------------------------------

    def fit(self, *, progress: Optional[bool] = None) -> TrainResult:
        """Trains until the configured target (epochs / max_steps / max_tokens / max_time_s /
        max_total_time_s), a callback's stop or Ctrl-C. Shows a progress bar, records every step
        and evaluation in ``history``, writes checkpoints into out_dir (if set).

        Ctrl-C (KeyboardInterrupt) stops after the current step: the checkpoint is written, then
        the KeyboardInterrupt is raised again. The GIL is released while the C++ loop runs.
        A non-finite loss or gradient that stops the run (on_non_finite="stop", or too many
        skips) returns stop_reason "non_finite" with a RuntimeWarning, and writes no checkpoint.
        Returns the TrainResult (also kept in ``self.result``).
        """
        if self._running:
            raise RuntimeError("Trainer.fit: this trainer is already training")
        show = self.progress if progress is None else progress
        self._bar = None
        self._loss_ema = None
        if show:
            total = self.core.total_steps or None
            self._bar = _tqdm()(
                total=total,
                initial=self.core.step,
                desc="training",
                unit="step",
                mininterval=0.5,
                dynamic_ncols=True,
            )
        for cb in self.callbacks:
            if isinstance(cb, Callback):
                cb.on_train_begin(self)
        result: Optional[TrainResult] = None
        self._running = True
        try:
            result = self.core.train(on_step=self._on_step, on_eval=self._on_eval)
        except KeyboardInterrupt:
            self._close_bar()
            out_dir = self.core.config.out_dir
            where = " (checkpoint in %s)" % out_dir if out_dir else ""
            print("training interrupted at step %d%s" % (self.core.step, where))
            raise
        finally:
            self._running = False
            self._close_bar()
            for cb in self.callbacks:
                if isinstance(cb, Callback):
                    cb.on_train_end(self, result)
        self.result = result
        if result.stop_reason == "non_finite":
            # The C++ loop's own message goes to its progress printer, which is off here.
            out_dir = self.core.config.out_dir
            if not out_dir:
                saved = ""
            elif result.checkpoint_step >= 0:
                saved = "; the checkpoint in %s stays the one of step %d, written before" % (out_dir, result.checkpoint_step)
            else:
                saved = "; no checkpoint was written before"
            warnings.warn(
                "training stopped at step %d: the loss or the gradient became non-finite (steps not applied: %d)%s"
                % (result.steps, result.skipped_steps, saved),
                RuntimeWarning,
                stacklevel=2,
            )
        return result

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _on_step(self, record: StepRecord) -> bool:
        self.history.add_step(record)
        if self._bar is not None and not record.skipped:
            a = 0.95
            self._loss_ema = record.loss if self._loss_ema is None else a * self._loss_ema + (1 - a) * record.loss
            self._bar.update(record.step - self._bar.n)
            self._bar.set_postfix(
                loss="%.4f" % self._loss_ema, lr="%.2e" % record.lr, tok_s="%.0f" % record.tokens_per_s, refresh=False
            )
        stop = False
        for cb in self.callbacks:
            if isinstance(cb, Callback):
                stop = bool(cb.on_step(self, record)) or stop
            else:
                stop = bool(cb(self, record)) or stop
        return stop

    def _on_eval(self, record: EvalRecord) -> bool:
        self.history.add_eval(record)
        m = record.metrics
        if self._bar is not None:
            self._bar.write(
                "eval step %d (epoch %.2f): loss %.4f accuracy %.4f single-mask accuracy %.4f%s"
                % (record.step, record.epoch, m.loss, m.accuracy, m.single_mask_accuracy, " (best)" if record.best else "")
            )
        stop = False
        for cb in self.callbacks:
            if isinstance(cb, Callback):
                stop = bool(cb.on_eval(self, record)) or stop
            else:
                stop = bool(cb(self, record)) or stop
        return stop

    def stop(self) -> None:
        """Asks a running fit() to stop after the current step (safe from any thread)."""
        self.core.request_stop()

    def evaluate(self) -> EvalMetrics:
        """Metrics of the current model on valid_data (MLM loss and accuracy, single-mask accuracy).
        Releases the GIL."""
        return self.core.evaluate()

    def resume(self, dir: Optional[PathLike] = None) -> None:
        """Continues the run checkpointed in dir (default out_dir) with the same data and recipe:
        weights, Adam state, step and data position, and the history from its log.jsonl."""
        self.core.resume(None if dir is None else os.fspath(dir))
        run_dir = os.fspath(dir) if dir is not None else self.core.config.out_dir
        log = os.path.join(run_dir, "log.jsonl")
        self.history = History.from_log(log) if os.path.exists(log) else History()

    def save(self, dir: Optional[PathLike] = None) -> None:
        """Writes a full checkpoint (model, tokenizer, trainer state) into dir (default out_dir)."""
        self.core.save_checkpoint(None if dir is None else os.fspath(dir))

    def to_masked_lm(self) -> MaskedLM:
        """A MaskedLM with a copy of the current weights and the tokenizer."""
        return self.core.to_masked_lm()

    def plot(self, **kwargs: Any) -> Any:
        """plot_history(self.history)."""
        return plot_history(self.history, **kwargs)

    # ---- state -----------------------------------------------------------------------------

    @property
    def model(self) -> Model:
        """The Model being trained (not a copy)."""
        return self.core.model

    @property
    def config(self) -> TrainerConfig:
        """The TrainerConfig (a copy)."""
        return self.core.config

    @property
    def model_config(self) -> ModelConfig:
        """The ModelConfig (a copy)."""
        return self.core.model_config

    @property
    def step(self) -> int:
        """Optimizer steps done."""
        return self.core.step

    @property
    def epoch(self) -> float:
        """Fractional epoch of the next step."""
        return self.core.epoch

    @property
    def total_steps(self) -> int:
        """The schedule's length in optimizer steps."""
        return self.core.total_steps

    def __repr__(self) -> str:
        return "Trainer(step=%d/%d, %d training sentences, %d held-out, out_dir=%r)" % (
            self.core.step,
            self.core.total_steps,
            len(self.train_data),
            len(self.valid_data) if self.valid_data is not None else 0,
            self.core.config.out_dir,
        )


def _as_corpus(data: Optional[Data], tokenizer: Tokenizer, max_len: int, max_sentences: int, what: str) -> Optional[Corpus]:
    """A Corpus from what Trainer accepts."""
    if data is None:
        return None
    if isinstance(data, Corpus):
        return data
    if isinstance(data, (str, os.PathLike)):
        return Corpus.from_file(tokenizer, data, max_length=max_len, max_sentences=max_sentences)
    if isinstance(data, (bytes, bytearray)):
        raise TypeError("%s: expected a Corpus, a file path or a list of sentences, got bytes" % what)
    items = list(data)
    if not items:
        raise ValueError("%s is empty" % what)
    if all(isinstance(s, str) for s in items):
        return Corpus.from_sentences(tokenizer, items, max_length=max_len)
    if any(isinstance(s, str) for s in items):
        raise TypeError("%s mixes sentences (str) and other items" % what)
    return Corpus(items, tokenizer.vocab_size)
