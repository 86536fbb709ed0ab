"""Scaling laws and training at scale (Part VI).

Submodules by topic: ``powerlaw`` (fitting power laws and the two-variable
law, with bootstrap intervals), ``allocation`` (compute-optimal model and
data sizes, the published constants), ``study`` (a random-feature scaling
study that runs in seconds), ``ddp`` (data-parallel training with
``torch.distributed`` and the ring all-reduce model) and ``memory`` (memory
of model states under data, tensor, pipeline and sharded parallelism).
Everything public is re-exported here: ``from dlbook import scaling``.
"""
from . import allocation, ddp, memory, powerlaw, study
from .allocation import *  # noqa: F401,F403
from .ddp import *  # noqa: F401,F403
from .memory import *  # noqa: F401,F403
from .powerlaw import *  # noqa: F401,F403
from .study import *  # noqa: F401,F403

__all__ = [*allocation.__all__, *ddp.__all__, *memory.__all__,
           *powerlaw.__all__, *study.__all__]
