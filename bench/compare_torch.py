#!/usr/bin/env python3
"""mlm against the project's own PyTorch reference model, side by side in one run.

    /usr/bin/python3 bench/compare_torch.py            # the full benchmark (5 rounds)
    /usr/bin/python3 bench/compare_torch.py --quick    # a fast check of the whole pipeline
    /usr/bin/python3 bench/compare_torch.py --json docs/benchmark-results.json \\
        --plot docs/benchmark.png --markdown docs/benchmark-table.md --readme README.md
    /usr/bin/python3 bench/compare_torch.py --from-json docs/benchmark-results.json \\
        --markdown docs/benchmark-table.md --readme README.md [--check]   # the text alone

The driver needs only the standard library; the PyTorch side runs on --python, by default the
venv of scripts/venv.sh (Debian's Python and torch, with pymlm installed for pymlm.torch).

What it does, in order (see docs/benchmarks.md):
 1. Makes sure PyTorch has an optimized BLAS: Debian's python3-torch calls libblas.so.3, which is
    netlib's reference BLAS unless another package provides it. If it is, installs
    libopenblas0-openmp with apt-get (root only; --no-blas-install skips it and warns).
 2. Builds bench_train_step and bench_infer into --build-dir (default build-bench).
 3. Prepares, once per data file (cached in --work): a unigram-8192 tokenizer trained on the data
    file by the C++ code, the training batches written by bench_train_step (--export-batches: the
    masked ids, offsets and labels both sides train on), an untrained reference-size checkpoint
    written by bench_infer (both sides load it), and 256 validation sentences with one word
    replaced by [MASK].
 4. Runs --runs rounds; each round runs every measurement once per side and variant, each in a
    fresh process, alternating sides (the order flips every round). Peak resident memory is the
    ru_maxrss of each process (os.wait4). Medians of the rounds, with min-max.
 5. Prints the table, and writes --json (all figures and per-run values), --markdown, --plot and
    the speed table of --readme (between its markers). Nothing else restates the figures: text
    that quotes them is generated from the JSON (--from-json), and a ctest test checks it is.

The PyTorch processes get OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from their environment
(both can hold OpenBLAS to slower kernels); with --openblas-coretype best (the default) a short
probe of sgemm on a training step's shapes picks the fastest OpenBLAS kernel set for them, so
PyTorch runs in its best configuration. Every child gets OMP_NUM_THREADS = its thread count; the
PyTorch side also calls torch.set_num_threads.
"""
from __future__ import annotations

import argparse
import datetime
import difflib
import json
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PREDICT_SENTENCE = ("The old stone bridge across the river was rebuilt in 1875 after a winter "
                    "flood destroyed it.")
CORETYPES = ["Haswell", "Zen", "SkylakeX", "Cooperlake"]  # besides OpenBLAS's own choice
NETLIB_HINT = "/blas/libblas.so"


def venv_python():
    """The Python of scripts/venv.sh's venv ($MLM_VENV, default .venv in the repository): Debian's
    Python with its torch, and pymlm installed, whose pymlm.torch is the PyTorch side's model."""
    venv = os.environ.get("MLM_VENV") or ".venv"
    return os.path.join(venv if os.path.isabs(venv) else os.path.join(REPO, venv), "bin", "python")


def log(msg=""):
    print(msg, flush=True)


def run_quiet(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def stat(values):
    v = sorted(values)
    n = len(v)
    if n == 0:
        return None
    med = v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
    return {"median": med, "min": v[0], "max": v[-1], "n": n}


# ---- the machine ---------------------------------------------------------------------------------

def machine_info():
    info = {"hostname_kind": platform.machine(), "kernel": platform.release(),
            "python": sys.version.split()[0]}
    out = run_quiet(["lscpu"]).stdout if shutil.which("lscpu") else ""
    fields = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    info["cpu"] = fields.get("Model name", platform.processor())
    info["cpus"] = int(fields.get("CPU(s)", os.cpu_count() or 0))
    info["threads_per_core"] = fields.get("Thread(s) per core")
    info["hypervisor"] = fields.get("Hypervisor vendor", "none")
    info["caches"] = {k: fields[k] for k in ("L1d cache", "L2 cache", "L3 cache") if k in fields}
    flags = fields.get("Flags", "").split()
    info["simd"] = [f for f in ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16",
                                "avx512_vnni", "amx_tile") if f in flags]
    with open("/proc/meminfo") as f:
        mem = f.readline().split()
    info["memory_gib"] = round(int(mem[1]) / 2 ** 20, 1)
    cxx = run_quiet(["c++", "--version"]).stdout.splitlines() if shutil.which("c++") else []
    info["compiler"] = cxx[0] if cxx else "?"
    macros = "/usr/include/eigen3/Eigen/src/Core/util/Macros.h"
    if os.path.exists(macros):
        text = open(macros).read()
        v = [re.search(rf"#define EIGEN_{k}_VERSION (\d+)", text) for k in ("WORLD", "MAJOR", "MINOR")]
        info["eigen"] = ".".join(m.group(1) for m in v if m)
    return info


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ---- BLAS for PyTorch ----------------------------------------------------------------------------

def blas_alternative():
    r = run_quiet(["update-alternatives", "--query", "libblas.so.3-x86_64-linux-gnu"])
    m = re.search(r"^Value: (.*)$", r.stdout, re.M)
    return m.group(1).strip() if m else None


def ensure_blas(args):
    current = blas_alternative()
    log(f"libblas.so.3 (what Debian's PyTorch calls) -> {current}")
    if current and NETLIB_HINT not in current:
        return {"alternative": current, "installed_now": False}
    if args.no_blas_install:
        log("WARNING: libblas.so.3 is netlib's reference BLAS and --no-blas-install was given: "
            "PyTorch will run far below its best")
        return {"alternative": current, "installed_now": False}
    if os.geteuid() != 0:
        sys.exit("libblas.so.3 is netlib's reference BLAS; run as root so that this script can "
                 "`apt-get install libopenblas0-openmp`, or install it yourself")
    log("installing an optimized BLAS for PyTorch: apt-get install -y libopenblas0-openmp "
        "(OpenBLAS, OpenMP flavour: its threads follow torch.set_num_threads)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = run_quiet(["apt-get", "install", "-y", "libopenblas0-openmp"], env=env)
    if r.returncode != 0:
        run_quiet(["apt-get", "update"], env=env)
        r = run_quiet(["apt-get", "install", "-y", "libopenblas0-openmp"], env=env)
    if r.returncode != 0:
        sys.exit("apt-get install libopenblas0-openmp failed:\n" + r.stdout[-2000:])
    current = blas_alternative()
    log(f"libblas.so.3 -> {current}")
    return {"alternative": current, "installed_now": True}


TORCH_EXTRA_ENV = {}  # --torch-env KEY=VALUE


def torch_env(coretype=None):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env.pop("OPENBLAS_NUM_THREADS", None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    env.update(TORCH_EXTRA_ENV)
    return env


# ---- running one measurement -----------------------------------------------------------------------

class Runner:
    def __init__(self, work):
        self.work = work
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.count = 0

    def run(self, name, cmd, env, threads):
        """Runs cmd (which writes JSON to the path in {json}) in its own process; returns the
        parsed JSON plus the process's peak RSS (ru_maxrss) and wall time."""
        self.count += 1
        stem = f"{self.count:03d}-{name}"
        jpath = os.path.join(self.logs, stem + ".json")
        lpath = os.path.join(self.logs, stem + ".log")
        cmd = [c.replace("{json}", jpath) for c in cmd]
        env = dict(env, OMP_NUM_THREADS=str(threads))
        t0 = time.perf_counter()
        with open(lpath, "w") as out:
            out.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
            out.flush()
            p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.work)
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            with open(lpath) as f:
                tail = f.read()[-3000:]
            sys.exit(f"{name} failed (exit {p.returncode}), log {lpath}:\n{tail}")
        with open(jpath) as f:
            result = json.load(f)
        result["ru_maxrss_kib_parent"] = usage.ru_maxrss  # KiB on Linux
        result["cpu_s"] = usage.ru_utime + usage.ru_stime
        result["wall_s"] = wall
        result["log"] = os.path.relpath(lpath, REPO)
        return result


# ---- preparation -------------------------------------------------------------------------------

def file_key(path):
    st = os.stat(path)
    return f"{os.path.realpath(path)}:{st.st_size}:{int(st.st_mtime)}"


def make_fill_texts(valid_path, n, max_words=40):
    """n sentences of the validation file, in file order, each with one word (letters only, not
    the last word, chosen with a fixed seed) replaced by [MASK]."""
    import lzma
    opener = lzma.open if valid_path.endswith(".xz") else open
    rng = random.Random(1234)
    texts = []
    with opener(valid_path, "rt", encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if not 6 <= len(words) <= max_words or "[MASK]" in line:
                continue
            choices = [i for i, w in enumerate(words[:-1]) if w.isalpha() and w.isascii()]
            if not choices:
                continue
            words[rng.choice(choices)] = "[MASK]"
            texts.append(" ".join(words))
            if len(texts) == n:
                break
    if len(texts) < n:
        sys.exit(f"{valid_path}: only {len(texts)} usable sentences, {n} needed")
    return texts


def prepare(args, bins):
    work = args.work
    os.makedirs(work, exist_ok=True)
    manifest_path = os.path.join(work, "prepared.json")
    key = {"data": file_key(args.data), "steps": args.steps, "fill_texts": args.fill_texts,
           "valid": file_key(args.valid), "batch_tokens": args.batch_tokens, "version": 1}
    old = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            old = json.load(f)
    paths = {k: os.path.join(work, v) for k, v in
             {"tokenizer": "tokenizer.model", "real": "batches-real.bin", "fixed": "batches-32x128.bin",
              "checkpoint": "checkpoint", "fill_texts": "fill-mask-texts.txt"}.items()}
    if old.get("key") == key and all(os.path.exists(p) for p in paths.values()):
        log(f"prepared inputs: reusing {work} (same data file, steps and texts)")
        return paths, old["info"]
    t0 = time.perf_counter()
    tok_key = file_key(args.data)
    if old.get("tokenizer_key") != tok_key or not os.path.exists(paths["tokenizer"]):
        log(f"training the tokenizer on {args.data} (C++, unigram 8192; a minute or two) ...")
        tok_args = ["--save-tokenizer", paths["tokenizer"]]
    else:
        log("reusing the tokenizer in the work directory")
        tok_args = ["--tokenizer", paths["tokenizer"]]
    common = [bins["train"], "--data", args.data, "--steps", str(args.steps), "--runs", "0"]
    r1 = run_quiet(common + tok_args + ["--batch-tokens", str(args.batch_tokens),
                                        "--export-batches", paths["real"]])
    r2 = run_quiet(common + ["--tokenizer", paths["tokenizer"], "--fixed", "32x128",
                             "--export-batches", paths["fixed"]]) if r1.returncode == 0 else r1
    r3 = run_quiet([bins["infer"], "--make-checkpoint", paths["checkpoint"], "--tokenizer",
                    paths["tokenizer"], "--seed", "0"]) if r2.returncode == 0 else r2
    if r3.returncode != 0:
        sys.exit("preparing the inputs failed:\n" + r1.stdout + r2.stdout + r3.stdout)
    texts = make_fill_texts(args.valid, args.fill_texts)
    with open(paths["fill_texts"], "w") as f:
        f.write("\n".join(texts) + "\n")
    info = {"real_batches": r1.stdout.strip().splitlines()[-1],
            "fixed_batches": r2.stdout.strip().splitlines()[-1]}
    with open(manifest_path, "w") as f:
        json.dump({"key": key, "tokenizer_key": tok_key, "info": info}, f, indent=1)
    log(f"prepared inputs in {time.perf_counter() - t0:.0f} s")
    return paths, info


def choose_coretype(args, runner):
    """OpenBLAS kernel set for the PyTorch side: its own detection, or the fastest on the step's
    shapes (--openblas-coretype best)."""
    if args.openblas_coretype not in ("best", "auto"):
        return args.openblas_coretype, {}
    if args.openblas_coretype == "auto":
        return None, {}
    probe = {}
    for ct in [None] + CORETYPES:
        r = runner.run(f"probe-openblas-{ct or 'auto'}",
                       [args.python, os.path.join(HERE, "torch_bench.py"), "gemm", "--threads", "1",
                        "--json", "{json}"], torch_env(ct), 1)
        probe[ct or "auto"] = {"gflops": r["step_shapes_gflops"], "core": r["openblas_core"]}
        log(f"  OpenBLAS {('OPENBLAS_CORETYPE=' + ct) if ct else 'own detection':<30} "
            f"kernels {r['openblas_core']:<11} {r['step_shapes_gflops']:6.1f} GFLOP/s on a step's shapes (1 thread)")
    best = max(probe, key=lambda k: probe[k]["gflops"])
    # Keep OpenBLAS's own choice unless other kernels are clearly (> 3%) faster.
    if probe[best]["core"] == probe["auto"]["core"] or probe[best]["gflops"] < 1.03 * probe["auto"]["gflops"]:
        best = "auto"
    return (None if best == "auto" else best), probe


# ---- the measurements ----------------------------------------------------------------------------

def plan(args, bins, paths, coretype, predict_position):
    py = [args.python, os.path.join(HERE, "torch_bench.py")]
    tenv = torch_env(coretype)
    cenv = dict(os.environ)
    groups = {}

    def train_jobs(batches):
        jobs = [(name, t, [bins["train"], "--batches", batches, "--threads", str(t), "--runs", "1",
                           "--gemm", "0", "--json", "{json}"], cenv) for name, t in (("mlm", 2), ("mlm-1t", 1))]
        for t in (1, 2):
            jobs.append((f"torch-{t}t", t, py + ["train", "--batches", batches, "--threads", str(t),
                                                   "--json", "{json}"] + (["--foreach"] if args.foreach else []),
                         tenv))
        return jobs

    groups["train_32x128"] = train_jobs(paths["fixed"])
    groups["train_wiki"] = train_jobs(paths["real"])
    groups["step_vs_gemm"] = [("mlm", 2, [bins["train"], "--batches", paths["real"], "--threads", "2", "--runs",
                                          "1", "--gemm", "1", "--json", "{json}"], cenv)]
    pc = ["--calls", str(args.calls), "--warmup", str(max(5, args.calls // 10)), "--json", "{json}"]
    groups["predict_mask"] = [
        ("mlm", 1, [bins["infer"], "--checkpoint", paths["checkpoint"], "--predict", PREDICT_SENTENCE,
                    "--position", str(predict_position), "--threads", "1"] + pc, cenv),
        ("torch-1t", 1, py + ["predict", "--checkpoint", paths["checkpoint"], "--sentence", PREDICT_SENTENCE,
                              "--position", str(predict_position), "--threads", "1"] + pc, tenv)]
    fc = ["--repeats", str(args.fill_repeats), "--json", "{json}"]
    fill = []
    for mode in ("batched", "parallel", "sequential"):
        fill.append((f"mlm-{mode}", 2, [bins["infer"], "--checkpoint", paths["checkpoint"], "--fill-mask",
                                        paths["fill_texts"], "--mode", mode, "--threads", "2"] + fc, cenv))
    for mode in ("batched", "loop"):
        for t in (1, 2):
            fill.append((f"torch-{mode}-{t}t", t, py + ["fill-mask", "--checkpoint", paths["checkpoint"], "--texts",
                                                        paths["fill_texts"], "--mode", mode, "--threads", str(t)]
                         + fc, tenv))
    groups["fill_mask"] = fill
    return groups


def interleave(jobs, reverse):
    """mlm and PyTorch jobs alternating: A B A B ..., reversed in odd rounds."""
    mlm = [j for j in jobs if j[0].startswith("mlm")]
    other = [j for j in jobs if not j[0].startswith("mlm")]
    out = []
    while mlm or other:
        if mlm:
            out.append(mlm.pop(0))
        if other:
            out.append(other.pop(0))
    return out[::-1] if reverse else out


FIGURE = {  # group -> (JSON field of the figure, unit)
    "train_32x128": ("tokens_per_s", "tokens/s"),
    "train_wiki": ("tokens_per_s", "tokens/s"),
    "step_vs_gemm": ("step_over_gemm", "fraction"),
    "predict_mask": ("latency_ms", "ms"),
    "fill_mask": ("sentences_per_s", "sentences/s"),
}


def figure_of(group, result):
    field = FIGURE[group][0]
    if field == "latency_ms":
        return result["latency_ms"]["median"]
    if field == "step_over_gemm":
        return result["step_over_gemm"][0]
    v = result[field]
    return stat(v)["median"] if isinstance(v, list) else v


def measure(args, groups, runner):
    results = {g: {name: [] for name, *_ in jobs} for g, jobs in groups.items()}
    for r in range(args.runs):
        log(f"round {r + 1}/{args.runs} (load average {loadavg()[0]:.2f})")
        for g, jobs in groups.items():
            line = []
            for name, threads, cmd, env in interleave(jobs, reverse=r % 2 == 1):
                res = runner.run(f"{g}-{name}-r{r}", cmd, env, threads)
                results[g][name].append(res)
                line.append(f"{name} {figure_of(g, res):.4g}")
            log(f"  {g:<13} " + ", ".join(line) + f"  [{FIGURE[g][1]}]")
    return results


# ---- the summary -------------------------------------------------------------------------------

def summarize(results):
    s = {}
    for g, variants in results.items():
        s[g] = {}
        for name, runs in variants.items():
            vals = [figure_of(g, x) for x in runs]
            entry = {"figure": FIGURE[g][1], "runs": vals, "stat": stat(vals),
                     "peak_rss_mib": stat([x["ru_maxrss_kib_parent"] / 1024 for x in runs]),
                     "process_cpu_s": [round(x["cpu_s"], 2) for x in runs],
                     "process_wall_s": [round(x["wall_s"], 2) for x in runs]}
            for k in ("tokens_per_cpu_s", "sentences_per_cpu_s"):
                if k in runs[0]:
                    entry[k] = stat([stat(x[k])["median"] for x in runs])
            if "cpu_ms_per_call" in runs[0]:
                entry["cpu_ms_per_call"] = stat([x["cpu_ms_per_call"] for x in runs])
            x0 = runs[0]
            for k in ("tokens_per_step", "padded_tokens_per_step", "sequences_per_step", "flops_per_token",
                      "attention_flop_fraction", "num_tokens", "texts", "tokens", "optimizer", "batches"):
                if k in x0:
                    entry[k] = x0[k]
            if g == "step_vs_gemm":
                entry["gemm_gflops"] = stat([x["gemm_gflops"][0] for x in runs])
                entry["step_tokens_per_s"] = stat([x["tokens_per_s"][0] for x in runs])
                entry["step_gflops"] = stat([x["step_gflops"][0] for x in runs])
            entry["logs"] = [x["log"] for x in runs]
            s[g][name] = entry
    return s


def best(variants, prefix, higher=True):
    cands = {k: v for k, v in variants.items() if k.startswith(prefix)}
    pick = (max if higher else min)(cands, key=lambda k: cands[k]["stat"]["median"])
    return pick, cands[pick]


def fmt(st, digits=0, scale=1.0, pct=False):
    if st is None:
        return "-"
    m, lo, hi = st["median"] * scale, st["min"] * scale, st["max"] * scale
    u = "%" if pct else ""
    return f"{m:,.{digits}f}{u} ({lo:,.{digits}f}-{hi:,.{digits}f})"


def build_table(s):
    rows = []

    def add(key, what, mlm, t1, t2, ratio, target, ok, note=""):
        rows.append({"key": key, "what": what, "mlm": mlm, "torch_1t": t1, "torch_2t": t2,
                     "ratio": None if ratio is None else round(ratio, 3),
                     "target": target, "pass": ok, "note": note})

    for key, g, what, target in (("a.i", "train_32x128", "training, 32x128 full-length rows [real tokens/s]", 1.5),
                                 ("a.ii", "train_wiki", "training, Wikipedia ~4k-token batches [real tokens/s]", 2.0)):
        v = s[g]
        bname, b = best(v, "torch")
        ratio = v["mlm"]["stat"]["median"] / b["stat"]["median"]
        m1 = v["mlm-1t"]["stat"]["median"]
        note = (f"mlm on 2 threads; PyTorch best: {bname}; mlm on 1 thread {fmt(v['mlm-1t']['stat'])}, "
                f"{m1 / v['torch-1t']['stat']['median']:.2f}x PyTorch on 1 thread")
        note += ("; real tokens per CPU-second (the process's CPU time, all threads): mlm "
                 f"{fmt(v['mlm']['tokens_per_cpu_s'])} on 2 threads, {fmt(v['mlm-1t']['tokens_per_cpu_s'])} on 1; "
                 f"PyTorch {fmt(v['torch-1t']['tokens_per_cpu_s'])} on 1, {fmt(v['torch-2t']['tokens_per_cpu_s'])} on 2")
        if "padded_tokens_per_step" in b:
            note += (f"; {v['mlm'].get('tokens_per_step', 0):,.0f} real tokens per step, PyTorch pads to "
                     f"{b['padded_tokens_per_step']:,.0f}")
        add(key, what, fmt(v["mlm"]["stat"]), fmt(v["torch-1t"]["stat"]), fmt(v["torch-2t"]["stat"]),
            ratio, f">= {target}x", ratio >= target, note)

    v = s["predict_mask"]
    ratio = v["torch-1t"]["stat"]["median"] / v["mlm"]["stat"]["median"]
    add("b.lat", f"predict_mask latency, {v['mlm'].get('num_tokens', '?')}-token sentence, 1 thread [ms]",
        fmt(v["mlm"]["stat"], 2), fmt(v["torch-1t"]["stat"], 2), "-", ratio, ">= 5x faster", ratio >= 5.0,
        "median latency of each process's calls, then the median over rounds; CPU time per call: mlm "
        f"{fmt(v['mlm']['cpu_ms_per_call'], 2)} ms, PyTorch {fmt(v['torch-1t']['cpu_ms_per_call'], 2)} ms")

    v = s["fill_mask"]
    mname, m = best(v, "mlm")
    b1name, b1 = best({k: x for k, x in v.items() if k.endswith("-1t")}, "torch")
    b2name, b2 = best({k: x for k, x in v.items() if k.endswith("-2t")}, "torch")
    tb = b1 if b1["stat"]["median"] >= b2["stat"]["median"] else b2
    ratio = m["stat"]["median"] / tb["stat"]["median"]
    add("b.thr", f"fill-mask throughput, {m.get('texts', '?')} sentences [sentences/s]",
        fmt(m["stat"], 1), fmt(b1["stat"], 1), fmt(b2["stat"], 1), ratio, ">= 3x", ratio >= 3.0,
        f"mlm: {mname} (2 threads); PyTorch: {b1name} / {b2name}; sentences per CPU-second: mlm "
        f"{fmt(m['sentences_per_cpu_s'], 1)}, PyTorch {fmt(b1['sentences_per_cpu_s'], 1)} / "
        f"{fmt(b2['sentences_per_cpu_s'], 1)}")

    v = s["train_wiki"]
    bname, _ = best(v, "torch")
    mm = v["mlm"]["peak_rss_mib"]
    tm = v[bname]["peak_rss_mib"]
    ratio = tm["median"] / mm["median"]
    add("c", "peak resident memory of a.ii [MiB]", fmt(mm), fmt(v["torch-1t"]["peak_rss_mib"]),
        fmt(v["torch-2t"]["peak_rss_mib"]), ratio, "<= PyTorch's", mm["median"] <= tm["median"],
        f"whole process (ru_maxrss); ratio = PyTorch ({bname}) / mlm")

    g = s["step_vs_gemm"]["mlm"]
    fpt = g.get("flops_per_token", 0)
    gemm = g["gemm_gflops"]["median"] * 1e9
    tw = s["train_wiki"]
    tbn, tb = best(tw, "torch")
    torch_frac = tb["stat"]["median"] * fpt / gemm if gemm else None
    add("d", "training step / Eigen GEMM rate on the same shapes", fmt(g["stat"], 0, 100, pct=True),
        "-" if tbn != "torch-1t" else f"{100 * torch_frac:.0f}% (same FLOP count)",
        "-" if tbn != "torch-2t" else f"{100 * torch_frac:.0f}% (same FLOP count)",
        None, "report", None,
        f"GEMM rate {fmt(g['gemm_gflops'], 1)} GFLOP/s (2 threads, in the same process); a step does "
        f"{fpt / 1e6:.1f} MFLOP per real token; mlm step {fmt(g['step_gflops'], 1)} GFLOP/s")
    return rows


def print_table(rows):
    head = ["", "measurement", "mlm", "PyTorch 1 thread", "PyTorch 2 threads", "ratio", "target", "pass"]
    body = [[r["key"], r["what"], r["mlm"], r["torch_1t"], r["torch_2t"],
             "-" if r["ratio"] is None else f"{r['ratio']:.2f}x", r["target"],
             "-" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")] for r in rows]
    widths = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head))]
    sep = "  "
    log(sep.join(h.ljust(w) for h, w in zip(head, widths)))
    log(sep.join("-" * w for w in widths))
    for b in body:
        log(sep.join(str(x).ljust(w) for x, w in zip(b, widths)))
    log()
    for r in rows:
        if r["note"]:
            log(f"  {r['key']}: {r['note']}")


def markdown_table(rows):
    lines = ["| | measurement | mlm | PyTorch, 1 thread | PyTorch, 2 threads | ratio | target | |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        ok = "" if r["pass"] is None else ("pass" if r["pass"] else "**fail**")
        lines.append(f"| {r['key']} | {r['what']} | {r['mlm']} | {r['torch_1t']} | {r['torch_2t']} | {ratio} | "
                     f"{r['target']} | {ok} |")
    lines.append("")
    lines += [f"- {r['key']}: {r['note']}" for r in rows if r["note"]]
    return "\n".join(lines) + "\n"


# The README's speed table sits between these lines; --readme rewrites it from the results JSON.
README_BEGIN = "<!-- generated by bench/compare_torch.py --readme from its results JSON: do not edit -->"
README_END = "<!-- end of the generated speed table -->"


def readme_table(doc):
    """The README's speed table: the headline rows of the results' table with each side's
    median (PyTorch's better thread count) and the ratio, as markdown between the markers."""
    s = doc["measurements"]
    rows = {r["key"]: r for r in doc["table"]}

    def median(cell):   # "4,765 (4,308-4,934)" -> "4,765"
        return cell.split(" (")[0]

    def label_unit(what):   # "training, 32x128 full-length rows [real tokens/s]"
        label, _, unit = what.rpartition(" [")
        return label, unit.rstrip("]")

    machine = doc["machine"]
    out = [README_BEGIN,
           f"Medians of {doc['settings']['runs']} rounds on {doc['generated'][:10]}, {machine['cpus']} cores of "
           f"an {machine['cpu']}{' under ' + machine['hypervisor'] if machine.get('hypervisor') else ''}:",
           "",
           "| | mlm | PyTorch (best of 1 and 2 threads) | mlm is |",
           "| --- | --- | --- | --- |"]
    for key, group, label in (("a.ii", "train_wiki", None), ("a.i", "train_32x128", None),
                              ("b.lat", "predict_mask", None), ("b.thr", "fill_mask", None),
                              ("c", "train_wiki", "peak resident memory while training on the Wikipedia batches")):
        r = rows[key]
        what, unit = label_unit(r["what"])
        if label is None:
            label = what + ("" if "thread" in what else ", 2 threads")
        torch_col = "torch_1t" if best(s[group], "torch")[0].endswith("-1t") else "torch_2t"
        torch_unit = f" {unit}" if unit in ("ms", "MiB") else ""
        word = "smaller" if key == "c" else "faster"
        out.append(f"| {label} | {median(r['mlm'])} {unit} | {median(r[torch_col])}{torch_unit} | "
                   f"{r['ratio']:.2f}x {word} |")
    out += [""] + textwrap.wrap(
        f"A whole training step (forward, backward, AdamW) runs at {median(rows['d']['mlm'])} of the "
        "rate of Eigen's GEMM alone on the step's own matrix shapes, in the same process.", 100)
    out.append(README_END)
    return "\n".join(out) + "\n"


def with_readme_table(text, doc, path):
    """`text` (the README) with the block between the markers replaced by readme_table(doc)."""
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise SystemExit(f"{path}: no generated speed table (the lines {README_BEGIN!r} and "
                         f"{README_END!r}) to replace")
    return text[:begin] + readme_table(doc) + text[end + len(README_END) + 1:]


def write_or_check(path, content, check):
    """Writes `content` to `path`, or with `check` compares them; returns False when they differ."""
    if not check:
        with open(path, "w") as f:
            f.write(content)
        return True
    with open(path) as f:
        old = f.read()
    if old == content:
        return True
    log(f"{path} differs from what the results give (regenerate it with --from-json):")
    log("".join(difflib.unified_diff(old.splitlines(True), content.splitlines(True), path, "generated")))
    return False


def text_from_json(args):
    """--from-json: the text that restates the results (--markdown, --readme), from a results JSON
    and without measuring anything; with --check, compared instead of written."""
    with open(args.from_json) as f:
        doc = json.load(f)
    if not (args.markdown or args.readme):
        raise SystemExit("--from-json: give --markdown and/or --readme")
    ok = True
    if args.markdown:
        ok &= write_or_check(args.markdown, markdown_table(doc["table"]), args.check)
    if args.readme:
        with open(args.readme) as f:
            ok &= write_or_check(args.readme, with_readme_table(f.read(), doc, args.readme), args.check)
    if ok:
        log(f"{'checked' if args.check else 'wrote'} the text from {args.from_json}: "
            + ", ".join(p for p in (args.markdown, args.readme) if p))
    return 0 if ok else 1


def repository_relative(obj, corpus):
    """`obj` (the results) with the repository's path and the corpus's directory left out of its
    strings ("build-bench/...", "$MLM_DATA/..."), so the results name no path of this machine."""
    if isinstance(obj, dict):
        return {k: repository_relative(v, corpus) for k, v in obj.items()}
    if isinstance(obj, list):
        return [repository_relative(v, corpus) for v in obj]
    if isinstance(obj, str):
        if corpus:
            obj = obj.replace(os.path.abspath(corpus) + os.sep, "$MLM_DATA" + os.sep)
        return obj.replace(REPO + os.sep, "")
    return obj


def check_same_inputs(results):
    """Both sides saw the same token ids and (same weights) predict the same tokens."""
    out = {}
    p = results["predict_mask"]
    a, b = p["mlm"][0], p["torch-1t"][0]
    out["predict_ids_equal"] = a["input_ids"] == b["input_ids"]
    out["predict_top5_equal"] = a["top_ids"] == b["top_ids"]
    out["predict_texts_equal"] = (a["masked_text"], a["predicted_text"]) == (b["masked_text"], b["predicted_text"])
    f = results["fill_mask"]
    m = f["mlm-parallel"][0]
    for name, runs in f.items():
        x = runs[0]
        same_ids = sum(u == v for u, v in zip(m["input_ids"], x["input_ids"]))
        same_top = sum(u == v for u, v in zip(m["top1_ids"], x["top1_ids"]))
        out[f"fill_{name}"] = f"ids equal {same_ids}/{len(m['input_ids'])}, top-1 equal {same_top}/{len(m['top1_ids'])}"
    return out


# ---- main ------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help="a fast check of the pipeline: 2 rounds, 2 steps, fewer calls and texts")
    ap.add_argument("--runs", type=int, help="rounds (default 5; --quick 2)")
    ap.add_argument("--steps", type=int, help="training batches per pass (default 6; --quick 2)")
    ap.add_argument("--calls", type=int, help="predict_mask calls per process (default 300; --quick 40)")
    ap.add_argument("--fill-texts", type=int, help="fill-mask sentences (default 256; --quick 64)")
    ap.add_argument("--fill-repeats", type=int, help="timed fill-mask passes per process (default 3; --quick 1)")
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--data", default=None,
                    help="training sentences (default $MLM_DATA/wiki-sentences.train-100k.txt when "
                         "MLM_DATA names the full corpus's directory, else the bundled "
                         "data/wiki-train-30k.txt.xz)")
    ap.add_argument("--valid", default=None,
                    help="sentences for fill-mask (default $MLM_DATA/wiki-sentences.valid.txt, "
                         "else data/wiki-valid-2k.txt)")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build-bench"))
    ap.add_argument("--work", default=None, help="work directory (default BUILD_DIR/compare)")
    ap.add_argument("--no-build", action="store_true", help="use the programs already in --build-dir")
    ap.add_argument("--no-blas-install", action="store_true")
    ap.add_argument("--python", default=venv_python(),
                    help="Python with torch and pymlm installed, for the PyTorch side (default: "
                         "the venv of scripts/venv.sh, %(default)s)")
    ap.add_argument("--openblas-coretype", default="best",
                    help="PyTorch side: best (probe, default), auto (OpenBLAS's own detection) or a name")
    ap.add_argument("--foreach", action="store_true", help="PyTorch side: AdamW(foreach=True)")
    ap.add_argument("--torch-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the PyTorch processes (e.g. ATEN_CPU_CAPABILITY=avx512)")
    ap.add_argument("--json", help="results file (default WORK/results.json)")
    ap.add_argument("--markdown", help="markdown table (default WORK/results.md)")
    ap.add_argument("--plot", help="PNG plot (default WORK/benchmark.png)")
    ap.add_argument("--readme", help="also rewrite the speed table of this README (README.md)")
    ap.add_argument("--from-json", metavar="RESULTS",
                    help="measure nothing: write --markdown and --readme from this results file")
    ap.add_argument("--check", action="store_true",
                    help="with --from-json: exit 1 if --markdown or --readme differ from what it gives")
    args = ap.parse_args(argv)
    if args.from_json:
        return text_from_json(args)
    if args.check:
        ap.error("--check goes with --from-json")

    for kv in args.torch_env:
        k, sep, v = kv.partition("=")
        if not sep:
            ap.error(f"--torch-env {kv}: expected KEY=VALUE")
        TORCH_EXTRA_ENV[k] = v
    q = args.quick
    args.runs = args.runs or (2 if q else 5)
    args.steps = args.steps or (2 if q else 6)
    args.calls = args.calls or (40 if q else 300)
    args.fill_texts = args.fill_texts or (64 if q else 256)
    args.fill_repeats = args.fill_repeats or (1 if q else 3)
    corpus = os.environ.get("MLM_DATA")   # the full corpus (data/README.md), when it is here
    if args.data is None:
        p = os.path.join(corpus, "wiki-sentences.train-100k.txt") if corpus else ""
        args.data = p if os.path.exists(p) else os.path.join(REPO, "data", "wiki-train-30k.txt.xz")
    if args.valid is None:
        p = os.path.join(corpus, "wiki-sentences.valid.txt") if corpus else ""
        args.valid = p if os.path.exists(p) else os.path.join(REPO, "data", "wiki-valid-2k.txt")
    if not os.access(args.python, os.X_OK):
        ap.error(f"--python {args.python} does not exist: the PyTorch side imports pymlm.torch, so it "
                 f"runs on a Python where pymlm is installed (make the venv: bash scripts/venv.sh)")
    args.data, args.valid = os.path.abspath(args.data), os.path.abspath(args.valid)
    args.build_dir = os.path.abspath(args.build_dir)
    args.work = os.path.abspath(args.work or os.path.join(args.build_dir, "compare"))
    out_json = args.json or os.path.join(args.work, "results.json")
    out_md = args.markdown or os.path.join(args.work, "results.md")
    out_png = args.plot or os.path.join(args.work, "benchmark.png")
    started = datetime.datetime.now().astimezone()
    load_start = loadavg()

    log(f"mlm vs PyTorch reference, {'QUICK check (noisy, few runs)' if q else 'full benchmark'}: "
        f"{args.runs} rounds, {args.steps} training batches per pass")
    machine = machine_info()
    log(f"machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['memory_gib']} GiB, "
        f"SIMD {' '.join(machine['simd'])}; load average {load_start}")
    if load_start[0] > 0.5:
        log("WARNING: the machine is not idle; the figures will be noisy")
    blas = ensure_blas(args)

    bins = {"train": os.path.join(args.build_dir, "bench_train_step"),
            "infer": os.path.join(args.build_dir, "bench_infer")}
    if not args.no_build:
        log(f"building bench_train_step and bench_infer in {args.build_dir} ...")
        for cmd in (["cmake", "-S", REPO, "-B", args.build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                     "-DMLM_BUILD_TESTS=OFF"],
                    ["cmake", "--build", args.build_dir, "-j2", "--target", "bench_train_step", "bench_infer"]):
            r = run_quiet(cmd)
            if r.returncode != 0:
                sys.exit(" ".join(cmd) + " failed:\n" + r.stdout[-4000:])
    os.makedirs(args.work, exist_ok=True)
    runner = Runner(args.work)

    removed = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")
               if k in os.environ}
    log("PyTorch side: OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE and OPENBLAS_NUM_THREADS are unset in its "
        f"processes (here they were: {removed if removed else 'not set'})"
        + (f"; extra environment: {TORCH_EXTRA_ENV}" if TORCH_EXTRA_ENV else ""))
    tinfo = runner.run("torch-info", [args.python, os.path.join(HERE, "torch_bench.py"), "info", "--json", "{json}"],
                       torch_env(), 2)
    b = tinfo["blas"]
    log(f"PyTorch {tinfo['torch_version']}, BLAS: {b['kind']} ({', '.join(b['resolved'])}); "
        f"{b.get('openblas_config', '')}; sgemm 1024^3: {tinfo['sgemm_1024_gflops_1t']:.0f} GFLOP/s on 1 thread, "
        f"{tinfo['sgemm_1024_gflops_2t']:.0f} on 2")
    if b["kind"] != "OpenBLAS":
        log("WARNING: PyTorch does not run on OpenBLAS here")
    coretype, probe = choose_coretype(args, runner)
    log(f"PyTorch side: OpenBLAS kernels: {('OPENBLAS_CORETYPE=' + coretype) if coretype else 'its own detection'}")

    paths, prep_info = prepare(args, bins)
    ids = run_quiet([args.python, "-c", "import sentencepiece as s, sys; "
                     "print(len(s.SentencePieceProcessor(model_file=sys.argv[1]).encode(sys.argv[2])))",
                     paths["tokenizer"], PREDICT_SENTENCE])
    predict_position = int(ids.stdout.strip()) // 2
    log(f"  {prep_info['real_batches']}\n  {prep_info['fixed_batches']}")
    log(f"  predict_mask: \"{PREDICT_SENTENCE}\" ({ids.stdout.strip()} tokens, masking token {predict_position})")
    log(f"  fill-mask: {args.fill_texts} validation sentences with one word masked ({paths['fill_texts']})")

    groups = plan(args, bins, paths, coretype, predict_position)
    t0 = time.perf_counter()
    results = measure(args, groups, runner)
    elapsed = time.perf_counter() - t0
    summary = summarize(results)
    rows = build_table(summary)
    same = check_same_inputs(results)
    load_end = loadavg()

    log()
    log(f"mlm vs PyTorch {tinfo['torch_version']} ({b.get('openblas_core', b['kind'])} OpenBLAS kernels), "
        f"medians of {args.runs} runs (min-max); ratio: how many times mlm is faster (c: PyTorch's memory / mlm's)")
    print_table(rows)
    log(f"\nsame inputs: {json.dumps(same)}")
    log(f"load average at the start {load_start}, at the end {load_end}; measuring took {elapsed / 60:.1f} min")
    if q:
        log("QUICK run: few runs on possibly busy cores; use the full run for the figures")

    doc = {"generated": started.isoformat(timespec="seconds"), "quick": q,
           "command": " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
           "settings": {k: getattr(args, k) for k in ("runs", "steps", "calls", "fill_texts", "fill_repeats",
                                                       "batch_tokens", "data", "valid", "foreach",
                                                       "openblas_coretype", "torch_env")},
           "machine": machine, "load_average": {"start": load_start, "end": load_end},
           "blas_alternative": blas, "openblas_env_removed_for_torch": removed,
           "torch": {k: tinfo[k] for k in ("torch_version", "blas", "mkldnn", "sgemm_1024_gflops_1t",
                                           "sgemm_1024_gflops_2t", "config", "parallel_info")},
           "openblas_coretype": {"chosen": coretype or "OpenBLAS's own detection", "probe": probe},
           "inputs": dict(prep_info, predict_sentence=PREDICT_SENTENCE, predict_position=predict_position),
           "same_inputs": same, "table": rows, "measurements": summary, "measuring_seconds": elapsed}
    doc = repository_relative(doc, corpus)
    for path in (out_json, out_md, out_png):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(out_md, "w") as f:
        f.write(markdown_table(rows))
    if args.readme:
        with open(args.readme) as f:
            readme = with_readme_table(f.read(), doc, args.readme)
        with open(args.readme, "w") as f:
            f.write(readme)
    r = run_quiet([args.python, os.path.join(HERE, "plot_benchmark.py"), out_json, out_png])
    log(f"wrote {out_json}, {out_md}" + (f", {out_png}" if r.returncode == 0 else f" (plot failed: {r.stdout[-500:]})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
