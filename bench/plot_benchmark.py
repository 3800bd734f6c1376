#!/usr/bin/env python3
"""Plots the results of bench/compare_torch.py.

    /usr/bin/python3 bench/plot_benchmark.py RESULTS.json OUT.png

Left: training throughput (real tokens/s) of mlm and PyTorch, each on 1 and 2 threads, for the
original's 32x128 shape and for Wikipedia batches; bars are medians, whiskers min-max.
Right: how many times better mlm does than PyTorch's best configuration on each target
(throughput ratio, PyTorch's latency / mlm's, PyTorch's peak memory / mlm's), with the targets.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv):
    if len(argv) != 3:
        print(__doc__)
        return 2
    with open(argv[1]) as f:
        doc = json.load(f)
    m = doc["measurements"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1, 1.25]})

    groups = [("train_32x128", "32 x 128 rows"), ("train_wiki", "Wikipedia, ~4k-token\nbucketed batches")]
    sides = [("mlm", "mlm, 2 threads", "#1f77b4"), ("mlm-1t", "mlm, 1 thread", "#aec7e8"),
             ("torch-1t", "PyTorch, 1 thread", "#ff7f0e"), ("torch-2t", "PyTorch, 2 threads", "#ffbb78")]
    sides = [x for x in sides if x[0] in m["train_wiki"]]
    width = 0.8 / len(sides)
    top = 0.0
    for i, (name, label, color) in enumerate(sides):
        xs, ys, lo, hi = [], [], [], []
        for g, (key, _) in enumerate(groups):
            st = m[key][name]["stat"]
            xs.append(g + (i - (len(sides) - 1) / 2) * width)
            ys.append(st["median"])
            lo.append(st["median"] - st["min"])
            hi.append(st["max"] - st["median"])
        ax1.bar(xs, ys, width, label=label, color=color, yerr=[lo, hi], capsize=3)
        top = max([top] + [y + h for y, h in zip(ys, hi)])
        for x, y, h in zip(xs, ys, hi):
            ax1.text(x, y + h, f"{y:,.0f}", ha="center", va="bottom", fontsize=7)
    ax1.set_xticks(range(len(groups)))
    ax1.set_xticklabels([g[1] for g in groups])
    ax1.set_ylabel("real (non-pad) tokens / s")
    ax1.set_title("a. training throughput (full steps, AdamW)")
    ax1.set_ylim(0, top * 1.3)
    ax1.legend(fontsize=8, loc="upper left", ncol=2)

    rows = [r for r in doc["table"] if r["ratio"] is not None]
    labels = {"a.i": "a.i training\n32x128", "a.ii": "a.ii training\nWikipedia",
              "b.lat": "b predict_mask\nlatency", "b.thr": "b fill-mask\nthroughput", "c": "c peak memory\n(PyTorch / mlm)"}
    targets = {"a.i": 1.5, "a.ii": 2.0, "b.lat": 5.0, "b.thr": 3.0, "c": 1.0}
    xs = range(len(rows))
    colors = ["#2ca02c" if r["pass"] else "#d62728" for r in rows]
    ax2.bar(xs, [r["ratio"] for r in rows], 0.6, color=colors)
    for x, r in zip(xs, rows):
        t = targets.get(r["key"])
        if t:
            ax2.hlines(t, x - 0.38, x + 0.38, colors="black", linestyles="dashed", linewidth=1.2)
        ax2.text(x, r["ratio"], f"{r['ratio']:.2f}x", ha="center", va="bottom", fontsize=9)
    ax2.axhline(1.0, color="grey", linewidth=0.8)
    ax2.set_xticks(list(xs))
    ax2.set_xticklabels([labels.get(r["key"], r["key"]) for r in rows], fontsize=8)
    ax2.set_ylabel("times better than PyTorch (1 = the same)")
    ax2.set_title("mlm vs the best PyTorch configuration (dashed: target)")
    ax2.margins(y=0.15)

    torch_v = doc["torch"]["torch_version"]
    # The kernels PyTorch ran with: the probe's choice (OPENBLAS_CORETYPE), else OpenBLAS's own.
    core = (doc.get("openblas_coretype") or {}).get("chosen")
    if not core or core == "auto" or " " in core:  # "OpenBLAS's own detection"
        core = doc["torch"]["blas"].get("openblas_core", doc["torch"]["blas"].get("kind", ""))
    title = (f"{doc['machine']['cpu']}, {doc['machine']['cpus']} cores; PyTorch {torch_v} on OpenBLAS "
             f"({core} kernels); medians of {doc['settings']['runs']} runs, whiskers min-max")
    if doc.get("quick"):
        title += "  [QUICK run: not for publication]"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(argv[2], dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
