"""Graphs as tensors: adjacency matrices, permutations, padded batches.

Chapter: graph neural networks. The book's convention for a dense adjacency
``A`` of shape ``(..., N, N)``: ``A[i, j] != 0`` means that node ``j`` sends a
message to node ``i`` (row ``i`` receives), so that ``A @ X`` sums, for every
node, the features of its in-neighbours. Undirected graphs have symmetric
``A``. Leading batch dimensions are allowed everywhere.
"""
from __future__ import annotations

import networkx as nx
import torch

__all__ = ["check_graph", "adjacency_matrix", "permutation_matrix",
           "permute_graph", "pad_graphs", "constant_features"]


def check_graph(x: torch.Tensor | None, adjacency: torch.Tensor) -> int:
    """Check shapes ``x: (..., N, C)`` and ``adjacency: (..., N, N)``; return N.

    Fails early, naming the argument, the expected shape and what it got.
    """
    if not isinstance(adjacency, torch.Tensor) or adjacency.dim() < 2:
        raise ValueError("adjacency must be a tensor of shape (..., N, N), got "
                         f"{getattr(adjacency, 'shape', type(adjacency))}")
    n = adjacency.shape[-1]
    if adjacency.shape[-2] != n:
        raise ValueError(f"adjacency must be square (..., N, N), got "
                         f"{tuple(adjacency.shape)}")
    if x is not None:
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[-2] != n:
            raise ValueError(f"x must have shape (..., {n}, C) to match adjacency "
                             f"{tuple(adjacency.shape)}, got "
                             f"{tuple(getattr(x, 'shape', ()))}")
    return n


def adjacency_matrix(graph: nx.Graph, dtype: torch.dtype = torch.float32,
                     nodelist: list | None = None) -> torch.Tensor:
    """The dense adjacency of a networkx graph, in ``nodelist`` order.

    ``nodelist`` defaults to ``list(graph.nodes)``. Shape: ``(N, N)``, with
    ``A[i, j] = 1`` for an edge ``j -> i`` (both ways for undirected graphs).
    """
    nodes = list(graph.nodes) if nodelist is None else list(nodelist)
    index = {v: i for i, v in enumerate(nodes)}
    a = torch.zeros(len(nodes), len(nodes), dtype=dtype)
    for u, v in graph.edges():
        a[index[v], index[u]] = 1.0
        if not graph.is_directed():
            a[index[u], index[v]] = 1.0
    return a


def permutation_matrix(perm: torch.Tensor, dtype: torch.dtype = torch.float32
                       ) -> torch.Tensor:
    """The matrix ``P`` with ``(P X)[i] = X[perm[i]]``. Shape: ``(N, N)``."""
    n = len(perm)
    if sorted(perm.tolist()) != list(range(n)):
        raise ValueError(f"perm must be a permutation of 0..{n - 1}, got {perm}")
    p = torch.zeros(n, n, dtype=dtype)
    p[torch.arange(n), perm] = 1.0
    return p


def permute_graph(x: torch.Tensor, adjacency: torch.Tensor, perm: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Relabel the nodes: ``(P X, P A P^T)``, ``P`` as in :func:`permutation_matrix`.

    Computed by indexing, so it is exact. Shapes as in :func:`check_graph`.
    """
    check_graph(x, adjacency)
    return x[..., perm, :], adjacency[..., perm, :][..., :, perm]


def pad_graphs(graphs: list[nx.Graph], features: list[torch.Tensor] | None = None,
               dtype: torch.dtype = torch.float32
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack graphs of different sizes into a padded dense batch.

    Returns ``x (B, N_max, C)``, ``adjacency (B, N_max, N_max)`` and a boolean
    ``mask (B, N_max)`` that is True on real nodes. Padded nodes have no edges
    and zero features; readouts must use ``mask``. Without ``features`` every
    node gets the single feature 1 (:func:`constant_features`).
    """
    if not graphs:
        raise ValueError("graphs must be a non-empty list of networkx graphs")
    if features is None:
        features = [constant_features(g.number_of_nodes(), dtype) for g in graphs]
    if len(features) != len(graphs):
        raise ValueError(f"got {len(features)} feature tensors for {len(graphs)} "
                         "graphs")
    n_max = max(g.number_of_nodes() for g in graphs)
    c = features[0].shape[-1]
    x = torch.zeros(len(graphs), n_max, c, dtype=dtype)
    a = torch.zeros(len(graphs), n_max, n_max, dtype=dtype)
    mask = torch.zeros(len(graphs), n_max, dtype=torch.bool)
    for b, (g, f) in enumerate(zip(graphs, features)):
        n = g.number_of_nodes()
        if f.shape != (n, c):
            raise ValueError(f"features[{b}] must have shape ({n}, {c}), got "
                             f"{tuple(f.shape)}")
        x[b, :n], a[b, :n, :n], mask[b, :n] = f, adjacency_matrix(g, dtype), True
    return x, a, mask


def constant_features(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The uninformative input ``ones(n, 1)``: only the graph carries information."""
    return torch.ones(n, 1, dtype=dtype)
