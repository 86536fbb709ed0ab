"""Variational autoencoders (Part IV): the Gaussian KL and the
reparameterization (``kl``), the VAE, its ELBO and the importance-weighted
bounds (``model``), pathwise and score-function gradient estimators
(``estimators``), and debiasing by latent density (``debias``).

Everything is re-exported, so that ``from dlbook import vae`` gives
``vae.VAE``, ``vae.gaussian_kl`` and the rest.
"""
from . import debias, estimators, kl, model
from .debias import *  # noqa: F401,F403
from .estimators import *  # noqa: F401,F403
from .kl import *  # noqa: F401,F403
from .model import *  # noqa: F401,F403

__all__ = [*debias.__all__, *estimators.__all__, *kl.__all__, *model.__all__]
