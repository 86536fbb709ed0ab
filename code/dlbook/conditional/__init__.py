"""Conditional generative models (Part IV): conditional GANs and VAEs,
guided diffusion, paired and unpaired translation, text-to-image at toy
scale and world models.

Submodules: ``gan`` (conditional GAN and its optimal discriminator),
``cvae`` (conditional VAE and the closed-form conditional ELBO),
``guidance`` (classifier-free and classifier guidance on labelled 2-D data),
``translation`` (pix2pix- and CycleGAN-style translation), ``text`` (a frozen
bag-of-words text encoder and captioned digits) and ``world`` (a pendulum and
its learned model). Everything is re-exported here.
"""
from . import cvae, gan, guidance, text, translation, world
from .cvae import *  # noqa: F401,F403
from .gan import *  # noqa: F401,F403
from .guidance import *  # noqa: F401,F403
from .text import *  # noqa: F401,F403
from .translation import *  # noqa: F401,F403
from .world import *  # noqa: F401,F403

__all__ = [*cvae.__all__, *gan.__all__, *guidance.__all__, *text.__all__,
           *translation.__all__, *world.__all__]
