"""pymlm: masked-language-model pre-training of small BERT-like encoders on CPUs.

The engine is the C++ library ``mlm``; this package binds it (``pymlm._core``, built by CMake
during ``pip install .``) and adds Python conveniences on top. The original notebook's workflow:

    >>> import pymlm
    >>> tok = pymlm.Tokenizer.train("data/wiki-train-30k.txt.xz", vocab_size=4096)   # doctest: +SKIP
    >>> config = pymlm.ModelConfig(vocab_size=tok.vocab_size, dim=128, n_heads=4, n_layers=2)
    >>> trainer = pymlm.Trainer(config, tok, "data/wiki-train-30k.txt.xz",              # doctest: +SKIP
    ...                         "data/wiki-valid-2k.txt", epochs=1, out_dir="runs/small")
    >>> trainer.fit()                                                                 # doctest: +SKIP
    >>> lm = trainer.to_masked_lm()                  # or pymlm.MaskedLM.load("runs/small")  # doctest: +SKIP
    >>> pymlm.predict_mask("hello! how are you?", lm)                                 # doctest: +SKIP
    masked: you predicted: you
    ACTUAL: hello! how are you?
    MASKED: hello! how are [MASK]?
     MODEL: hello! how are you?
    >>> pymlm.ModelConfig().num_parameters()        # the reference model
    6861056

Long calls (training, tokenizer training, batch encoding, evaluation, fill_mask and predict_mask)
release the GIL; Ctrl-C stops training cleanly after the current step with its checkpoint
written. ``set_num_threads(n)`` sets the OpenMP threads of the calling thread.

``pymlm.torch`` is the same model in PyTorch (``pymlm.torch.load(dir)`` gives an ``nn.Module`` with
a checkpoint's weights and mlm's logits); ``import pymlm`` does not import torch, ``import
pymlm.torch`` does.
"""
from ._core import (  # noqa: F401
    CheckpointError,
    Corpus,
    DataOptions,
    EvalMetrics,
    EvalOptions,
    EvalRecord,
    ForwardOutput,
    MaskedBatch,
    MaskedLM,
    MaskingCollator,
    MaskingOptions,
    MaskPrediction,
    Model,
    ModelConfig,
    OutOfRangeError,
    StepRecord,
    Tokenizer,
    TokenScore,
    TrainerConfig,
    TrainerCore,
    TrainResult,
    __version__,
    apply_recipe,
    assemble_run,
    get_num_threads,
    has_openmp,
    read_lines,
    set_num_threads,
)
from ._predict import fill_mask, predict_mask
from ._training import DEFAULT_RECIPE, Callback, History, Trainer, plot_history

__all__ = [
    "Callback",
    "CheckpointError",
    "DEFAULT_RECIPE",
    "Corpus",
    "DataOptions",
    "EvalMetrics",
    "EvalOptions",
    "EvalRecord",
    "ForwardOutput",
    "History",
    "MaskPrediction",
    "MaskedBatch",
    "MaskedLM",
    "MaskingCollator",
    "MaskingOptions",
    "Model",
    "ModelConfig",
    "OutOfRangeError",
    "StepRecord",
    "TokenScore",
    "Tokenizer",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "TrainerCore",
    "__version__",
    "apply_recipe",
    "assemble_run",
    "fill_mask",
    "get_num_threads",
    "has_openmp",
    "plot_history",
    "predict_mask",
    "read_lines",
    "set_num_threads",
]
