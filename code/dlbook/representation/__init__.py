"""The theory of representations (Part III): what makes a representation good,
how to compare two of them, and the simplicity biases of deep networks.

Submodules: ``quality`` (effective rank, probes, invariance, disentanglement),
``compare`` (CKA, CCA, mutual nearest neighbours), ``lowrank`` (deep matrix
factorization), ``spectral`` (the spectral bias) and ``objectives`` (a
contrastive loss for the convergence experiment). Everything is re-exported
here, so that ``from dlbook import representation`` gives
``representation.cka`` and the rest.
"""
from . import compare, lowrank, objectives, quality, spectral
from .compare import *  # noqa: F401,F403
from .lowrank import *  # noqa: F401,F403
from .objectives import *  # noqa: F401,F403
from .quality import *  # noqa: F401,F403
from .spectral import *  # noqa: F401,F403

__all__ = [*compare.__all__, *lowrank.__all__, *objectives.__all__,
           *quality.__all__,
           *spectral.__all__]
