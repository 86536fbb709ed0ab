"""Learning by reconstruction (Part III): PCA and the linear autoencoder,
k-means, denoising, masked and sparse autoencoders, and vector quantization.

Submodules: ``linear`` (PCA from the SVD, principal angles, the critical
points of the linear autoencoder), ``clustering`` (k-means++ and Lloyd's
algorithm), ``autoencoders`` (MLP autoencoders with corruption, the linear
probe) and ``vq`` (the vector quantizer and a small VQ-VAE). Everything is
re-exported here.
"""
from . import autoencoders, clustering, linear, vq
from .autoencoders import *  # noqa: F401,F403
from .clustering import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .vq import *  # noqa: F401,F403

__all__ = [*autoencoders.__all__, *clustering.__all__, *linear.__all__,
           *vq.__all__]
