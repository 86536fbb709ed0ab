"""Networks built from the layers, and the chapter's graph computations.

Chapter: graph neural networks. :class:`GCN` is the two-layer node classifier
of Kipf and Welling; :class:`GraphClassifier` stacks GIN (or GCN) layers and
pools them into one vector per graph, as in Xu et al.; :class:`OnNodes` and
:class:`OnGraphs` let :func:`dlbook.train.fit` index nodes or graphs like
rows of a data set. :func:`label_propagation` and :func:`dirichlet_energy`
are the baseline and the measurement of the chapter.
"""
from __future__ import annotations

import torch
from torch import nn

from dlbook.nn import Dropout, init_layer_, mlp

from .graphs import check_graph
from .layers import REDUCTIONS, GCNConv, GINConv, gcn_norm, readout

__all__ = ["GCN", "GraphClassifier", "OnNodes", "OnGraphs", "label_propagation",
           "dirichlet_energy"]

#: The message-passing layers :class:`GraphClassifier` can stack.
CONVS = ("gin", "gcn", "gcn-mlp")


class GCN(nn.Module):
    """``num_layers`` GCN layers with ReLU (and optional dropout) between them.

    Shapes: ``x (..., N, in_channels)``, ``adjacency (..., N, N)`` ->
    ``(..., N, out_channels)`` (logits per node).
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 2, dropout: float = 0.0, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        sizes = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.convs = nn.ModuleList(GCNConv(a, b, generator=generator)
                                   for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = Dropout(dropout, generator=generator) if dropout else None

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        for k, conv in enumerate(self.convs):
            if self.dropout is not None:
                x = self.dropout(x)
            x = conv(x, adjacency)
            if k < len(self.convs) - 1:
                x = torch.relu(x)
        return x


class GraphClassifier(nn.Module):
    """Message-passing layers, a readout of every layer, and a linear head.

    ``conv="gin"``: ``GINConv(mlp([c, hidden, hidden]), train_eps=True)``;
    ``conv="gcn"``: ``GCNConv(c, hidden)`` followed by ReLU (a one-layer
    perceptron update); ``conv="gcn-mlp"``: the same GCN propagation followed
    by a two-layer MLP, which isolates the update from the aggregation. The
    graph vector concatenates ``readout(h^(k), mask, readout)`` over
    ``k = 0..num_layers`` (Xu et al., eq. 4.2) and a linear layer maps it to
    ``out_channels``.
    Shapes: ``x (B, N, C)``, ``adjacency (B, N, N)``, ``mask (B, N)`` ->
    ``(B, out_channels)``; ``embed`` returns the graph vectors.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 3, conv: str = "gin", readout: str = "sum", *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {conv!r}")
        if readout not in REDUCTIONS:
            raise ValueError(f"readout must be one of {REDUCTIONS}, got {readout!r}")
        self.conv_kind, self.reduce = conv, readout
        sizes = [in_channels] + [hidden_channels] * num_layers
        self.convs = nn.ModuleList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            if conv == "gin":
                self.convs.append(GINConv(mlp([a, b, b], generator=generator),
                                          train_eps=True))
            elif conv == "gcn":
                self.convs.append(GCNConv(a, b, generator=generator))
            else:
                self.convs.append(_GCNThenMLP(a, b, generator))
        self.head = init_layer_(nn.Linear(sum(sizes), out_channels),
                                generator=generator)

    def embed(self, x: torch.Tensor, adjacency: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
        check_graph(x, adjacency)
        pooled = [readout(x, mask, self.reduce)]
        for conv in self.convs:
            x = torch.relu(conv(x, adjacency))
            pooled.append(readout(x, mask, self.reduce))
        return torch.cat(pooled, -1)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(x, adjacency, mask))


class _GCNThenMLP(nn.Module):
    """``mlp([out, out, out])(ReLU(GCNConv(x, A)))``: GCN's aggregation, MLP update."""

    def __init__(self, in_channels: int, out_channels: int,
                 generator: torch.Generator | None) -> None:
        super().__init__()
        self.conv = GCNConv(in_channels, out_channels, generator=generator)
        self.mlp = mlp([out_channels] * 3, generator=generator)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.relu(self.conv(x, adjacency)))


class OnNodes(nn.Module):
    """Run ``model(x, adjacency)`` on the whole graph; return the rows ``index``.

    Lets :func:`dlbook.train.fit` train a node classifier on labelled nodes
    with data ``(index, labels)``: every step sees the whole graph.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor,
                 adjacency: torch.Tensor) -> None:
        super().__init__()
        check_graph(x, adjacency)
        self.model = model
        self.register_buffer("x", x)
        self.register_buffer("adjacency", adjacency)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.model(self.x, self.adjacency)[index.reshape(-1)]


class OnGraphs(nn.Module):
    """Look graphs up by index in a padded batch and classify them.

    Data ``(index, labels)`` for :func:`dlbook.train.fit`; ``x (B, N, C)``,
    ``adjacency (B, N, N)``, ``mask (B, N)`` as from
    :func:`dlbook.gnn.pad_graphs`.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, adjacency: torch.Tensor,
                 mask: torch.Tensor) -> None:
        super().__init__()
        check_graph(x, adjacency)
        self.model = model
        for name, t in (("x", x), ("adjacency", adjacency), ("mask", mask)):
            self.register_buffer(name, t)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        i = index.reshape(-1)
        return self.model(self.x[i], self.adjacency[i], self.mask[i])


def label_propagation(adjacency: torch.Tensor, index: torch.Tensor,
                      labels: torch.Tensor, num_classes: int | None = None,
                      alpha: float = 0.9) -> torch.Tensor:
    """Label spreading (Zhou et al., 2004): ``F = (1 - alpha)(I - alpha S)^{-1} Y``.

    ``S = D^{-1/2} A D^{-1/2}``; ``Y`` one-hot on the labelled nodes ``index``
    and zero elsewhere. ``F`` is the fixed point of ``F <- alpha S F +
    (1 - alpha) Y``. Returns class scores ``(N, num_classes)``.
    """
    n = check_graph(None, adjacency)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    y = torch.zeros(n, k, dtype=adjacency.dtype)
    y[index, labels] = 1.0
    s = gcn_norm(adjacency, add_self_loops=False)
    eye = torch.eye(n, dtype=adjacency.dtype)
    return (1 - alpha) * torch.linalg.solve(eye - alpha * s, y)


def dirichlet_energy(x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    """Dirichlet energy ``E(X) = tr(X^T (I - Â) X)`` with ``Â = gcn_norm(A)``.

    Equals ``1/2 sum_ij Ã_ij ||x_i / sqrt(d̃_i) - x_j / sqrt(d̃_j)||^2`` for
    symmetric ``A``; zero exactly when ``X`` is a multiple of ``D̃^{1/2} 1``
    on each connected component. Shapes: ``(..., N, C)``, ``(..., N, N)`` ->
    ``(...)``.
    """
    check_graph(x, adjacency)
    smooth = gcn_norm(adjacency) @ x
    return (x * (x - smooth)).sum((-1, -2))
