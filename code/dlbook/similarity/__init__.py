"""Learning by similarity (Part III): metric learning, InfoNCE and its bound on
mutual information, SimCLR on the digits, alignment and uniformity, and a
CLIP-style two-tower model with zero-shot classification.

Submodules: ``losses`` (pair, triplet, InfoNCE, NT-Xent and CLIP losses),
``geometry`` (alignment, uniformity, the Gaussian mutual-information check),
``views`` (augmentations and the two-view wrapper) and ``tasks`` (pairs,
captions, two towers, probes). Everything is re-exported here.
"""
from . import geometry, losses, tasks, views
from .geometry import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .tasks import *  # noqa: F401,F403
from .views import *  # noqa: F401,F403

__all__ = [*losses.__all__, *geometry.__all__, *views.__all__, *tasks.__all__]
