"""Generative models, the basics (Part IV): how models are judged (MMD, mode
coverage), energy-based models and Langevin sampling, autoregressive models
(MADE, back-off n-grams), GANs, normalizing flows and denoising diffusion.

Submodules: ``metrics``, ``energy``, ``autoregressive``, ``gan``, ``flows``
and ``diffusion``. Everything is re-exported here, so that
``from dlbook import generative`` gives ``generative.mmd2`` and the rest.
"""
from . import autoregressive, diffusion, energy, flows, gan, metrics
from .autoregressive import *  # noqa: F401,F403
from .diffusion import *  # noqa: F401,F403
from .energy import *  # noqa: F401,F403
from .flows import *  # noqa: F401,F403
from .gan import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403

__all__ = [*metrics.__all__, *energy.__all__, *autoregressive.__all__,
           *gan.__all__, *flows.__all__, *diffusion.__all__]
