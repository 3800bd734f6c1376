#!/usr/bin/env python3
"""ctest masked_lm_torch_logits: a checkpoint written by mlm loads into the project's PyTorch
reference model (pymlm.torch) and gives the logits of the C++ inference path.

    PYTHON check_torch_logits.py TEST_MASKED_LM_BINARY WORK_DIR

PYTHON is one where pymlm is installed (the venv of scripts/venv.sh; ctest runs this through
tests/torch_python.sh, which also checks that its pymlm.torch is this source tree's).

Runs `TEST_MASKED_LM_BINARY --write-torch-case=WORK_DIR`, which writes, for both norm placements,
a checkpoint directory (config.json, model.safetensors, tokenizer.model) and cases.safetensors
(ids.<i> I32 [n], logits.<i> F32 [n, V]: the C++ logits at every position of sentence i). Each
checkpoint is loaded with pymlm.torch.load (its own numpy safetensors reader, config from
config.json, the tied head re-tied) and the logits are recomputed in float32.

Exit codes: 0 pass, 1 mismatch or error, 77 (ctest: skipped) when torch or pymlm is not importable.
"""
import os
import subprocess
import sys

try:
    import numpy as np
    import torch

    import pymlm.torch as ref
except ImportError as e:  # only a missing torch, numpy or pymlm skips the test
    print(f"{e}: skipping the PyTorch logits comparison (needs a Python with torch and pymlm)")
    sys.exit(77)

# float32 on both sides, different summation orders: logits are O(1) here (init_std 0.3).
ATOL = ref.LOGITS_ATOL
RTOL = ref.LOGITS_RTOL


def main(argv):
    if len(argv) != 3:
        print(__doc__)
        return 1
    binary, work = argv[1], argv[2]
    subprocess.run([binary, f"--write-torch-case={work}"], check=True)
    torch.set_num_threads(1)
    failures = 0
    for placement in ("reference", "pre"):
        ckpt = os.path.join(work, placement)
        model = ref.load(ckpt)
        if model.config.norm_placement != placement:
            print(f"{ckpt}: config.json says norm_placement {model.config.norm_placement!r}")
            return 1
        cases, _ = ref.load_safetensors(os.path.join(ckpt, "cases.safetensors"))
        n_cases = len([k for k in cases if k.startswith("ids.")])
        assert n_cases > 0, "no cases written"
        worst = 0.0
        for i in range(n_cases):
            ids = torch.from_numpy(cases[f"ids.{i}"].astype(np.int64))[None, :]
            want = cases[f"logits.{i}"]
            with torch.no_grad():
                _, logits = model(ids)
            got = logits[0].numpy()
            if got.shape != want.shape:
                print(f"{placement} case {i}: shape {got.shape} in torch, {want.shape} from C++")
                failures += 1
                continue
            err = np.abs(got - want)
            worst = max(worst, float(err.max()))
            bad = err > ATOL + RTOL * np.abs(got)
            if bad.any():
                print(f"{placement} case {i}: {int(bad.sum())} of {bad.size} logits differ, max |diff| {err.max():.3g}")
                failures += 1
            if not np.array_equal(got.argmax(-1), want.argmax(-1)):
                print(f"{placement} case {i}: the argmax differs at some positions")
                failures += 1
        scale = max(float(np.abs(cases[f"logits.{i}"]).max()) for i in range(n_cases))
        print(f"{placement}: {n_cases} sentences, max |torch - C++| = {worst:.3g} (logits up to {scale:.3g})")
    if failures:
        print(f"FAIL: {failures} mismatches")
        return 1
    print("OK: the checkpoint loads into the PyTorch reference model with the same logits")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
