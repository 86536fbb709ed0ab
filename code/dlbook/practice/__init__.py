"""The practice of training (Part II): the checklist, initialization through
depth, normalization layers, the learning-rate range test, and a gallery of
bugs.

Submodules: ``checks`` (the checklist), ``init`` (variance propagation),
``norm`` (batch and layer normalization), ``schedules`` (the range test) and
``bugs`` (the gallery). Everything is re-exported here, so that
``from dlbook import practice`` gives ``practice.BatchNorm1d`` and the rest.
"""
from . import bugs, checks, init, norm, schedules
from .bugs import *  # noqa: F401,F403
from .checks import *  # noqa: F401,F403
from .init import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .schedules import *  # noqa: F401,F403

__all__ = [*bugs.__all__, *checks.__all__, *init.__all__, *norm.__all__,
           *schedules.__all__]
