"""Chapter 24 (efficiency): counting, quantization, pruning.

- ``counting``: FLOPs by forward hooks, activations, memory, the energy
  table of Horowitz (2014), timed matrix products and the roofline;
- ``quantization``: the uniform quantizer, post-training weight
  quantization, quantization-aware training with the straight-through
  estimator, and PyTorch's dynamic int8 quantization;
- ``pruning``: magnitude and random masks, iterative magnitude pruning with
  rewinding (the lottery ticket), and structured pruning of hidden units.

``from dlbook import efficiency; efficiency.count_flops``.
"""
from . import counting, pruning, quantization
from .counting import *  # noqa: F401,F403
from .pruning import *  # noqa: F401,F403
from .quantization import *  # noqa: F401,F403

__all__ = [*counting.__all__, *quantization.__all__, *pruning.__all__]
