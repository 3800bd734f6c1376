"""pymlm.Trainer: the C++ training loop (TrainerCore) with data conversion, a tqdm progress bar,
callbacks, a history for plotting, and clean Ctrl-C handling."""
from __future__ import annotations

import errno
import json
import math
import os
import warnings
import weakref
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
    DataOptions,
    apply_recipe,
    assemble_run,
    non_finite_stop_message,
)
from ._core import DEFAULT_RECIPE

__all__ = ["Trainer", "Callback", "History", "plot_history", "DEFAULT_RECIPE"]

_MODEL_FIELDS = frozenset(ModelConfig.field_names())
_TRAINER_FIELDS = frozenset(TrainerConfig.field_names())
_DATA_OPTIONS = frozenset(("holdout", "cache", "cache_dir"))  # the files come from train_data / valid_data

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
    running in C++ without the GIL. The run is assembled by the same C++ function as
    ``mlm train`` (``pymlm.assemble_run``): the same arguments train the same model.

        trainer = pymlm.Trainer(tokenizer=tok, train_data="data/wiki-train-30k.txt.xz",
                                valid_data="data/wiki-valid-2k.txt", dim=128, n_layers=2,
                                epochs=1, out_dir="runs/small")
        trainer.fit()                      # tqdm progress bar; Ctrl-C stops cleanly
        trainer.history.plot()
        lm = trainer.to_masked_lm()

    model: None (the reference model, with the recipe's block order and dropout), a ModelConfig
        (a new model, initialised from ``seed``, used as it is unless ``recipe`` is named), a
        Model (start from its weights) or a MaskedLM (its weights and, by default, its tokenizer).
    tokenizer: the Tokenizer; its vocab size and special ids must match the model config.
    train_data, valid_data: a Corpus, a text file path (plain, .gz, .xz; tokenized with
        max_length = the model's max_len), a list of sentences, or a list of id sequences.
        Without valid_data, ``holdout`` (2,000, at most 10%) training sentences are held out for
        evaluation, as ``mlm train`` does; ``holdout=0`` turns evaluation off.
    recipe: "original" (the notebook's: reference block order, dropout 0.1, Adam, one-cycle LR
        peaking at 6e-4, batches of 128 sentences, 15% masking) or "best" (the project's: pre-norm,
        no dropout, AdamW, warm-up and cosine decay from 1e-3, clipping, batches of 4,096 tokens,
        30% masking); see pymlm.apply_recipe and docs/quality.md. A recipe named here also sets
        its knobs in a ModelConfig you pass. Without it, a Trainer made without ``config`` trains
        with DEFAULT_RECIPE.
    config: a TrainerConfig to start from (then no recipe applies unless ``recipe`` is given).
    options: single knobs by field name, over the recipe's and the configs': any field of
        TrainerConfig (epochs, max_steps, batch_size, lr, schedule, seed, out_dir, ...), of
        ModelConfig (dim, n_heads, n_layers, dropout, norm_placement, ...) and of DataOptions
        (holdout, cache, cache_dir); ``mask_prob`` sets masking.mask_probability; ``masking`` and
        ``eval`` accept MaskingOptions / EvalOptions or dicts. ``batch_size`` without
        ``batch_tokens`` means batches of that many sentences (it turns a token budget off).
    callbacks: Callback objects or functions ``f(trainer, record)``.
    progress: show a tqdm progress bar (tqdm.auto: a widget in notebooks with ipywidgets, text
        otherwise).
    max_sentences: read at most this many lines of a text-file train_data (0: all).

    What the C++ side has to say (a held-out split, a ModelConfig kept over the recipe's, a
    skipped non-finite step) is printed; warnings come as RuntimeWarning.

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
        weights: Optional[Model] = None
        if isinstance(model, MaskedLM):
            if tokenizer is None:
                tokenizer = model.tokenizer
            model = model.model
        if isinstance(model, Model):
            weights, model = model, None
        if tokenizer is None:
            raise TypeError("Trainer needs a tokenizer (or a MaskedLM, which brings its own)")
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError("tokenizer must be a pymlm.Tokenizer, got %s" % type(tokenizer).__name__)
        if model is not None and not isinstance(model, ModelConfig):
            raise TypeError("model must be a ModelConfig, Model or MaskedLM, got %s" % type(model).__name__)
        if train_data is None:
            raise TypeError("Trainer needs train_data (a Corpus, a text file, or a list of sentences)")
        if recipe is not None and not isinstance(recipe, str):
            raise TypeError("recipe must be \"original\" or \"best\", got %s" % type(recipe).__name__)
        if config is not None and not isinstance(config, TrainerConfig):
            raise TypeError("config must be a TrainerConfig, got %s" % type(config).__name__)

        model_options: Dict[str, Any] = {}
        trainer_options: Dict[str, Any] = {}
        data_options: Dict[str, Any] = {}
        if "mask_prob" in options:
            trainer_options["masking.mask_probability"] = float(options.pop("mask_prob"))
        for name, value in options.items():
            if name in _MODEL_FIELDS:
                model_options[name] = value
            elif name in _TRAINER_FIELDS:
                if name == "out_dir":
                    value = "" if value is None else os.fspath(value)
                trainer_options[name] = value
            elif name in _DATA_OPTIONS:
                data_options[name] = value
            else:
                raise TypeError("Trainer got an unknown option %r (see pymlm.TrainerConfig.field_names(), "
                                "ModelConfig.field_names() and DataOptions)" % name)
        if model_options and weights is not None:
            raise TypeError("%s: the model's own settings are fixed by its weights; give a ModelConfig to set them"
                            % ", ".join(sorted(model_options)))

        max_len = (weights.config if weights is not None else model or ModelConfig()).max_len
        if "max_len" in model_options:
            max_len = model_options["max_len"]
        train_corpus = _as_corpus(train_data, tokenizer, max_len, "train_data")
        valid_corpus = _as_corpus(valid_data, tokenizer, max_len, "valid_data")
        for data in (train_data, valid_data):
            if isinstance(data, (str, os.PathLike)) and not os.path.exists(data):
                raise FileNotFoundError(errno.ENOENT, "no such data file", os.fspath(data))
        if train_corpus is None:
            data_options["train"] = [os.fspath(train_data)]
            data_options["max_sentences"] = max_sentences
        if valid_corpus is None and valid_data is not None:
            data_options["valid"] = os.fspath(valid_data)

        self.tokenizer: Tokenizer = tokenizer
        self.callbacks: List[Union[Callback, Callable[..., Any]]] = list(callbacks)
        self.progress = progress
        self.history = History()
        self.result: Optional[TrainResult] = None
        self._bar: Any = None
        self._running = False
        self.core = assemble_run(
            recipe=recipe,
            model=model,
            trainer=config,
            weights=weights,
            model_options=model_options,
            trainer_options=trainer_options,
            data_options=data_options,
            tokenizer=tokenizer,
            train=train_corpus,
            valid=valid_corpus,
            on_notice=_notice_printer(weakref.ref(self)),
        )
        self.train_data: Corpus = self.core.train_data
        self.valid_data: Optional[Corpus] = self.core.valid_data if len(self.core.valid_data) else None

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
            warnings.warn(non_finite_stop_message(result, self.core.config.out_dir), RuntimeWarning, stacklevel=2)
        return result

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _on_step(self, record: StepRecord) -> bool:
        self.history.add_step(record)
        if self._bar is not None:
            self._bar.update(record.step - self._bar.n)
            self._bar.set_postfix(
                loss="%.4f" % record.loss_smoothed,
                lr="%.2e" % record.lr,
                tok_s="%.0f" % record.tokens_per_s_smoothed,
                refresh=False,
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


def _notice_printer(trainer_ref: "weakref.ReferenceType[Trainer]") -> Callable[[str, str], None]:
    """What the C++ side tells: warnings as RuntimeWarning, the rest printed (above the progress
    bar when there is one). Holds the Trainer weakly: the C++ trainer keeps this callback."""

    def notice(kind: str, text: str) -> None:
        if kind == "warning":
            warnings.warn(text, RuntimeWarning, stacklevel=2)
            return
        trainer = trainer_ref()
        bar = trainer._bar if trainer is not None else None
        if bar is not None:
            bar.write(text)
        else:
            print(text)

    return notice


def _as_corpus(data: Optional[Data], tokenizer: Tokenizer, max_len: int, what: str) -> Optional[Corpus]:
    """A Corpus from what Trainer accepts; None for None and for a file path (read by the C++ run
    assembly, with its cache)."""
    if data is None:
        return None
    if isinstance(data, Corpus):
        return data
    if isinstance(data, (str, os.PathLike)):
        return None
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
