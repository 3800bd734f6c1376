"""Type stubs of pymlm._core, the pybind11 bindings of the mlm C++ library.

Token id arguments (``IdsLike``) accept lists, tuples and integer numpy arrays of any integer
dtype; floats and bools are a TypeError, ids outside the vocab a ValueError (OutOfRangeError).
"""
import os
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
    overload,
)

import numpy as np
import numpy.typing as npt

__version__: str
has_openmp: bool

PathLike = Union[str, os.PathLike[str]]
IdsLike = Union[Sequence[int], npt.NDArray[np.integer[Any]]]
BatchLike = Union[Sequence[Sequence[int]], npt.NDArray[np.integer[Any]]]
FillMaskCandidate = Dict[str, Any]  # {"score": float, "token": int, "token_str": str, "sequence": str}

class CheckpointError(ValueError):
    """A checkpoint or tensor file that is corrupt or does not fit, or a checkpoint that cannot be
    written (the one already there is then unchanged). A ValueError."""

class OutOfRangeError(ValueError, IndexError):
    """A token id outside the vocab or a position outside a sentence."""

def set_num_threads(n: int) -> None:
    """Sets the OpenMP threads of mlm's parallel loops and Eigen's products."""

def get_num_threads() -> int:
    """Threads mlm's parallel loops will use."""

def read_lines(path: PathLike, limit: int = 0) -> List[str]:
    """The non-empty lines of a text file (plain, .gz or .xz)."""

# ---- config ------------------------------------------------------------------------------------

class ModelConfig:
    """Hyper-parameters of the encoder; the defaults are the reference model."""

    # -- generated from the C++ field table by scripts/gen_stubs.py; do not edit by hand --
    vocab_size: int
    dim: int
    n_heads: int
    n_layers: int
    ffn_mult: int
    max_len: int
    dropout: float
    norm_eps: float
    unk_id: int
    pad_id: int
    mask_id: int
    norm_placement: str
    init_std: float
    def __init__(
        self,
        *,
        vocab_size: int = 8192,
        dim: int = 256,
        n_heads: int = 8,
        n_layers: int = 6,
        ffn_mult: int = 4,
        max_len: int = 128,
        dropout: float = 0.1,
        norm_eps: float = 1e-08,
        unk_id: int = 0,
        pad_id: int = 1,
        mask_id: int = 2,
        norm_placement: str = "reference",
        init_std: float = 0.02,
    ) -> None: ...
    def as_dict(self) -> Dict[str, Any]: ...
    @staticmethod
    def field_names() -> List[str]: ...
    @staticmethod
    def fields() -> List[Dict[str, Any]]: ...
    def __eq__(self, other: object) -> bool: ...
    def __copy__(self) -> ModelConfig: ...
    def __deepcopy__(self, memo: dict) -> ModelConfig: ...
    # -- end of the generated part --
    @property
    def head_dim(self) -> int: ...
    @property
    def ffn_dim(self) -> int: ...
    def validate(self) -> None: ...
    def num_parameters(self) -> int: ...
    def to_json(self) -> str: ...
    @staticmethod
    def from_json(text: str) -> ModelConfig: ...

# ---- tokenizer ---------------------------------------------------------------------------------

class Tokenizer:
    """A sentencepiece tokenizer with [UNK]=0, [PAD]=1, [MASK]=2."""

    max_length: int
    def __init__(self, path: PathLike) -> None: ...
    @staticmethod
    def train(
        files_or_sentences: Union[PathLike, Iterable[Union[str, os.PathLike[str]]]],
        vocab_size: int = 8192,
        *,
        model: str = "unigram",
        lower_case: bool = True,
        strip_accents: bool = False,
        unk_id: int = 0,
        pad_id: int = 1,
        mask_id: int = 2,
        seed: int = 42,
        allow_smaller_vocab: bool = False,
        max_sentences: int = 0,
        max_sentence_bytes: int = 4192,
        character_coverage: float = 0.9995,
        num_threads: int = 1,
        max_length: int = 128,
    ) -> Tokenizer: ...
    @staticmethod
    def train_from_files(
        files: Sequence[PathLike],
        vocab_size: int = 8192,
        *,
        model: str = "unigram",
        lower_case: bool = True,
        strip_accents: bool = False,
        unk_id: int = 0,
        pad_id: int = 1,
        mask_id: int = 2,
        seed: int = 42,
        allow_smaller_vocab: bool = False,
        max_sentences: int = 0,
        max_sentence_bytes: int = 4192,
        character_coverage: float = 0.9995,
        num_threads: int = 1,
        max_length: int = 128,
    ) -> Tokenizer: ...
    @staticmethod
    def train_from_sentences(
        sentences: Sequence[str],
        vocab_size: int = 8192,
        *,
        model: str = "unigram",
        lower_case: bool = True,
        strip_accents: bool = False,
        unk_id: int = 0,
        pad_id: int = 1,
        mask_id: int = 2,
        seed: int = 42,
        allow_smaller_vocab: bool = False,
        max_sentences: int = 0,
        max_sentence_bytes: int = 4192,
        character_coverage: float = 0.9995,
        num_threads: int = 1,
        max_length: int = 128,
    ) -> Tokenizer: ...
    @staticmethod
    def load(path: PathLike) -> Tokenizer: ...
    @staticmethod
    def from_bytes(data: bytes) -> Tokenizer: ...
    def save(self, path: PathLike) -> None: ...
    def to_bytes(self) -> bytes: ...
    def encode(self, text: str, max_length: Optional[int] = None) -> List[int]: ...
    def encode_batch(self, texts: Iterable[str], max_length: Optional[int] = None) -> List[List[int]]: ...
    def encode_pieces(self, text: str) -> List[str]: ...
    def decode(self, ids: IdsLike) -> str: ...
    def decode_batch(self, sequences: BatchLike) -> List[str]: ...
    def id_to_piece(self, id: int) -> str: ...
    def piece_to_id(self, piece: str) -> int: ...
    def is_special(self, id: int) -> bool: ...
    def is_unknown(self, id: int) -> bool: ...
    def get_vocab(self) -> Dict[str, int]: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def unk_id(self) -> int: ...
    @property
    def pad_id(self) -> int: ...
    @property
    def mask_id(self) -> int: ...
    @property
    def unk_token(self) -> str: ...
    @property
    def pad_token(self) -> str: ...
    @property
    def mask_token(self) -> str: ...
    @property
    def strip_accents(self) -> bool: ...
    @property
    def fingerprint(self) -> int: ...
    def __len__(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __copy__(self) -> Tokenizer: ...
    def __deepcopy__(self, memo: dict) -> Tokenizer: ...

# ---- data --------------------------------------------------------------------------------------

class Corpus:
    """Tokenized sentences stored compactly: what the trainer trains on."""

    def __init__(self, sequences: BatchLike, vocab_size: int) -> None: ...
    @staticmethod
    def from_file(
        tokenizer: Tokenizer,
        path: PathLike,
        max_length: int = 128,
        max_sentences: int = 0,
        cache_path: Optional[PathLike] = None,
    ) -> Corpus: ...
    @staticmethod
    def from_sentences(tokenizer: Tokenizer, sentences: Iterable[str], max_length: int = 128) -> Corpus: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> npt.NDArray[np.int32]: ...
    def __iter__(self) -> Iterator[npt.NDArray[np.int32]]: ...
    @property
    def num_tokens(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def dropped_empty(self) -> int: ...
    def lengths(self) -> npt.NDArray[np.int32]: ...
    def subset(self, indices: Sequence[int]) -> Corpus: ...
    def split(self, valid: Union[int, float], seed: int = 0) -> Tuple[Corpus, Corpus]: ...

class MaskedBatch:
    """A masked, padded batch: input_ids and labels (B, T), lengths (B,), int64."""

    @property
    def input_ids(self) -> npt.NDArray[np.int64]: ...
    @property
    def labels(self) -> npt.NDArray[np.int64]: ...
    @property
    def lengths(self) -> npt.NDArray[np.int64]: ...
    @property
    def num_masked(self) -> int: ...
    def __getitem__(self, key: str) -> npt.NDArray[np.int64]: ...
    def keys(self) -> List[str]: ...
    def items(self) -> List[Tuple[str, npt.NDArray[np.int64]]]: ...
    def __contains__(self, key: object) -> bool: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...

class MaskingCollator:
    """Masks batches like the original's collate function."""

    next_index: int
    def __init__(
        self,
        tokenizer: Tokenizer,
        mask_prob: float = 0.15,
        *,
        mask_fraction: float = 1.0,
        random_fraction: float = 0.0,
        whole_word: bool = False,
        at_least_one: bool = False,
        seed: int = 0,
        max_length: Optional[int] = None,
    ) -> None: ...
    def __call__(
        self,
        sequences: Union[BatchLike, Sequence[str]],
        *,
        epoch: int = 0,
        sample_indices: Optional[Sequence[int]] = None,
        max_length: Optional[int] = None,
    ) -> MaskedBatch: ...
    def mask(
        self, ids: IdsLike, *, epoch: int = 0, sample_index: int = 0
    ) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
    @property
    def mask_prob(self) -> float: ...
    @property
    def mask_fraction(self) -> float: ...
    @property
    def random_fraction(self) -> float: ...
    @property
    def whole_word(self) -> bool: ...
    @property
    def at_least_one(self) -> bool: ...
    @property
    def seed(self) -> int: ...
    @property
    def max_length(self) -> Optional[int]: ...
    @property
    def pad_id(self) -> int: ...
    @property
    def mask_id(self) -> int: ...

# ---- model -------------------------------------------------------------------------------------

class ForwardOutput:
    """Model.forward's result: loss, logits, target_losses."""

    @property
    def loss(self) -> Optional[float]: ...
    @property
    def logits(self) -> Optional[npt.NDArray[np.float32]]: ...
    @property
    def target_losses(self) -> Optional[npt.NDArray[np.float32]]: ...
    def __getitem__(self, key: str) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...

class Model:
    """The encoder-only transformer, float32 parameters in one flat buffer."""

    def __init__(self, config: ModelConfig, seed: int = 0) -> None: ...
    @staticmethod
    def load(dir: PathLike) -> Model: ...
    def save(self, dir: PathLike) -> None: ...
    @property
    def config(self) -> ModelConfig: ...
    def num_parameters(self) -> int: ...
    def parameter_names(self) -> List[str]: ...
    def parameters(self) -> Dict[str, npt.NDArray[np.float32]]: ...
    def gradients(self) -> Dict[str, npt.NDArray[np.float32]]: ...
    def parameter(self, name: str) -> npt.NDArray[np.float32]: ...
    @property
    def flat_parameters(self) -> npt.NDArray[np.float32]: ...
    @property
    def flat_gradients(self) -> npt.NDArray[np.float32]: ...
    def state_dict(self, include_head: bool = False) -> Dict[str, npt.NDArray[np.float32]]: ...
    def load_state_dict(self, state_dict: Dict[str, Any], strict: bool = True) -> None: ...
    def init_parameters(self, seed: int) -> None: ...
    def zero_grad(self) -> None: ...
    def copy(self) -> Model: ...
    def __copy__(self) -> Model: ...
    def __deepcopy__(self, memo: dict) -> Model: ...
    def forward(
        self,
        input_ids: BatchLike,
        labels: Optional[BatchLike] = None,
        *,
        train: bool = False,
        dropout_key: int = 0,
        logits: Optional[str] = "auto",
    ) -> ForwardOutput: ...
    def __call__(
        self,
        input_ids: BatchLike,
        labels: Optional[BatchLike] = None,
        *,
        train: bool = False,
        dropout_key: int = 0,
        logits: Optional[str] = "auto",
    ) -> ForwardOutput: ...
    def backward(self, loss_scale: float = 1.0) -> None: ...

# ---- inference ---------------------------------------------------------------------------------

class EvalOptions:
    """How held-out sentences are evaluated."""

    # -- generated from the C++ field table by scripts/gen_stubs.py; do not edit by hand --
    seed: int
    mask_probability: float
    max_sentences: int
    batch_tokens: int
    top_k: int
    mlm: bool
    single_mask: bool
    def __init__(
        self,
        *,
        seed: int = 1234,
        mask_probability: float = 0.15,
        max_sentences: int = 0,
        batch_tokens: int = 4096,
        top_k: int = 5,
        mlm: bool = True,
        single_mask: bool = True,
    ) -> None: ...
    def as_dict(self) -> Dict[str, Any]: ...
    @staticmethod
    def field_names() -> List[str]: ...
    @staticmethod
    def fields() -> List[Dict[str, Any]]: ...
    def __eq__(self, other: object) -> bool: ...
    def __copy__(self) -> EvalOptions: ...
    def __deepcopy__(self, memo: dict) -> EvalOptions: ...
    # -- end of the generated part --

class EvalMetrics:
    """Metrics on held-out sentences."""

    @property
    def sentences(self) -> int: ...
    @property
    def masked_tokens(self) -> int: ...
    @property
    def loss(self) -> float: ...
    @property
    def accuracy(self) -> float: ...
    @property
    def perplexity(self) -> float: ...
    @property
    def single_mask_sentences(self) -> int: ...
    @property
    def single_mask_accuracy(self) -> float: ...
    @property
    def single_mask_topk_accuracy(self) -> float: ...
    @property
    def single_mask_loss(self) -> float: ...
    @property
    def top_k(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    def as_dict(self) -> Dict[str, float]: ...
    def __getitem__(self, key: str) -> float: ...

class TokenScore:
    """One candidate token of a prediction."""

    @property
    def id(self) -> int: ...
    @property
    def token(self) -> str: ...
    @property
    def probability(self) -> float: ...
    def __iter__(self) -> Iterator[Any]: ...

class MaskPrediction:
    """The result of predict_mask; str() gives the original's four lines."""

    @property
    def sentence(self) -> str: ...
    @property
    def input_ids(self) -> List[int]: ...
    @property
    def position(self) -> int: ...
    @property
    def masked_id(self) -> int: ...
    @property
    def masked_token(self) -> str: ...
    @property
    def predicted_id(self) -> int: ...
    @property
    def predicted_token(self) -> str: ...
    @property
    def predicted_probability(self) -> float: ...
    @property
    def masked_text(self) -> str: ...
    @property
    def predicted_text(self) -> str: ...
    @property
    def correct(self) -> bool: ...
    @property
    def top_k(self) -> List[TokenScore]: ...
    @property
    def lines(self) -> List[str]: ...

class MaskedLM:
    """A trained model with its tokenizer."""

    @overload
    def __init__(self, model: Model, tokenizer: Tokenizer) -> None: ...
    @overload
    def __init__(self, config: ModelConfig, tokenizer: Tokenizer, seed: int = 0) -> None: ...
    @staticmethod
    def load(dir: PathLike) -> MaskedLM: ...
    def save(self, dir: PathLike) -> None: ...
    @property
    def config(self) -> ModelConfig: ...
    @property
    def model(self) -> Model: ...
    @property
    def tokenizer(self) -> Tokenizer: ...
    def encode(self, text: str) -> List[int]: ...
    def token_string(self, id: int) -> str: ...
    def logits(self, ids: IdsLike, positions: Optional[IdsLike] = None) -> npt.NDArray[np.float32]: ...
    @overload
    def predict_mask(
        self, sentence: str, seed: Optional[int] = None, position: Optional[int] = None, top_k: int = 5
    ) -> MaskPrediction: ...
    @overload
    def predict_mask(
        self, sentence: Sequence[str], seed: Optional[int] = None, position: Optional[int] = None, top_k: int = 5
    ) -> List[MaskPrediction]: ...
    def fill_mask(
        self,
        text_or_texts: Union[str, Sequence[str]],
        top_k: int = 5,
        targets: Optional[Union[str, Sequence[str]]] = None,
    ) -> List[Any]: ...
    def evaluate(
        self,
        data: Union[PathLike, Corpus, Sequence[str]],
        *,
        max_sentences: int = 0,
        seed: int = 1234,
        mask_prob: float = 0.15,
        top_k: int = 5,
        batch_tokens: int = 4096,
        mlm: bool = True,
        single_mask: bool = True,
    ) -> EvalMetrics: ...

# ---- training ----------------------------------------------------------------------------------

class MaskingOptions:
    """How the trainer masks its batches."""

    # -- generated from the C++ field table by scripts/gen_stubs.py; do not edit by hand --
    mask_probability: float
    mask_fraction: float
    random_fraction: float
    whole_word: bool
    at_least_one: bool
    def __init__(
        self,
        *,
        mask_probability: float = 0.15,
        mask_fraction: float = 1.0,
        random_fraction: float = 0.0,
        whole_word: bool = False,
        at_least_one: bool = False,
    ) -> None: ...
    def as_dict(self) -> Dict[str, Any]: ...
    @staticmethod
    def field_names() -> List[str]: ...
    @staticmethod
    def fields() -> List[Dict[str, Any]]: ...
    def __eq__(self, other: object) -> bool: ...
    def __copy__(self) -> MaskingOptions: ...
    def __deepcopy__(self, memo: dict) -> MaskingOptions: ...
    # -- end of the generated part --

class TrainerConfig:
    """How to train (defaults: the original's recipe; see apply_recipe)."""

    # -- generated from the C++ field table by scripts/gen_stubs.py; do not edit by hand --
    epochs: int
    max_steps: int
    max_tokens: int
    max_time_s: float
    max_total_time_s: float
    batch_size: int
    batch_tokens: int
    max_batch_sequences: int
    bucketing: str
    bucket_batches: int
    grad_accum: int
    optimizer: str
    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    decay_weights_only: bool
    clip_grad_norm: float
    schedule: str
    lr_min: float
    warmup_steps: int
    warmup_fraction: float
    pct_start: float
    div_factor: float
    final_div_factor: float
    three_phase: bool
    anneal: str
    cycle_momentum: bool
    base_momentum: float
    max_momentum: float
    schedule_steps: int
    masking: MaskingOptions
    seed: int
    eval_every_steps: int
    eval_at_start: bool
    eval: EvalOptions
    save_best: bool
    out_dir: str
    checkpoint_every_steps: int
    checkpoint_every_minutes: float
    checkpoint_on_stop: bool
    overwrite: bool
    on_non_finite: str
    max_non_finite_skips: int
    threads: int
    def __init__(
        self,
        *,
        epochs: int = 100,
        max_steps: int = 0,
        max_tokens: int = 0,
        max_time_s: float = 0.0,
        max_total_time_s: float = 0.0,
        batch_size: int = 128,
        batch_tokens: int = 0,
        max_batch_sequences: int = 0,
        bucketing: str = "auto",
        bucket_batches: int = 64,
        grad_accum: int = 1,
        optimizer: str = "adam",
        lr: float = 0.0006,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-08,
        weight_decay: float = 0.0,
        decay_weights_only: bool = False,
        clip_grad_norm: float = 0.0,
        schedule: str = "one_cycle",
        lr_min: float = 0.0,
        warmup_steps: int = 0,
        warmup_fraction: float = 0.0,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 10000.0,
        three_phase: bool = False,
        anneal: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        schedule_steps: int = 0,
        masking: MaskingOptions = ...,
        seed: int = 0,
        eval_every_steps: int = 0,
        eval_at_start: bool = False,
        eval: EvalOptions = ...,
        save_best: bool = True,
        out_dir: str = "",
        checkpoint_every_steps: int = 0,
        checkpoint_every_minutes: float = 30.0,
        checkpoint_on_stop: bool = True,
        overwrite: bool = False,
        on_non_finite: str = "skip",
        max_non_finite_skips: int = 10,
        threads: int = 0,
    ) -> None: ...
    def as_dict(self) -> Dict[str, Any]: ...
    @staticmethod
    def field_names() -> List[str]: ...
    @staticmethod
    def fields() -> List[Dict[str, Any]]: ...
    def __eq__(self, other: object) -> bool: ...
    def __copy__(self) -> TrainerConfig: ...
    def __deepcopy__(self, memo: dict) -> TrainerConfig: ...
    # -- end of the generated part --
    def validate(self) -> None: ...
    def to_json(self) -> str: ...
    @staticmethod
    def from_json(text: str) -> TrainerConfig: ...

class DataOptions:
    """Where a run's sentences come from (data.json of a run directory)."""

    # -- generated from the C++ field table by scripts/gen_stubs.py; do not edit by hand --
    train: List[str]
    valid: str
    holdout: int
    max_sentences: int
    cache_dir: str
    cache: bool
    def __init__(
        self,
        *,
        train: List[str] = [],
        valid: str = "",
        holdout: int = 2000,
        max_sentences: int = 0,
        cache_dir: str = "",
        cache: bool = True,
    ) -> None: ...
    def as_dict(self) -> Dict[str, Any]: ...
    @staticmethod
    def field_names() -> List[str]: ...
    @staticmethod
    def fields() -> List[Dict[str, Any]]: ...
    def __eq__(self, other: object) -> bool: ...
    def __copy__(self) -> DataOptions: ...
    def __deepcopy__(self, memo: dict) -> DataOptions: ...
    # -- end of the generated part --
    def to_json(self) -> str: ...
    @staticmethod
    def from_json(text: str) -> DataOptions: ...

DEFAULT_RECIPE: str

def apply_recipe(
    recipe: str, model_config: ModelConfig, trainer_config: TrainerConfig
) -> Tuple[ModelConfig, TrainerConfig]:
    """Copies of both configs with the knobs of a training recipe ("original" or "best") set."""

class StepRecord:
    """What happened at one optimizer step."""

    @property
    def step(self) -> int: ...
    @property
    def total_steps(self) -> int: ...
    @property
    def epoch(self) -> float: ...
    @property
    def tokens(self) -> int: ...
    @property
    def step_tokens(self) -> int: ...
    @property
    def step_masked(self) -> int: ...
    @property
    def loss(self) -> float: ...
    @property
    def lr(self) -> float: ...
    @property
    def beta1(self) -> float: ...
    @property
    def grad_norm(self) -> float: ...
    @property
    def tokens_per_s(self) -> float: ...
    @property
    def elapsed_s(self) -> float: ...
    @property
    def skipped(self) -> bool: ...
    @property
    def loss_smoothed(self) -> float: ...
    @property
    def tokens_per_s_smoothed(self) -> float: ...
    @property
    def eta_s(self) -> float: ...
    def as_dict(self) -> Dict[str, Any]: ...

class EvalRecord:
    """One evaluation during training."""

    @property
    def step(self) -> int: ...
    @property
    def epoch(self) -> float: ...
    @property
    def tokens(self) -> int: ...
    @property
    def elapsed_s(self) -> float: ...
    @property
    def metrics(self) -> EvalMetrics: ...
    @property
    def best(self) -> bool: ...
    def as_dict(self) -> Dict[str, Any]: ...

class TrainResult:
    """How a training run (one fit() call) ended."""

    @property
    def stop_reason(self) -> str: ...
    @property
    def steps(self) -> int: ...
    @property
    def epochs(self) -> float: ...
    @property
    def tokens(self) -> int: ...
    @property
    def last_loss(self) -> float: ...
    @property
    def best_val_loss(self) -> float: ...
    @property
    def best_step(self) -> int: ...
    @property
    def last_eval(self) -> EvalMetrics: ...
    @property
    def elapsed_s(self) -> float: ...
    @property
    def skipped_steps(self) -> int: ...
    @property
    def checkpoint_step(self) -> int: ...
    def as_dict(self) -> Dict[str, Any]: ...

class TrainerCore:
    """The C++ training loop (mlm::Trainer)."""

    def __init__(self, model: Union[ModelConfig, Model], tokenizer: Tokenizer, config: TrainerConfig) -> None: ...
    def set_data(self, train: Corpus, valid: Optional[Corpus] = None) -> None: ...
    def train(
        self,
        on_step: Optional[Callable[[StepRecord], Optional[bool]]] = None,
        on_eval: Optional[Callable[[EvalRecord], Optional[bool]]] = None,
    ) -> TrainResult: ...
    def evaluate(self) -> EvalMetrics: ...
    def resume(self, dir: Optional[PathLike] = None) -> None: ...
    def save_checkpoint(self, dir: Optional[PathLike] = None) -> None: ...
    def request_stop(self) -> None: ...
    @staticmethod
    def has_state(dir: PathLike) -> bool: ...
    @staticmethod
    def load_config(dir: PathLike) -> TrainerConfig: ...
    @property
    def model(self) -> Model: ...
    @property
    def tokenizer(self) -> Tokenizer: ...
    @property
    def config(self) -> TrainerConfig: ...
    @property
    def model_config(self) -> ModelConfig: ...
    @property
    def step(self) -> int: ...
    @property
    def epoch(self) -> float: ...
    @property
    def tokens_seen(self) -> int: ...
    @property
    def total_steps(self) -> int: ...
    @property
    def current_lr(self) -> float: ...
    @property
    def train_data(self) -> Corpus: ...
    @property
    def valid_data(self) -> Corpus: ...
    def to_masked_lm(self) -> MaskedLM: ...

def assemble_run(
    *,
    recipe: Optional[str] = None,
    model: Optional[ModelConfig] = None,
    trainer: Optional[TrainerConfig] = None,
    weights: Optional[Model] = None,
    model_options: Dict[str, Any] = ...,
    trainer_options: Dict[str, Any] = ...,
    data_options: Dict[str, Any] = ...,
    tokenizer: Optional[Tokenizer] = None,
    train: Optional[Corpus] = None,
    valid: Optional[Corpus] = None,
    resume: bool = False,
    on_notice: Optional[Callable[[str, str], None]] = None,
) -> TrainerCore:
    """A TrainerCore with its data set, assembled by the same C++ function as `mlm train`."""

def non_finite_stop_message(result: TrainResult, out_dir: str) -> str:
    """Why a run stopped on a non-finite loss or gradient ("" for other stops)."""
