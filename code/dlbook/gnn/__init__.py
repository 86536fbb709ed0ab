"""Graph neural networks (chapter: graph neural networks).

* ``graphs`` -- dense adjacency matrices from networkx graphs, node
  permutations, padded batches of graphs of different sizes;
* ``layers`` -- :func:`propagate` (sum, mean and max aggregation),
  :func:`gcn_norm`, :class:`GCNConv`, :class:`GATConv`, :class:`GINConv`,
  :func:`readout`, with PyTorch Geometric's signatures on dense adjacency;
* ``wl`` -- the 1-Weisfeiler-Lehman test: :func:`wl_colors`,
  :func:`wl_distinguishes`, and WL subtree features;
* ``models`` -- a GCN node classifier, a GIN/GCN graph classifier, adapters
  for :func:`dlbook.train.fit`, label propagation and the Dirichlet energy.

Everything is importable from here: ``from dlbook import gnn; gnn.GCNConv``.
"""
from __future__ import annotations

from . import graphs, layers, models, wl
from .graphs import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .wl import *  # noqa: F401,F403

__all__ = [*graphs.__all__, *layers.__all__, *wl.__all__, *models.__all__]
