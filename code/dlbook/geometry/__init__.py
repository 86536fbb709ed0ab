"""Geometric deep learning: symmetry as a prior (chapter: geometry).

* groups -- representations of C_4, S_n and O(n), the group average
  :func:`symmetrize`, and measured :func:`invariance_error` /
  :func:`equivariance_error`;
* sets -- :class:`DeepSets` and the :class:`SetMLP` baseline, set tasks, and
  the power-sum decomposition of the representation theorem;
* gconv -- p4 group convolutions after Cohen and Welling (2016):
  :class:`P4ConvZ2`, :class:`P4ConvP4`, :func:`rotate_p4`, and the
  :class:`P4CNN` / :class:`PlainCNN` classifiers;
* egnn -- the E(n)-equivariant :class:`EGNNLayer` of Satorras et al. (2021),
  the :class:`EGNN` model, the :class:`PointMLP` baseline and the generated
  spring / Lennard-Jones tasks.

Everything is importable from here.
"""
from __future__ import annotations

from . import egnn, gconv, groups, sets
from .egnn import *  # noqa: F401,F403
from .gconv import *  # noqa: F401,F403
from .groups import *  # noqa: F401,F403
from .sets import *  # noqa: F401,F403

__all__ = [*groups.__all__, *sets.__all__, *gconv.__all__, *egnn.__all__]
