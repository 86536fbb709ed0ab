"""Chapter 9 (transformers): attention, positions, a small GPT.

Everything the chapter "Transformers" runs:

- ``attention``: ``scaled_dot_product_attention``
  and ``MultiheadAttention`` from scratch, with the semantics and parameter
  layout of their PyTorch counterparts, and ``causal_mask``;
- ``positions``: sinusoidal codes and rotary
  embeddings;
- ``gpt``: ``GPTConfig``, the pre-norm ``Block``,
  ``GPT`` with a ``KVCache``, ``generate``, and the bidirectional ``Encoder``;
- ``ngram``: smoothed character n-gram models, the
  baselines;
- ``accounting``: parameter and FLOP counts, in
  closed form and measured;
- ``training``: training the character GPT and the
  algorithmic tasks.

This package re-exports their public names:
``from dlbook import transformer; transformer.GPT``.
"""
from . import accounting, attention, gpt, ngram, positions, training
from .accounting import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .gpt import *  # noqa: F401,F403
from .ngram import *  # noqa: F401,F403
from .positions import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403

__all__ = [*attention.__all__, *positions.__all__, *gpt.__all__, *ngram.__all__,
           *accounting.__all__, *training.__all__]
