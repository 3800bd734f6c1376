"""Damaged checkpoints, NaNs and failed writes, seen from Python: each way a checkpoint goes bad
raises pymlm.CheckpointError whose message names the file and the problem (the same list as
tests/checkpoint_faults.hpp for the C++ and CLI tests); a NaN stops or skips with the last
checkpoint kept; a write that fails leaves the previous checkpoint."""
import json
import math
import resource
import shutil
import signal
import struct

import numpy as np
import pytest

import pymlm

# ---- editing safetensors files by hand ---------------------------------------------------------


def read_safetensors(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write_safetensors(path, header, data):
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def edit_header(file, edit):
    def apply(d):
        header, data = read_safetensors(d / file)
        data = edit(header, data)
        write_safetensors(d / file, header, data)

    return apply


def edit_state(edit):
    def on_header(header, data):
        state = json.loads(header["__metadata__"]["trainer_state"])
        edit(state)
        header["__metadata__"]["trainer_state"] = json.dumps(state)
        return data

    return edit_header("trainer_state.safetensors", on_header)


def truncate(file):
    def apply(d):
        raw = (d / file).read_bytes()
        (d / file).write_bytes(raw[:-100])

    return apply


def header_length_too_large(d):
    raw = bytearray((d / "model.safetensors").read_bytes())
    raw[:8] = struct.pack("<Q", len(raw))
    (d / "model.safetensors").write_bytes(bytes(raw))


def header_not_json(d):
    raw = bytearray((d / "model.safetensors").read_bytes())
    raw[9] = ord("@")  # {"__metadata__"... -> {@__metadata__"...
    (d / "model.safetensors").write_bytes(bytes(raw))


def other_shape(entry):
    entry["shape"] = [2, entry["shape"][0] // 2]  # the same bytes, another shape


def set_dtype(header, data):
    header["ln_f.scale"]["dtype"] = "I32"
    return data


def set_shape(name):
    def edit(header, data):
        other_shape(header[name])
        return data

    return edit


def drop_tensor(header, data):
    del header["ln_f.scale"]  # its bytes stay, as a gap the format allows
    return data


def add_tensor(header, data):
    begin, end = header["ln_f.scale"]["data_offsets"]
    header["encoders.9.extra"] = dict(header["ln_f.scale"], data_offsets=[len(data), len(data) + end - begin])
    return data + data[begin:end]


def vocab_mismatch(d):
    config = json.loads((d / "config.json").read_text())
    config["vocab_size"] += 1
    (d / "config.json").write_text(json.dumps(config))


def drop_step(state):
    del state["step"]


def impossible_position(state):
    state["batch_in_epoch"] = 1000000000


def state_not_json(header, data):
    header["__metadata__"]["trainer_state"] = '{"step": '
    return data


MODEL, STATE = "model.safetensors", "trainer_state.safetensors"
# (name, damaged file, piece of the message, breaks MaskedLM.load, breaks Trainer.resume, damage)
CASES = [
    ("truncated model.safetensors", MODEL, "run past the end of the data section", True, False, truncate(MODEL)),
    ("header length larger than the file", MODEL, "exceeds", True, False, header_length_too_large),
    ("header that is not JSON", MODEL, "header is not valid JSON", True, False, header_not_json),
    ("config.json that is not JSON", "config.json", "not valid JSON", True, False,
     lambda d: (d / "config.json").write_text('{"dim": ')),
    ("wrong dtype", MODEL, 'tensor "ln_f.scale": dtype I32', True, False, edit_header(MODEL, set_dtype)),
    ("wrong shape", MODEL, 'tensor "ln_f.scale": shape [2, ', True, False, edit_header(MODEL, set_shape("ln_f.scale"))),
    ("missing tensor", MODEL, 'tensors are missing: "ln_f.scale"', True, False, edit_header(MODEL, drop_tensor)),
    ("extra tensor", MODEL, 'unexpected tensors "encoders.9.extra"', True, False, edit_header(MODEL, add_tensor)),
    ("config.json whose vocab does not match the tokenizer", "config.json", "says vocab_size", True, False,
     vocab_mismatch),
    ("tokenizer.model that is not a tokenizer", "tokenizer.model", "not a valid tokenizer model", True, False,
     lambda d: (d / "tokenizer.model").write_bytes(b"not a sentencepiece model")),
    ("truncated trainer state", STATE, "run past the end of the data section", False, True, truncate(STATE)),
    ("trainer state that is not JSON", STATE, "the trainer state metadata is not valid JSON", False, True,
     edit_header(STATE, state_not_json)),
    ("trainer state without its step", STATE, 'corrupt trainer state: no "step" entry', False, True,
     edit_state(drop_step)),
    ("trainer state with an impossible position", STATE, 'corrupt trainer state: "batch_in_epoch" is 1000000000',
     False, True, edit_state(impossible_position)),
    ("trainer state with a wrong tensor shape", STATE, 'tensor "adam_m.ln_f.scale": shape [2, ', False, True,
     edit_header(STATE, set_shape("adam_m.ln_f.scale"))),
]


def cases(model=None, resume=None):
    return [
        pytest.param(c, id=c[0].replace(" ", "_"))
        for c in CASES
        if (model is None or c[3] == model) and (resume is None or c[4] == resume)
    ]


# ---- a run to damage ---------------------------------------------------------------------------


def make_trainer(tokenizer, config, sentences, out_dir, **options):
    options.setdefault("max_steps", 4)
    return pymlm.Trainer(
        config, tokenizer, sentences[:200], sentences[1500:1532], out_dir=out_dir, batch_size=16,
        eval_every_steps=2, checkpoint_every_steps=2, progress=False, seed=2, **options,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tokenizer, tiny_config, sentences):
    """A finished 4-step run with its checkpoint, trainer state and best/."""
    out = tmp_path_factory.mktemp("errors") / "run"
    make_trainer(tokenizer, tiny_config, sentences, out).fit()
    return out


def damaged_copy(run_dir, tmp_path, damage):
    d = tmp_path / "damaged"
    shutil.copytree(run_dir, d)
    damage(d)
    return d


@pytest.mark.parametrize("case", cases(model=True))
def test_masked_lm_load_names_the_file_and_the_problem(run_dir, tmp_path, case):
    name, file, problem, _, _, damage = case
    d = damaged_copy(run_dir, tmp_path, damage)
    with pytest.raises(pymlm.CheckpointError) as e:
        pymlm.MaskedLM.load(d)
    message = str(e.value)
    assert str(d) in message and file in message and problem in message, message


@pytest.mark.parametrize("case", cases(resume=True))
def test_resume_names_the_file_and_the_problem_and_changes_nothing(
    run_dir, tmp_path, tokenizer, tiny_config, sentences, case
):
    name, file, problem, _, _, damage = case
    d = damaged_copy(run_dir, tmp_path, damage)
    trainer = make_trainer(tokenizer, tiny_config, sentences, d)
    before = trainer.model.flat_parameters.copy()
    with pytest.raises(pymlm.CheckpointError) as e:
        trainer.resume()
    message = str(e.value)
    assert message.startswith(str(d / file)) and problem in message, message
    assert trainer.step == 0
    assert np.array_equal(trainer.model.flat_parameters, before)


def test_every_case_is_tested():
    assert len(cases(model=True)) == 10 and len(cases(resume=True)) == 5


def test_corrupt_best_vs_latest(run_dir, tmp_path, tokenizer, tiny_config, sentences):
    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    good_best = (d / "best" / MODEL).read_bytes()
    truncate(MODEL)(d / "best")
    with pytest.raises(pymlm.CheckpointError, match="best/model.safetensors: .*truncated"):
        pymlm.MaskedLM.load(d / "best")
    pymlm.MaskedLM.load(d)  # the latest checkpoint is untouched
    resumed = make_trainer(tokenizer, tiny_config, sentences, d)
    resumed.resume()  # a resume reads only the trainer state
    assert resumed.step == 4

    (d / "best" / MODEL).write_bytes(good_best)
    truncate(MODEL)(d)
    with pytest.raises(pymlm.CheckpointError, match="run/model.safetensors: "):
        pymlm.MaskedLM.load(d)
    pymlm.MaskedLM.load(d / "best")
    make_trainer(tokenizer, tiny_config, sentences, d).resume()


# ---- NaNs -----------------------------------------------------------------------------------------


def nan_trainer(tokenizer, config, sentences, out_dir, **options):
    # lr 1e30: step 1 sends every weight to about +-1e30, and step 2's loss is NaN
    options.setdefault("max_steps", 6)
    return pymlm.Trainer(
        config, tokenizer, sentences[:200], out_dir=out_dir, batch_size=16, schedule="constant", lr=1e30,
        checkpoint_every_steps=1, progress=False, **options,
    )


def test_non_finite_stop_keeps_the_checkpoint_before_the_fault(tokenizer, tiny_config, sentences, tmp_path):
    nan_trainer(tokenizer, tiny_config, sentences, tmp_path / "one", max_steps=1).fit()  # step 1, ends there
    trainer = nan_trainer(tokenizer, tiny_config, sentences, tmp_path / "stop", on_non_finite="stop")
    with pytest.warns(RuntimeWarning, match="training stopped at step 2: the loss or the gradient became non-finite"):
        result = trainer.fit()
    assert result.stop_reason == "non_finite" and result.steps == 2 and result.checkpoint_step == 1
    assert math.isnan(trainer.history.train["loss"][-1])
    assert json.loads((tmp_path / "stop" / "trainer_state.json").read_text())["step"] == 1
    assert (tmp_path / "stop" / MODEL).read_bytes() == (tmp_path / "one" / MODEL).read_bytes()
    pymlm.MaskedLM.load(tmp_path / "stop")


def test_non_finite_skip_goes_on_until_too_many_in_a_row(tokenizer, tiny_config, sentences, tmp_path):
    trainer = nan_trainer(tokenizer, tiny_config, sentences, tmp_path, on_non_finite="skip", max_non_finite_skips=3)
    with pytest.warns(RuntimeWarning, match=r"stopped at step 4: .*\(steps not applied: 3\)"):
        result = trainer.fit()
    assert result.stop_reason == "non_finite" and result.skipped_steps == 3 and result.checkpoint_step == 3
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r.get("skipped")] == [2, 3, 4]


# ---- a write that fails ---------------------------------------------------------------------------


def test_a_failed_write_leaves_the_previous_checkpoint(run_dir, tmp_path, tokenizer, tiny_config, sentences):
    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    trainer = make_trainer(tokenizer, tiny_config, sentences, d)
    trainer.resume()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (16384, hard))
    try:
        with pytest.raises(pymlm.CheckpointError) as e:
            trainer.save()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    message = str(e.value)
    assert message.startswith("cannot write the checkpoint in %s: " % d), message
    assert "File too large" in message and "the checkpoint already there is unchanged" in message
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()} == before
    assert not (d / ".checkpoint-staging").exists()
