"""Chapter 26 (language models): tokenization, decoding, finetuning and
preference optimization of a small GPT.

- ``tokenize``: byte-pair encoding (``BPE``) trained from scratch;
- ``decoding``: temperature, top-k and nucleus sampling, distinct-n and
  the model's log-likelihood of a text;
- ``finetune``: a generated instruction set, masked-loss tensors, exact
  match, and LoRA inserted into a ``dlbook.transformer.GPT``;
- ``preference``: the RLHF objective and its optimal policy,
  Bradley-Terry preferences and DPO, on a table and on the GPT.

This package re-exports their public names:
``from dlbook import language; language.BPE``.
"""
from . import decoding, finetune, preference, tokenize
from .decoding import *  # noqa: F401,F403
from .finetune import *  # noqa: F401,F403
from .preference import *  # noqa: F401,F403
from .tokenize import *  # noqa: F401,F403

__all__ = [*tokenize.__all__, *decoding.__all__, *finetune.__all__,
           *preference.__all__]
