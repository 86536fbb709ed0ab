"""The theory of architecture (Part VI): norms on weight space and the modular
norm, parameterizations across width (SP, NTK, muP) with the coordinate check,
and steepest descent under the spectral norm (Newton-Schulz, Muon).

Submodules: ``norms``, ``param`` and ``polar``; everything is re-exported
here, so that ``from dlbook import architecture_theory`` gives
``architecture_theory.newton_schulz`` and the rest.
"""
from . import norms, param, polar
from .norms import *  # noqa: F401,F403
from .param import *  # noqa: F401,F403
from .polar import *  # noqa: F401,F403

__all__ = [*norms.__all__, *param.__all__, *polar.__all__]
