"""The build path: `pip install .` produced an importable pymlm whose bindings work.

Run with the venv's Python (scripts/test.sh does): .venv/bin/python -m pytest tests/python
"""
import copy
import pickle

import pytest

import pymlm


def test_import_and_version():
    assert pymlm.__version__ == "0.1.0"
    assert pymlm._core.__file__.endswith(".so")
    for name in pymlm.__all__:
        assert hasattr(pymlm, name), name


def test_version_matches_the_installed_distribution():
    from importlib.metadata import version

    assert version("pymlm") == pymlm.__version__


def test_reference_config_has_6861056_parameters():
    config = pymlm.ModelConfig()
    assert config.num_parameters() == 6_861_056
    assert (config.vocab_size, config.dim, config.n_heads, config.n_layers) == (8192, 256, 8, 6)
    assert (config.ffn_mult, config.max_len) == (4, 128)
    assert config.dropout == 0.1
    assert config.norm_eps == 1e-8
    assert (config.unk_id, config.pad_id, config.mask_id) == (0, 1, 2)
    assert config.norm_placement == "reference"
    assert config.init_std == 0.02
    assert (config.head_dim, config.ffn_dim) == (32, 1024)


def test_parameter_count_formula():
    # V*C + T*C + L*(C + 3C*C + C*C + C + C + F*C + F + C*F + C) + C
    V, C, T, L, F = 100, 16, 12, 3, 64
    config = pymlm.ModelConfig(vocab_size=V, dim=C, n_heads=4, n_layers=L, max_len=T, ffn_mult=4)
    expected = V * C + T * C + L * (4 * C * C + 2 * C * F + F + 4 * C) + C
    assert config.num_parameters() == expected


def test_fields_are_writable():
    config = pymlm.ModelConfig()
    config.dim, config.n_heads = 64, 4
    config.norm_placement = "pre"
    config.dropout = 0.0
    config.validate()
    assert config.norm_placement == "pre"
    assert config.num_parameters() < 6_861_056


def test_bad_config_raises_value_error_naming_the_field():
    with pytest.raises(ValueError, match=r"dim \(100\) must be divisible by n_heads \(8\)"):
        pymlm.ModelConfig(dim=100)
    with pytest.raises(ValueError, match="mask_id 9000 is outside the vocab"):
        pymlm.ModelConfig(mask_id=9000)
    with pytest.raises(ValueError, match="norm_placement must be"):
        pymlm.ModelConfig(norm_placement="post")
    config = pymlm.ModelConfig()
    config.dropout = 1.5
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        config.num_parameters()
    with pytest.raises(ValueError, match="dropout"):
        config.validate()
    with pytest.raises(TypeError):
        pymlm.ModelConfig(dim="wide")
    with pytest.raises(TypeError):
        pymlm.ModelConfig(256)  # keyword-only


def test_json_round_trip_pickle_and_copy():
    config = pymlm.ModelConfig(dim=64, n_heads=4, n_layers=2, norm_placement="pre", dropout=0.2)
    text = config.to_json()
    assert '"norm_placement": "pre"' in text
    assert pymlm.ModelConfig.from_json(text) == config
    assert pickle.loads(pickle.dumps(config)) == config
    assert copy.deepcopy(config) == config and copy.copy(config) is not config
    assert config != pymlm.ModelConfig()
    assert "norm_placement='pre'" in repr(config)
    with pytest.raises(ValueError, match="unknown key"):
        pymlm.ModelConfig.from_json('{"dimension": 3}')


def test_set_num_threads():
    before = pymlm.get_num_threads()
    assert before >= 1
    try:
        pymlm.set_num_threads(1)
        assert pymlm.get_num_threads() == 1
        if pymlm.has_openmp:
            pymlm.set_num_threads(2)
            assert pymlm.get_num_threads() == 2
        with pytest.raises(ValueError, match="at least 1"):
            pymlm.set_num_threads(0)
    finally:
        pymlm.set_num_threads(before)
