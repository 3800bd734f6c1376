"""pymlm.torch: the PyTorch version of mlm's model, the project's correctness oracle.

The reference model (the "Masked Language Modeling from Scratch" notebook's encoder) written
in plain PyTorch, module for module, with the checkpoint keys of include/mlm/parameters.hpp. It
makes the C++ test fixtures, is the other side of the benchmark, and loads any checkpoint mlm
saves. Importing pymlm does not import torch; importing pymlm.torch does (and torch changes the
process's OpenMP thread count: set both sides' threads explicitly before comparing timings).

    import pymlm.torch
    model = pymlm.torch.load("runs/demo/best")        # nn.Module in eval mode, float32
    ids = model.tokenize(["the capital of france is [MASK]."])   # [B, T] LongTensor, right-padded
    with torch.no_grad():
        _, logits = model(ids)                         # [B, T, V]: mlm's logits (see below)

mlm's logits for the same checkpoint and ids (pymlm.MaskedLM.logits, pymlm.Model.forward) agree
with this module's within |torch - mlm| <= LOGITS_ATOL + LOGITS_RTOL * |torch| (float32 on both
sides, different summation orders; tests/python/test_torch_reference.py checks it).

Lower level, as the fixtures and the benchmark use it:

    from pymlm.torch import Config, MLMEncoder
    model = MLMEncoder(Config(), seed=0)                  # 6,861,056 parameters
    loss, logits = model(input_ids, labels)               # logits at every position, [B, T, V]
    loss, masked_logits = model.forward_masked_only(input_ids, labels)   # head on labelled rows
    loss, masked_logits = model.forward_packed(input_ids, labels)   # per sequence, no pad compute
    pymlm.torch.save_checkpoint(model, "model.safetensors")      # numpy-only safetensors writer
    model = pymlm.torch.load_checkpoint("model.safetensors")

    python -m pymlm.torch --selftest

Decisions the C++ engine must match (B batch, T padded length, C dim, H heads, D = C / H,
F = ffn_mult * C, V vocab):
  1. RMSNorm: y = scale * x / (||x||_2 * C^-1/2 + eps), i.e. eps is added to the root mean
     square (outside the square root), eps = norm_eps = 1e-8.
  2. Block order. reference: x = ln_1(x); x = x + attn(x); x = ln_2(x); x = x + ffd(x)
     (the norm rewrites the residual stream). pre: x = x + attn(ln_1(x)); x = x + ffd(ln_2(x)).
     Both end with ln_f, then the head. The head weight IS the token embedding (V, C).
  3. Attention: qkv = x @ in_proj.weight^T (no bias) -> [q | k | v] along channels; head h uses
     channels h*D .. (h+1)*D of each of q, k, v. scores = (q_h @ k_h^T) / sqrt(D), keys at pad
     positions set to -inf, softmax over keys, y_h = p @ v_h, heads concatenated in head order
     along channels, then out_proj (with bias), then dropout, then the residual add.
     No dropout on the attention probabilities.
  4. Dropout sites (inverted dropout, scaled by 1/(1-p) in training): after token + position
     embedding sum; on the attention output after out_proj; after GELU; after the second FFN
     Linear. The fixtures use dropout 0, so the RNG stream need not match.
  5. GELU is the exact erf form: 0.5 * x * (1 + erf(x / sqrt(2))).
  6. Positions are 0..T-1 in every row (right padding). Pad positions only ever act as
     (masked-out) keys, so real rows never see them: the padded result equals the packed one
     (tokens concatenated, positions restarting at 0 per sequence) on every real row, and pad
     rows contribute exactly zero to every gradient.
  7. Loss: cross entropy averaged over ALL labelled tokens of the batch (one mean over the M
     targets, not a mean of per-sequence means); label -100 means "no target".
  8. The tied head: d(embedding.class_embedding.weight) = embedding-lookup gradient + head
     gradient. Checkpoints store it once, under embedding.class_embedding.weight; no
     mlm_head.weight entry.
  9. Adam is torch.optim.Adam (weight_decay 0 here): with g the gradient, t the step (from 1),
     b1 the CURRENT step's beta1 (the one-cycle schedule cycles it), lr the current lr:
         m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
         p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
     Note the bias correction uses the current b1 raised to t, not a product of past b1s.
 10. OneCycleLR (torch 1.13 defaults: pct_start 0.3, cos anneal, div_factor 25,
     final_div_factor 1e4, base_momentum 0.85, max_momentum 0.95). With S = total_steps,
     lr0 = max_lr / 25, lr_min = lr0 / 1e4, e1 = float(0.3 * S) - 1, e2 = S - 1,
     cos_anneal(a, b, pct) = b + (a - b) / 2 * (cos(pi * pct) + 1); at step s (0-based):
         s <= e1: pct = s / e1;        lr = cos_anneal(lr0, max_lr, pct), b1 = cos_anneal(0.95, 0.85, pct)
         else:    pct = (s - e1) / (e2 - e1); lr = cos_anneal(max_lr, lr_min, pct),
                                              b1 = cos_anneal(0.85, 0.95, pct)
     The lr / beta1 used by step s are recorded in the fixtures (adam_lrs, adam_beta1s).
 11. Initial weights are drawn in float32 from a torch.Generator, then the model may be cast to
     double: fixture parameters are exactly float32-representable, so a float engine loads the
     very same weights. The init RNG stream is NOT meant to match the C++ initialiser (only the
     distribution: N(0, init_std) for weights and embeddings, biases 0, scales 1).
 12. The key padding mask of the padded API is input_ids == pad_id (pass key_padding_mask to
     override). Every sequence must hold at least one real token.
 13. forward_packed() runs each sequence alone over its own length and the head on the labelled
     rows only, as the C++ engine does; tests/fixtures/make_fixtures.py uses it for the --full
     fixture (the tiny fixtures use the padded forward; both agree to rounding).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = -100

# |torch - mlm| <= LOGITS_ATOL + LOGITS_RTOL * |torch| for the logits of one checkpoint in float32:
# the bound the project's comparisons (tests/check_torch_logits.py, tests/python/) hold to.
LOGITS_ATOL = 2e-4
LOGITS_RTOL = 1e-4


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

@dataclass
class Config:
    """Mirrors mlm::ModelConfig (include/mlm/config.hpp); defaults are the reference model."""
    vocab_size: int = 8192
    dim: int = 256
    n_heads: int = 8
    n_layers: int = 6
    ffn_mult: int = 4
    max_len: int = 128
    dropout: float = 0.1
    norm_eps: float = 1e-8
    unk_id: int = 0
    pad_id: int = 1
    mask_id: int = 2
    norm_placement: str = "reference"  # "reference" | "pre"
    init_std: float = 0.02

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def ffn_dim(self) -> int:
        return self.ffn_mult * self.dim

    def validate(self) -> None:
        if self.dim % self.n_heads != 0:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if self.norm_placement not in ("reference", "pre"):
            raise ValueError(f'norm_placement must be "reference" or "pre", got {self.norm_placement!r}')
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("unk_id", "pad_id", "mask_id"):
            v = getattr(self, name)
            if not 0 <= v < self.vocab_size:
                raise ValueError(f"{name} {v} is outside the vocab [0, {self.vocab_size})")

    def to_json(self) -> str:
        """The same keys, in the same order, as mlm::to_json (src/config.cpp)."""
        d = OrderedDict(model_type="mlm-encoder")
        for f in dataclasses.fields(self):
            d[f.name] = getattr(self, f.name)
        return json.dumps(d, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Config":
        d = json.loads(text)
        d.pop("model_type", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"config: unknown keys {sorted(unknown)}")
        c = cls(**d)
        c.validate()
        return c


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    """y = scale * x / (||x||_2 * d^-1/2 + eps): eps added to the RMS, outside the root."""

    def __init__(self, dim: int, eps: float = 1e-8):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.linalg.vector_norm(x, ord=2, dim=-1, keepdim=True) * self.dim ** -0.5
        return self.scale * x / (rms + self.eps)


class Embedding(nn.Module):
    """Token embedding + learned position embedding (positions 0..T-1), then dropout (site a)."""

    def __init__(self, c: Config):
        super().__init__()
        self.class_embedding = nn.Embedding(c.vocab_size, c.dim)
        self.pos_embedding = nn.Embedding(c.max_len, c.dim)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # [B, T] -> [B, T, C]
        T = input_ids.shape[1]
        pos = torch.arange(T, device=input_ids.device)
        return self.dropout(self.class_embedding(input_ids) + self.pos_embedding(pos)[None])


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused bias-free qkv projection and a key-padding mask."""

    def __init__(self, c: Config):
        super().__init__()
        self.n_heads = c.n_heads
        self.in_proj = nn.Linear(c.dim, 3 * c.dim, bias=False)
        self.out_proj = nn.Linear(c.dim, c.dim, bias=True)
        self.dropout = nn.Dropout(c.dropout)  # site (b): on the output, not on the probabilities

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        # x [B, T, C]; key_padding_mask [B, T] bool, True where the key is padding
        B, T, C = x.shape
        H = self.n_heads
        D = C // H
        q, k, v = self.in_proj(x).split(C, dim=-1)           # each [B, T, C]
        q = q.view(B, T, H, D).transpose(1, 2)               # [B, H, T, D]
        k = k.view(B, T, H, D).transpose(1, 2)
        v = v.view(B, T, H, D).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(D)   # [B, H, Tq, Tk]
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        y = torch.matmul(probs, v)                           # [B, H, T, D]
        y = y.transpose(1, 2).reshape(B, T, C)               # heads concatenated in head order
        return self.dropout(self.out_proj(y))


class FeedForward(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.feed_forward = nn.Sequential(
            nn.Linear(c.dim, c.ffn_dim),   # 0
            nn.GELU(),                     # 1  exact erf form
            nn.Dropout(c.dropout),         # 2  site (c)
            nn.Linear(c.ffn_dim, c.dim),   # 3
            nn.Dropout(c.dropout),         # 4  site (d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(x)


class Block(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.placement = c.norm_placement
        self.ln_1 = RMSNorm(c.dim, c.norm_eps)
        self.attn = SelfAttention(c)
        self.ln_2 = RMSNorm(c.dim, c.norm_eps)
        self.ffd = FeedForward(c)

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        if self.placement == "reference":
            x = self.ln_1(x)
            x = x + self.attn(x, key_padding_mask)
            x = self.ln_2(x)
            x = x + self.ffd(x)
        else:
            x = x + self.attn(self.ln_1(x), key_padding_mask)
            x = x + self.ffd(self.ln_2(x))
        return x


class MLMEncoder(nn.Module):
    """The reference encoder. Module names give the checkpoint keys of include/mlm/parameters.hpp."""

    def __init__(self, config: Optional[Config] = None, seed: int = 0):
        super().__init__()
        c = config if config is not None else Config()
        c.validate()
        self.config = c
        self.tokenizer = None   # a pymlm.Tokenizer: load() sets the checkpoint's (see tokenize())
        self.embedding = Embedding(c)
        self.encoders = nn.ModuleList([Block(c) for _ in range(c.n_layers)])
        self.ln_f = RMSNorm(c.dim, c.norm_eps)
        self.mlm_head = nn.Linear(c.dim, c.vocab_size, bias=False)
        self.mlm_head.weight = self.embedding.class_embedding.weight   # tied: the same Parameter
        self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """Weights and embeddings ~ N(0, init_std) drawn in state_dict order from one seeded
        generator (float32 draws, whatever the model's dtype), biases 0, scales 1."""
        g = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():  # the tied head is listed once, as the embedding
            if name.endswith(".scale"):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                draw = torch.empty(p.shape, dtype=torch.float32).normal_(
                    0.0, self.config.init_std, generator=g)
                p.copy_(draw)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # the tied tensor counted once

    def key_padding_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        return input_ids == self.config.pad_id

    def tokenize(self, texts: "str | Sequence[str]") -> torch.Tensor:
        """Token ids [B, T] (int64) of `texts` with self.tokenizer, as mlm encodes them
        (pymlm.MaskedLM.encode: "[MASK]" in a text becomes mask_id, each text is cut to max_len),
        right-padded with pad_id to the longest. One string gives B = 1."""
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer: load() a checkpoint directory that has "
                             "a tokenizer.model, or set model.tokenizer to a pymlm.Tokenizer")
        if isinstance(texts, str):
            texts = [texts]
        rows = self.tokenizer.encode_batch(list(texts), self.config.max_len)
        for i, row in enumerate(rows):
            if len(row) == 0:
                raise ValueError(f"text {i} ({texts[i]!r}) has no tokens")
        ids = torch.full((len(rows), max(len(r) for r in rows)), self.config.pad_id, dtype=torch.long)
        for b, row in enumerate(rows):
            ids[b, :len(row)] = torch.as_tensor(row, dtype=torch.long)
        return ids

    def encode(self, input_ids: torch.Tensor,
               key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Final-norm hidden states [B, T, C]."""
        if input_ids.shape[1] > self.config.max_len:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds max_len {self.config.max_len}")
        if key_padding_mask is None:
            key_padding_mask = self.key_padding_mask(input_ids)
        x = self.embedding(input_ids)
        for block in self.encoders:
            x = block(x, key_padding_mask)
        return self.ln_f(x)

    def forward(self, input_ids: torch.Tensor, labels: Optional[torch.Tensor] = None,
                key_padding_mask: Optional[torch.Tensor] = None
                ) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
        """(loss, logits [B, T, V]) with the head at every position, like the original."""
        h = self.encode(input_ids, key_padding_mask)
        logits = self.mlm_head(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return loss, logits

    def forward_masked_only(self, input_ids: torch.Tensor, labels: torch.Tensor,
                            key_padding_mask: Optional[torch.Tensor] = None
                            ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits [M, V]): the head applied only to the M rows with a label, in row-major
        (b, t) order. Same loss as forward(); the benchmark's "masked-only head" configuration."""
        h = self.encode(input_ids, key_padding_mask)
        selected = labels != IGNORE_INDEX                  # [B, T]
        logits = self.mlm_head(h[selected])                # [M, V]
        loss = F.cross_entropy(logits, labels[selected])
        return loss, logits

    def forward_packed(self, input_ids: torch.Tensor, labels: torch.Tensor,
                       lengths: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits [M, V]) computed the way the C++ engine packs a batch: every sequence runs
        alone over its own length (no pad compute, no mask), then the head runs on the M labelled
        rows, in row-major (b, t) order. Same loss and gradients as forward() up to rounding (the
        dropout masks differ). `lengths` [B] defaults to the count of non-pad ids per row; the
        padding must be on the right."""
        if lengths is None:
            lengths = (input_ids != self.config.pad_id).sum(dim=1)
        hidden, targets = [], []
        for b, L in enumerate(int(n) for n in lengths):
            ids = input_ids[b:b + 1, :L]
            h = self.encode(ids, key_padding_mask=torch.zeros_like(ids, dtype=torch.bool))[0]
            selected = labels[b, :L] != IGNORE_INDEX
            hidden.append(h[selected])
            targets.append(labels[b, :L][selected])
        logits = self.mlm_head(torch.cat(hidden))
        return F.cross_entropy(logits, torch.cat(targets)), logits

    # -- checkpoint keys ------------------------------------------------------------------------

    def checkpoint_state_dict(self) -> "OrderedDict[str, torch.Tensor]":
        """state_dict() without the tied mlm_head.weight: exactly the keys of ParameterLayout."""
        sd = self.state_dict()
        sd.pop("mlm_head.weight")
        return sd

    @torch.no_grad()
    def load_checkpoint_state(self, tensors: Dict[str, "np.ndarray | torch.Tensor"]) -> None:
        """Copies every checkpoint key into the model (converting dtype) and keeps the head tied.
        A `mlm_head.weight` entry is accepted only if it equals the embedding."""
        expected = self.checkpoint_state_dict()
        tensors = dict(tensors)
        if "mlm_head.weight" in tensors:
            head = np.asarray(tensors.pop("mlm_head.weight"))
            emb = np.asarray(tensors.get("embedding.class_embedding.weight"))
            if head.shape != emb.shape or not np.array_equal(head, emb):
                raise ValueError("mlm_head.weight differs from embedding.class_embedding.weight, "
                                 "but the head is tied to the embedding")
        missing = [k for k in expected if k not in tensors]
        unexpected = [k for k in tensors if k not in expected]
        if missing or unexpected:
            raise ValueError(f"checkpoint keys do not match the model: missing {missing}, "
                             f"unexpected {unexpected}")
        params = dict(self.named_parameters())
        for k, dst in expected.items():
            src = torch.as_tensor(np.asarray(tensors[k]))
            if tuple(src.shape) != tuple(dst.shape):
                raise ValueError(f"{k}: shape {tuple(src.shape)} in the checkpoint, "
                                 f"{tuple(dst.shape)} in the model")
            params[k].copy_(src.to(params[k].dtype))
        assert self.mlm_head.weight is self.embedding.class_embedding.weight


# ---------------------------------------------------------------------------------------------
# safetensors with numpy only
# ---------------------------------------------------------------------------------------------

_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I32": np.dtype("<i4"),
           "I64": np.dtype("<i8")}
_DTYPE_NAMES = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def save_safetensors(path: str, tensors: Dict[str, "np.ndarray | torch.Tensor"],
                     metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes `tensors` (name -> array, in the given order) as a safetensors file: 8-byte
    little-endian header length N, N bytes of JSON header padded with spaces to a multiple of 8,
    then the raw little-endian row-major data. Written to a temporary file, then renamed."""
    meta = {"format": "pt"}
    meta.update(metadata or {})
    for k, v in meta.items():
        if not isinstance(v, str):
            raise TypeError(f"safetensors metadata values must be strings, {k!r} is {type(v)}")
    header: Dict[str, object] = {"__metadata__": meta}
    blobs = []
    offset = 0
    for name, value in tensors.items():
        a = _as_numpy(value)
        key = a.dtype.newbyteorder("=")
        if key not in _DTYPE_NAMES:
            raise TypeError(f"{name}: dtype {a.dtype} is not one of F32, F64, I32, I64")
        dtype_name = _DTYPE_NAMES[key]
        data = np.ascontiguousarray(a, dtype=_DTYPES[dtype_name]).tobytes()
        header[name] = {"dtype": dtype_name, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(len(head).to_bytes(8, "little"))
            f.write(head)
            for b in blobs:
                f.write(b)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_safetensors(path: str) -> Tuple["OrderedDict[str, np.ndarray]", Dict[str, str]]:
    """Reads a safetensors file (F32/F64/I32/I64) into numpy arrays, validating the header."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short to be a safetensors file")
    n = int.from_bytes(raw[:8], "little")
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = memoryview(raw)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: {name} has unsupported dtype {info['dtype']}")
        dt = _DTYPES[info["dtype"]]
        shape = tuple(int(s) for s in info["shape"])
        begin, end = (int(x) for x in info["data_offsets"])
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dt.itemsize or end > len(data) or begin < 0:
            raise ValueError(f"{path}: {name} data_offsets {begin}..{end} do not fit shape "
                             f"{shape} of {info['dtype']} (data section {len(data)} bytes)")
        out[name] = np.frombuffer(data[begin:end], dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
    return out, metadata


def save_checkpoint(model: MLMEncoder, path: str, dtype=np.float32,
                    metadata: Optional[Dict[str, str]] = None) -> None:
    """model.safetensors with the checkpoint keys (tied head stored once) and the config."""
    meta = {"config": model.config.to_json()}
    meta.update(metadata or {})
    tensors = OrderedDict((k, _as_numpy(v).astype(dtype)) for k, v in model.checkpoint_state_dict().items())
    save_safetensors(path, tensors, meta)


def load_checkpoint(path: str, config: Optional[Config] = None) -> MLMEncoder:
    """Builds a model from a safetensors file; the config comes from its metadata unless given.
    Extra non-parameter tensors (as in the test fixtures) are ignored."""
    tensors, meta = load_safetensors(path)
    if config is None:
        if "config" not in meta:
            raise ValueError(f"{path}: no config in the metadata; pass config=")
        config = Config.from_json(meta["config"])
    model = MLMEncoder(config)
    keys = set(model.checkpoint_state_dict())
    model.load_checkpoint_state({k: v for k, v in tensors.items() if k in keys})
    return model


def _checkpoint_file(directory: str, name: str) -> str:
    """DIR/NAME, or DIR/.checkpoint-commit/NAME when an interrupted checkpoint write left the new
    file there (mlm::checkpoint_file, src/checkpoint.cpp)."""
    committed = os.path.join(directory, ".checkpoint-commit", name)
    return committed if os.path.exists(committed) else os.path.join(directory, name)


def load(path: "str | os.PathLike[str]", *, dtype: torch.dtype = torch.float32) -> MLMEncoder:
    """The checkpoint at `path` as an MLMEncoder (an nn.Module) in eval mode.

    `path` is a checkpoint directory as mlm writes it (`mlm train`'s run directory or its best/,
    pymlm.Trainer's out_dir, MaskedLM.save): config.json, model.safetensors and, when present,
    tokenizer.model, which becomes model.tokenizer (a pymlm.Tokenizer; model.tokenize() uses it).
    It may also name a .safetensors file: the config then comes from a config.json next to it,
    else from the file's metadata (save_checkpoint writes it there). model.config is the
    checkpoint's Config. The weights are read by this module's own numpy safetensors reader, not
    by mlm's loader, and cast to `dtype`.

        model = pymlm.torch.load("runs/demo/best")
        with torch.no_grad():
            _, logits = model(model.tokenize("the capital of france is [MASK]."))
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        directory, weights = p, _checkpoint_file(p, "model.safetensors")
        if not os.path.exists(weights):
            raise FileNotFoundError(f"{p} is not a checkpoint directory: it has no model.safetensors "
                                    f"(a checkpoint holds config.json, model.safetensors and "
                                    f"tokenizer.model)")
    elif os.path.exists(p):
        directory, weights = os.path.dirname(p) or ".", p
    else:
        raise FileNotFoundError(f"{p}: no such checkpoint directory or file")
    config = None   # then load_checkpoint takes it from the file's metadata
    config_path = _checkpoint_file(directory, "config.json")
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = Config.from_json(f.read())
    model = load_checkpoint(weights, config=config).to(dtype).eval()
    tokenizer_path = _checkpoint_file(directory, "tokenizer.model")
    if os.path.exists(tokenizer_path):
        from ._core import Tokenizer   # pymlm's own, already loaded by `import pymlm`
        model.tokenizer = Tokenizer.load(tokenizer_path)
    return model


# ---------------------------------------------------------------------------------------------
# self-check
# ---------------------------------------------------------------------------------------------

def _random_batch(rng: np.random.Generator, c: Config, lengths, T: int, frac: float = 0.15):
    B = len(lengths)
    ids = np.full((B, T), c.pad_id, dtype=np.int64)
    labels = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
    for b, L in enumerate(lengths):
        tokens = rng.integers(3, c.vocab_size, size=L)
        ids[b, :L] = tokens
        k = min(L, max(1, int(round(frac * L))))
        pos = rng.choice(L, size=k, replace=False)
        labels[b, pos] = tokens[pos]
        ids[b, pos] = c.mask_id
    return torch.from_numpy(ids), torch.from_numpy(labels)


def selftest() -> int:
    ok = True

    def check(name, cond, detail=""):
        nonlocal ok
        ok &= bool(cond)
        print(f"{'ok    ' if cond else 'FAILED'} {name} {detail}")

    model = MLMEncoder(Config(), seed=0)
    n = model.num_parameters()
    print(f"parameters (default config): {n:,}")
    check("parameter count is 6,861,056", n == 6_861_056)
    keys = list(model.checkpoint_state_dict())
    check("checkpoint keys", len(keys) == 2 + 9 * 6 + 1 and keys[0] == "embedding.class_embedding.weight"
          and keys[-1] == "ln_f.scale" and "mlm_head.weight" not in keys, f"({len(keys)} keys)")
    check("head tied", model.mlm_head.weight is model.embedding.class_embedding.weight)

    rng = np.random.default_rng(1234)
    ids, labels = _random_batch(rng, model.config, [40, 23, 9], 40)
    for mode in ("eval", "train"):
        model.train(mode == "train")
        torch.manual_seed(7)
        loss_full, logits = model(ids, labels)
        torch.manual_seed(7)   # dropout draws the same masks: the head has no dropout
        loss_masked, masked_logits = model.forward_masked_only(ids, labels)
        sel = labels != IGNORE_INDEX
        d_loss = abs(loss_full.item() - loss_masked.item())
        d_logits = (logits[sel] - masked_logits).abs().max().item()
        check(f"masked-only == full forward ({mode})", d_loss < 1e-5 and d_logits < 1e-5,
              f"loss {loss_full.item():.6f} vs {loss_masked.item():.6f}, |dloss| {d_loss:.2e}, "
              f"max|dlogits| {d_logits:.2e}")
    model.eval()
    loss_full, logits = model(ids, labels)
    loss_packed, packed_logits = model.forward_packed(ids, labels)
    d = (logits[labels != IGNORE_INDEX] - packed_logits).abs().max().item()
    check("packed == full forward", abs(loss_full.item() - loss_packed.item()) < 1e-5 and d < 1e-5,
          f"loss {loss_packed.item():.6f}, max|dlogits| {d:.2e}")

    # Padded rows equal the same sequences run alone (the packed form).
    with torch.no_grad():
        _, logits = model(ids)
        worst = 0.0
        for b in range(ids.shape[0]):
            L = int((ids[b] != model.config.pad_id).sum())
            _, alone = model(ids[b:b + 1, :L])
            worst = max(worst, (alone[0] - logits[b, :L]).abs().max().item())
    check("padded == per-sequence", worst < 1e-5, f"max|d| {worst:.2e}")

    # Both placements differ and both run; gradients reach every parameter.
    for placement in ("reference", "pre"):
        m = MLMEncoder(Config(vocab_size=64, dim=32, n_heads=2, n_layers=2, max_len=16,
                              dropout=0.0, norm_placement=placement), seed=3).double()
        i2, l2 = _random_batch(np.random.default_rng(5), m.config, [16, 5], 16, frac=0.3)
        loss, _ = m(i2, l2)
        loss.backward()
        none = [k for k, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        check(f"all gradients nonzero ({placement})", not none, f"loss {loss.item():.6f} {none}")

    # safetensors round trip
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.safetensors")
        save_checkpoint(model, path)
        back = load_checkpoint(path)
        same = all(torch.equal(a, b) for a, b in zip(model.checkpoint_state_dict().values(),
                                                    back.checkpoint_state_dict().values()))
        with open(path, "rb") as f:
            hlen = int.from_bytes(f.read(8), "little")
        check("safetensors round trip", same and back.mlm_head.weight is back.embedding.class_embedding.weight
              and hlen % 8 == 0, f"({os.path.getsize(path):,} bytes, header {hlen})")
    print("selftest", "passed" if ok else "FAILED")
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pymlm.torch", description=__doc__.split("\n")[0])
    ap.add_argument("--selftest", action="store_true", help="run the self-check")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.selftest:
        return selftest()
    ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
