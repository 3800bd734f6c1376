#!/usr/bin/env python3
"""Learning curves of training runs from their log.jsonl: loss against tokens and against wall time.

    python3 bench/plot_quality.py --out docs/quality_curves.png NAME=RUN [NAME=RUN ...]
    python3 bench/plot_quality.py --out docs/quality_probes.png --minutes 20.5 --valid-only NAME=RUN ...

Each RUN is an `mlm train --out` directory or a copy of its log.jsonl (plain, .gz or .xz). The figure has two panels (x: real tokens seen, and
wall time in hours); each run draws its training loss (an exponential moving average over steps,
thin) and its validation MLM loss at every evaluation (markers). --minutes M keeps the first M
minutes of every run (time axis in minutes); --valid-only leaves out the training losses (which
runs with different masking rates do not share). Needs matplotlib (Debian's python3-matplotlib).
"""
import argparse
import gzip
import json
import lzma
import math
import os
import sys


def open_log(run):
    """RUN/log.jsonl of a run directory, or the log file RUN itself (plain, .gz or .xz)."""
    path = os.path.join(run, "log.jsonl") if os.path.isdir(run) else run
    opener = lzma.open if path.endswith(".xz") else gzip.open if path.endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8")


def read_log(run):
    """(steps, evals): lists of dicts from a run's log; skipped steps have loss None."""
    steps, evals = [], []
    with open_log(run) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            if "val_loss" in rec:
                evals.append(rec)
            elif rec.get("loss") is not None and "lr" in rec:
                steps.append(rec)
    return steps, evals


def smoothed(values, beta=0.98):
    """Bias-corrected exponential moving average, as the progress line shows it."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** i))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="NAME=RUN")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--title", default="MLM pre-training on Wikipedia sentences (reference size, 2 threads)")
    ap.add_argument("--minutes", type=float, default=0, help="only the first M minutes of each run")
    ap.add_argument("--valid-only", action="store_true", help="validation losses only")
    args = ap.parse_args()
    in_minutes = args.minutes > 0
    time_scale = 60.0 if in_minutes else 3600.0

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_tok, ax_time) = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for i, spec in enumerate(args.runs):
        name, sep, run_dir = spec.partition("=")
        if not sep:
            sys.exit("plot_quality.py: expected NAME=RUN, got %r" % spec)
        steps, evals = read_log(run_dir)
        if in_minutes:
            steps = [s for s in steps if s["elapsed_s"] <= args.minutes * 60]
            evals = [e for e in evals if e["elapsed_s"] <= args.minutes * 60]
        if not steps:
            sys.exit("plot_quality.py: the log of %s has no training steps" % run_dir)
        color = "C%d" % i
        loss = smoothed([s["loss"] for s in steps])
        tokens = [s["tokens"] / 1e6 for s in steps]
        times = [s["elapsed_s"] / time_scale for s in steps]
        if not args.valid_only:
            ax_tok.plot(tokens, loss, color=color, lw=0.8, alpha=0.6, label="%s: training loss (EMA)" % name)
            ax_time.plot(times, loss, color=color, lw=0.8, alpha=0.6)
        if evals:
            ax_tok.plot([e["tokens"] / 1e6 for e in evals], [e["val_loss"] for e in evals], "o-",
                        color=color, ms=3, lw=1.5, label="%s: validation loss" % name)
            ax_time.plot([e["elapsed_s"] / time_scale for e in evals], [e["val_loss"] for e in evals], "o-",
                         color=color, ms=3, lw=1.5)
    time_label = "wall time (minutes)" if in_minutes else "wall time (hours)"
    for ax, label in ((ax_tok, "real tokens seen (millions)"), (ax_time, time_label)):
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    ax_tok.set_ylabel("MLM loss (nats)")
    ax_tok.axhline(math.log(8192), color="gray", ls=":", lw=1)
    ax_time.axhline(math.log(8192), color="gray", ls=":", lw=1)
    ax_tok.text(0, math.log(8192), " ln 8192 (uniform)", va="bottom", fontsize=8, color="gray")
    ax_tok.legend(fontsize=8)
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print("plot_quality.py: wrote %s" % args.out)


if __name__ == "__main__":
    main()
