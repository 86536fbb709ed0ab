"""Reinforcement learning (Part VII): finite MDPs and dynamic programming
(``mdp``), tabular Q-learning (``tabular``), policy gradients and an
actor-critic for softmax policies (``pg``), and deep Q-networks (``deepq``) on a
``gymnasium`` task (``dqn``). Everything is re-exported here, so that
``from dlbook import rl`` gives ``rl.value_iteration`` and the rest.
"""
from . import deepq, mdp, pg, tabular
from .deepq import *  # noqa: F401,F403
from .mdp import *  # noqa: F401,F403
from .pg import *  # noqa: F401,F403
from .tabular import *  # noqa: F401,F403

__all__ = [*mdp.__all__, *tabular.__all__, *pg.__all__, *deepq.__all__]
