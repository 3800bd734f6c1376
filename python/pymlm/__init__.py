"""pymlm: masked-language-model pre-training of small BERT-like encoders on CPUs.

The engine is the C++ library ``mlm``; this package binds it (``pymlm._core``, built by CMake
during ``pip install .``) and adds Python conveniences on top.

    >>> import pymlm
    >>> pymlm.ModelConfig().num_parameters()
    6861056
"""
from ._core import (  # noqa: F401
    ModelConfig,
    __version__,
    get_num_threads,
    has_openmp,
    set_num_threads,
)

__all__ = [
    "ModelConfig",
    "__version__",
    "get_num_threads",
    "has_openmp",
    "set_num_threads",
]
