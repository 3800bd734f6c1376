#!/usr/bin/env python3
"""The PyTorch side of bench/compare_torch.py: the project's own reference model (pymlm.torch)
trained and queried the way the C++ benchmark programs do, one measurement per process, results
as JSON. Runs on a Python where pymlm is installed (scripts/venv.sh's venv, with Debian's torch).

    torch_bench.py info  [--json F]                 torch version, BLAS library, sgemm GFLOP/s
    torch_bench.py gemm  --threads N [--json F]     sgemm GFLOP/s on a training step's shapes
    torch_bench.py train --batches FILE --threads N [--runs 1] [--foreach] [--json F]
    torch_bench.py predict --checkpoint DIR --sentence S --position P [--threads 1]
                           [--calls 300] [--warmup 30] [--json F]
    torch_bench.py fill-mask --checkpoint DIR --texts FILE --threads N [--mode batched|loop]
                             [--batch-size 64] [--repeats 3] [--json F]

train: the batches are the ones bench_train_step wrote (--export-batches; same masked ids and
labels). Each is padded to its longest sequence (right padding, key-padding mask), the head runs
only on the labelled rows (MLMEncoder.forward_masked_only), then backward, AdamW
(weight_decay 0.01) and zero_grad(set_to_none=True). Dropout 0.1 as in the reference. One
untimed pass over all batches, then --runs timed passes; tokens/s counts real (non-pad) tokens.

predict: per call, what mlm::MaskedLM::predict_mask does: tokenize (sentencepiece, the same
tokenizer.model), put [MASK] at the position, encode, head on the masked row only, softmax, top 5
over the non-control ids, decode the 5 token strings and the masked and filled texts.

fill-mask: what MaskedLM::fill_mask does for every text: tokenize ([MASK] literals become the
mask id), encode, head on the [MASK] rows, softmax, top 5 non-control ids, decode each candidate's
token string and filled sequence. `batched` (PyTorch's best case) sorts the texts by length and
runs padded batches of --batch-size; `loop` runs one text at a time.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

try:
    import pymlm.torch as ref
except ImportError as e:
    sys.exit(f"torch_bench.py: {e}: run it on a Python where pymlm is installed (the venv of "
             f"scripts/venv.sh, which sees Debian's torch)")

IGNORE = ref.IGNORE_INDEX


def stat(values):
    v = sorted(values)
    n = len(v)
    med = v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
    return {"median": med, "min": v[0], "max": v[-1]}


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


# ---- what BLAS torch runs on ---------------------------------------------------------------------

def blas_info():
    """The BLAS library mapped into this process (torch links libblas.so.3, which Debian's
    alternatives point at netlib's reference BLAS or at an optimized one), and OpenBLAS's own
    description when it is OpenBLAS."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if "/" in line else ""
            if re.search(r"lib(open)?blas|blis|mkl", os.path.basename(path)):
                libs.add(path)
    info = {"mapped": sorted(libs), "resolved": sorted({os.path.realpath(p) for p in libs})}
    for p in info["resolved"]:
        try:
            lib = ctypes.CDLL(p)
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            info["openblas_config"] = lib.openblas_get_config().decode()
            info["openblas_core"] = lib.openblas_get_corename().decode()
            break
        except (OSError, AttributeError):
            continue
    if "openblas_config" not in info:
        info["kind"] = "netlib reference BLAS" if any("/blas/" in p for p in info["resolved"]) else "unknown"
    else:
        info["kind"] = "OpenBLAS"
    return info


def sgemm_rate(m, n, k, reps=5, trans_b=False):
    a = torch.randn(m, k)
    b = torch.randn(n, k).t() if trans_b else torch.randn(k, n)
    c = a @ b
    times = []
    for _ in range(reps + 1):
        t = time.perf_counter()
        torch.matmul(a, b, out=c)
        times.append(time.perf_counter() - t)
    return 2.0 * m * n * k / stat(times[1:])["median"] * 1e-9


def step_shapes(N=4096, C=256, Fd=1024, V=8192, M=614):
    """The matrix products of a training step (forward, input and weight gradients), with counts."""
    L = 6
    fwd = [(N, 3 * C, C), (N, C, C), (N, Fd, C), (N, C, Fd)]
    return ([(s, L) for s in fwd] + [((m, k, n), L) for (m, n, k) in fwd] +
            [((n, k, m), L) for (m, n, k) in fwd] + [((M, V, C), 1), ((M, C, V), 1), ((V, C, M), 1)])


def cmd_gemm(args):
    torch.set_num_threads(args.threads)
    flop = secs = 0.0
    for (m, n, k), count in step_shapes():
        rate = sgemm_rate(m, n, k, reps=3)
        flop += 2.0 * m * n * k * count
        secs += 2.0 * m * n * k * count / (rate * 1e9)
    out = {"threads": args.threads, "step_shapes_gflops": flop / secs * 1e-9,
           "openblas_core": blas_info().get("openblas_core", "")}
    return out


def cmd_info(args):
    out = {"torch_version": torch.__version__, "default_threads": torch.get_num_threads(),
           "blas": blas_info(), "parallel_info": torch.__config__.parallel_info(),
           "config": torch.__config__.show(),
           "mkldnn": torch.backends.mkldnn.is_available(),
           "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                   "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}}
    for t in (1, 2):
        torch.set_num_threads(t)
        out[f"sgemm_1024_gflops_{t}t"] = sgemm_rate(1024, 1024, 1024)
    return out


# ---- training --------------------------------------------------------------------------------

def read_batches(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"MLMBATCH":
        raise ValueError(f"{path}: not a batch file")
    version, vocab, pad, nb = np.frombuffer(raw, "<u4", 4, 8)
    if version != 1:
        raise ValueError(f"{path}: unknown version {version}")
    pos = 24
    batches = []

    def take(n):
        nonlocal pos
        a = np.frombuffer(raw, "<i4", n, pos).astype(np.int64)
        pos += 4 * n
        return a

    for _ in range(nb):
        B, N, M = (int(x) for x in np.frombuffer(raw, "<u4", 3, pos))
        pos += 12
        offsets, tokens, rows, ids = take(B + 1), take(N), take(M), take(M)
        batches.append((offsets, tokens, rows, ids))
    return int(vocab), int(pad), batches


def pad_batch(offsets, tokens, rows, ids, pad_id):
    """The packed batch as the original's padded arrays, padded to its longest sequence."""
    lengths = np.diff(offsets)
    B, T = len(lengths), int(lengths.max())
    inp = np.full((B, T), pad_id, dtype=np.int64)
    lab = np.full((B, T), IGNORE, dtype=np.int64)
    seq = np.searchsorted(offsets, np.arange(len(tokens)), side="right") - 1
    col = np.arange(len(tokens)) - offsets[seq]
    inp[seq, col] = tokens
    lab[seq[rows], col[rows]] = ids
    return torch.from_numpy(inp), torch.from_numpy(lab)


def cmd_train(args):
    torch.set_num_threads(args.threads)
    vocab, pad, packed = read_batches(args.batches)
    config = ref.Config(vocab_size=vocab, pad_id=pad)
    batches = [pad_batch(*b, pad) for b in packed]
    real = sum(int(b[1].shape[0]) for b in packed)
    padded = sum(int(x.numel()) for x, _ in batches)
    rss_before_model = status_kib("VmRSS")
    model = ref.MLMEncoder(config, seed=1)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01,
                            foreach=True if args.foreach else None)
    rss_model = status_kib("VmRSS")

    def train_pass():
        t0 = time.perf_counter()
        for inp, lab in batches:
            loss, _ = model.forward_masked_only(inp, lab)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    train_pass()  # warm-up
    rates, cpu_rates = [], []
    for _ in range(args.runs):
        cpu0 = time.process_time()
        rates.append(real / train_pass())
        cpu_rates.append(real / (time.process_time() - cpu0))
    return {"threads": args.threads, "steps": len(batches), "runs": args.runs,
            "tokens_per_step": real / len(batches), "padded_tokens_per_step": padded / len(batches),
            "tokens_per_s": rates, "tokens_per_s_stat": stat(rates), "tokens_per_cpu_s": cpu_rates,
            "optimizer": f"torch.optim.AdamW(foreach={bool(args.foreach)})",
            "rss_before_model_kib": rss_before_model, "rss_after_model_kib": rss_model,
            "peak_rss_kib": status_kib("VmHWM")}


# ---- inference -------------------------------------------------------------------------------

class Predictor:
    """The checkpoint's model with its tokenizer, doing what mlm::MaskedLM does."""

    def __init__(self, checkpoint):
        import sentencepiece as spm
        with open(os.path.join(checkpoint, "config.json")) as f:
            self.config = ref.Config.from_json(f.read())
        self.model = ref.load_checkpoint(os.path.join(checkpoint, "model.safetensors"), self.config)
        self.model.eval()
        self.sp = spm.SentencePieceProcessor(model_file=os.path.join(checkpoint, "tokenizer.model"))
        V = self.config.vocab_size
        self.special = torch.tensor([self.sp.is_control(i) for i in range(V)], dtype=torch.bool)
        self.special[self.config.pad_id] = True
        self.special[self.config.mask_id] = True
        self.mask_id = self.config.mask_id

    def encode(self, text):
        """Ids of `text`, each literal [MASK] one mask id (the texts here have spaces around it),
        truncated to max_len."""
        ids = []
        for i, part in enumerate(text.split("[MASK]")):
            if i:
                ids.append(self.mask_id)
            ids.extend(self.sp.encode(part))
        return ids[:self.config.max_len]

    def decode(self, ids):
        """Text with [MASK] rendered as such; other control ids dropped."""
        parts, run = [], []
        for i in ids:
            if i == self.mask_id:
                parts.append(self.sp.decode(run))
                run = []
            else:
                run.append(i)
        parts.append(self.sp.decode(run))
        return " [MASK] ".join(p for p in parts).strip()

    def token_string(self, i):
        return self.sp.id_to_piece(i) if self.special[i] else self.sp.decode([i]).strip()

    def top_k(self, logits, k=5):
        """(probabilities, ids) of the k best non-control ids; softmax over the whole vocab."""
        prob = torch.softmax(logits, dim=-1)
        best = torch.topk(prob.masked_fill(self.special, -1.0), k, dim=-1)
        return best.values, best.indices

    @torch.inference_mode()
    def predict_mask(self, sentence, position):
        ids = self.encode(sentence)
        masked = list(ids)
        masked[position] = self.mask_id
        h = self.model.encode(torch.tensor([masked]))
        logits = self.model.mlm_head(h[0, position])
        probs, top = self.top_k(logits)
        top = top.tolist()
        tokens = [self.token_string(i) for i in top]
        filled = list(masked)
        filled[position] = top[0]
        return {"input_ids": ids, "top_ids": top, "tokens": tokens, "probs": probs.tolist(),
                "masked_text": self.decode(masked), "predicted_text": self.decode(filled)}

    def _candidates(self, ids, rows, probs, top):
        out = []
        for r, pos in enumerate(rows):
            filled = list(ids)
            cands = []
            for p, i in zip(probs[r].tolist(), top[r].tolist()):
                filled[pos] = i
                cands.append({"score": p, "token": i, "token_str": self.token_string(i),
                              "sequence": self.decode(filled)})
            out.append(cands)
        return out

    @torch.inference_mode()
    def fill_mask_batch(self, encoded):
        """fill-mask results for a list of id lists, in one padded forward pass."""
        B, T = len(encoded), max(len(e) for e in encoded)
        inp = torch.full((B, T), self.config.pad_id, dtype=torch.long)
        for b, e in enumerate(encoded):
            inp[b, :len(e)] = torch.tensor(e)
        h = self.model.encode(inp)
        sel = inp == self.mask_id
        probs, top = self.top_k(self.model.mlm_head(h[sel]))
        results, start = [], 0
        for e in encoded:
            rows = [i for i, x in enumerate(e) if x == self.mask_id]
            results.append(self._candidates(e, rows, probs[start:start + len(rows)],
                                            top[start:start + len(rows)]))
            start += len(rows)
        return results


def cmd_predict(args):
    torch.set_num_threads(args.threads)
    p = Predictor(args.checkpoint)
    for _ in range(args.warmup):
        r = p.predict_mask(args.sentence, args.position)
    ms = []
    cpu0 = time.process_time()
    for _ in range(args.calls):
        t0 = time.perf_counter()
        r = p.predict_mask(args.sentence, args.position)
        ms.append((time.perf_counter() - t0) * 1e3)
    cpu_ms = (time.process_time() - cpu0) * 1e3 / args.calls
    r.update({"cpu_ms_per_call": cpu_ms, "threads": args.threads, "calls": args.calls, "warmup": args.warmup,
              "num_tokens": len(r["input_ids"]), "position": args.position,
              "latency_ms": stat(ms), "peak_rss_kib": status_kib("VmHWM")})
    return r


def cmd_fill_mask(args):
    torch.set_num_threads(args.threads)
    p = Predictor(args.checkpoint)
    with open(args.texts) as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]
    n = len(texts)

    def run_pass():
        t0 = time.perf_counter()
        encoded = [p.encode(t) for t in texts]
        results = [None] * n
        if args.mode == "loop":
            for i, e in enumerate(encoded):
                results[i] = p.fill_mask_batch([e])[0]
        else:
            order = sorted(range(n), key=lambda i: len(encoded[i]))
            for s in range(0, n, args.batch_size):
                idx = order[s:s + args.batch_size]
                for i, r in zip(idx, p.fill_mask_batch([encoded[i] for i in idx])):
                    results[i] = r
        return time.perf_counter() - t0, encoded, results

    _, encoded, results = run_pass()  # warm-up
    rates, cpu_rates = [], []
    for _ in range(args.repeats):
        cpu0 = time.process_time()
        rates.append(n / run_pass()[0])
        cpu_rates.append(n / (time.process_time() - cpu0))
    return {"threads": args.threads, "mode": args.mode, "batch_size": args.batch_size,
            "texts": n, "tokens": sum(len(e) for e in encoded), "repeats": args.repeats,
            "sentences_per_s": rates, "sentences_per_s_stat": stat(rates), "sentences_per_cpu_s": cpu_rates,
            "input_ids": encoded, "top1_ids": [[c[0]["token"] for c in r] for r in results],
            "peak_rss_kib": status_kib("VmHWM")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("info", "gemm", "train", "predict", "fill-mask"):
        s = sub.add_parser(name)
        s.add_argument("--json", help="write the result here (default: print it)")
        s.add_argument("--threads", type=int, default=1)
        if name == "train":
            s.add_argument("--batches", required=True)
            s.add_argument("--runs", type=int, default=1)
            s.add_argument("--foreach", action="store_true", help="AdamW(foreach=True)")
        if name in ("predict", "fill-mask"):
            s.add_argument("--checkpoint", required=True)
        if name == "predict":
            s.add_argument("--sentence", required=True)
            s.add_argument("--position", type=int, required=True)
            s.add_argument("--calls", type=int, default=300)
            s.add_argument("--warmup", type=int, default=30)
        if name == "fill-mask":
            s.add_argument("--texts", required=True)
            s.add_argument("--mode", choices=("batched", "loop"), default="batched")
            s.add_argument("--batch-size", type=int, default=64)
            s.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    fn = {"info": cmd_info, "gemm": cmd_gemm, "train": cmd_train, "predict": cmd_predict,
          "fill-mask": cmd_fill_mask}[args.cmd]
    out = fn(args)
    out["program"] = "torch_bench"
    out["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    text = json.dumps(out, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
