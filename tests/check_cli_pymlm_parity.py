"""`mlm train` and pymlm.Trainer given the same arguments train the same model.

Both hand their options to one C++ function (mlm::assemble_run), which decides the recipe, the
batches, the holdout and the rest: for a few steps of each recipe the two runs' saved files
(weights, configs, tokenizer, best/ model, data options) must be byte for byte the same, and
their logs the same but for the wall-clock fields.

    tests/check_cli_pymlm_parity.py MLM_BINARY WORK_DIR     (ctest: cli_pymlm_parity)
"""
import json
import pathlib
import shutil
import subprocess
import sys

import pymlm

REPO = pathlib.Path(__file__).resolve().parents[1]
TEXT = REPO / "data" / "wiki-valid-2k.txt"
TIMING = {"tokens_per_s", "elapsed_s", "val_seconds"}


def log_lines(run):
    lines = []
    for line in (run / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        lines.append({k: v for k, v in rec.items() if k not in TIMING})
    return lines


def state(run):
    s = json.loads((run / "trainer_state.json").read_text())
    s.pop("elapsed_s")
    s.pop("threads")  # the thread count the build can use: 1 without OpenMP, whatever was asked
    s["trainer_config"].pop("out_dir")
    s.get("last_eval", {}).pop("seconds", None)
    return s


def main():
    mlm_binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tok_path = work / "tokenizer.model"
    pymlm.Tokenizer.train(pymlm.read_lines(TEXT), vocab_size=500).save(tok_path)
    failures = []
    for recipe in ("best", "original"):
        before = len(failures)
        cli, py = work / ("cli-" + recipe), work / ("py-" + recipe)
        args = [mlm_binary, "train", "--tokenizer", str(tok_path), "--train", str(TEXT), "--out", str(cli),
                "--dim", "32", "--heads", "2", "--layers", "1", "--max-steps", "6", "--seed", "3",
                "--threads", "2", "--eval-every", "3", "--eval-sentences", "50", "--progress", "none"]
        if recipe == "original":
            args += ["--recipe", "original", "--batch-size", "64"]
        done = subprocess.run(args, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit("mlm train failed:\n" + done.stderr)
        options = dict(dim=32, n_heads=2, n_layers=1, max_steps=6, seed=3, threads=2, eval_every_steps=3,
                       eval={"max_sentences": 50}, out_dir=py, progress=False)
        if recipe == "original":
            options.update(recipe="original", batch_size=64)
        pymlm.Trainer(tokenizer=pymlm.Tokenizer(tok_path), train_data=str(TEXT), **options).fit()

        for name in ("model.safetensors", "config.json", "tokenizer.model", "best/model.safetensors",
                     "best/config.json"):
            if (cli / name).read_bytes() != (py / name).read_bytes():
                failures.append("%s: %s differs" % (recipe, name))
        data_cli = json.loads((cli / "data.json").read_text())
        data_py = json.loads((py / "data.json").read_text())
        if data_cli != data_py:
            failures.append("%s: data.json differs: %s vs %s" % (recipe, data_cli, data_py))
        if state(cli) != state(py):
            failures.append("%s: trainer_state.json differs" % recipe)
        if log_lines(cli) != log_lines(py):
            failures.append("%s: log.jsonl differs" % recipe)
        print("%s recipe: %d log lines, %s" % (recipe, len(log_lines(cli)),
                                               "the same files" if len(failures) == before else "DIFFERENT"))
    if failures:
        sys.exit("\n".join(failures) + "\n(a pymlm installed from an older tree trains with an older engine: "
                 "re-run scripts/venv.sh)")
    print("mlm train and pymlm.Trainer trained the same models")


if __name__ == "__main__":
    main()
