"""The original notebook's ``predict_mask`` and a Hugging Face-style ``fill_mask``, as functions."""
from __future__ import annotations

import os
import sys
from typing import Any, List, Optional, Sequence, TextIO, Union, overload

from ._core import MaskedLM, MaskPrediction

__all__ = ["predict_mask", "fill_mask"]

PathLike = Union[str, "os.PathLike[str]"]


def _as_masked_lm(lm: Union[MaskedLM, PathLike]) -> MaskedLM:
    if isinstance(lm, MaskedLM):
        return lm
    if isinstance(lm, (str, os.PathLike)):
        return MaskedLM.load(lm)
    raise TypeError(
        "lm must be a pymlm.MaskedLM or the path of a checkpoint directory, got %s" % type(lm).__name__
    )


@overload
def predict_mask(
    sentence: str,
    lm: Union[MaskedLM, PathLike],
    *,
    seed: Optional[int] = ...,
    position: Optional[int] = ...,
    top_k: int = ...,
    verbose: bool = ...,
    file: Optional[TextIO] = ...,
) -> MaskPrediction: ...
@overload
def predict_mask(
    sentence: Sequence[str],
    lm: Union[MaskedLM, PathLike],
    *,
    seed: Optional[int] = ...,
    position: Optional[int] = ...,
    top_k: int = ...,
    verbose: bool = ...,
    file: Optional[TextIO] = ...,
) -> List[MaskPrediction]: ...
def predict_mask(sentence, lm, *, seed=None, position=None, top_k=5, verbose=True, file=None):
    """The original notebook's ``predict_mask(sentence)``: mask one token, let the model fill it in,
    print the four lines and return the result.

        >>> pymlm.predict_mask("hello! how are you?", lm)      # doctest: +SKIP
        masked: you predicted: you
        ACTUAL: hello! how are you?
        MASKED: hello! how are [MASK]?
         MODEL: hello! how are you?

    Which token is masked: ``position`` (an index into the sentence's token ids) if given; else
    the first ``[MASK]`` already in the text; else a random ordinary token (``seed``; None draws
    one from Python's ``random``, so each call masks another token like the original).

    lm: a :class:`MaskedLM` or the path of a checkpoint directory (loaded on each call).
    sentence: one sentence, or a list of them (each printed, separated by a blank line).
    verbose: print the lines (to ``file``, default ``sys.stdout``); False only returns the result.
    Returns a :class:`MaskPrediction` (``masked_token``, ``predicted_token``, ``sentence``,
    ``masked_text``, ``predicted_text``, ``correct``, ``top_k``...), or a list of them.
    """
    model = _as_masked_lm(lm)
    result = model.predict_mask(sentence, seed=seed, position=position, top_k=top_k)
    if verbose:
        out = file if file is not None else sys.stdout
        items = [result] if isinstance(result, MaskPrediction) else result
        for i, p in enumerate(items):
            if i:
                print(file=out)
            print(str(p), file=out)
    return result


def fill_mask(
    text_or_texts: Union[str, Sequence[str]],
    lm: Union[MaskedLM, PathLike],
    *,
    top_k: int = 5,
    targets: Optional[Union[str, Sequence[str]]] = None,
) -> List[Any]:
    """Predicts every ``[MASK]`` of the text(s) with ``lm`` (a MaskedLM or a checkpoint path),
    shaped like Hugging Face's fill-mask pipeline: a list of ``{"score", "token", "token_str",
    "sequence"}`` dicts for one text with one ``[MASK]``; a list of such lists for several
    ``[MASK]``s; one result per text for a list of texts. See :meth:`MaskedLM.fill_mask`.
    """
    return _as_masked_lm(lm).fill_mask(text_or_texts, top_k=top_k, targets=targets)
