"""Message passing on dense adjacency matrices: GCN, GAT and GIN layers.

Chapter: graph neural networks. Signatures and parameter layouts follow
PyTorch Geometric (``GCNConv(in_channels, out_channels)`` with ``lin.weight``
of shape ``(out, in)`` and ``bias``; ``GATConv`` with ``att_src``/``att_dst``
of shape ``(1, heads, out)``; ``GINConv(nn, eps, train_eps)``), but every
layer takes a dense ``adjacency (..., N, N)`` instead of an edge list, so that
a batch of graphs is a batch of matrices and a complete graph is a matrix of
ones (the view of attention taken in the transformer chapter).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .graphs import check_graph

__all__ = ["propagate", "gcn_norm", "readout", "GCNConv", "GATConv", "GINConv"]

REDUCTIONS = ("sum", "mean", "max")


def _check_reduce(reduce: str) -> None:
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")


def propagate(x: torch.Tensor, adjacency: torch.Tensor, reduce: str = "sum"
              ) -> torch.Tensor:
    """Aggregate every node's in-neighbour features: ``m_i = AGG_{j: A_ij != 0} x_j``.

    ``sum`` weights by the entries of ``adjacency`` (``A @ x``); ``mean``
    divides that by the row sums; ``max`` takes the coordinatewise maximum
    over neighbours. Nodes without neighbours receive zeros.
    Shapes: ``x (..., N, C)``, ``adjacency (..., N, N)`` -> ``(..., N, C)``.
    """
    check_graph(x, adjacency)
    _check_reduce(reduce)
    if reduce == "sum":
        return adjacency @ x
    if reduce == "mean":
        deg = adjacency.sum(-1, keepdim=True)
        return (adjacency @ x) / deg.clamp(min=torch.finfo(x.dtype).tiny)
    edge = (adjacency != 0).unsqueeze(-1)                      # (..., N, N, 1)
    gathered = x.unsqueeze(-3).expand(*edge.shape[:-1], x.shape[-1])
    out = gathered.masked_fill(~edge, float("-inf")).amax(-2)
    return torch.where(edge.any(-2), out, torch.zeros_like(out))


def gcn_norm(adjacency: torch.Tensor, add_self_loops: bool = True) -> torch.Tensor:
    """The GCN propagation matrix ``D̃^{-1/2} (A + I) D̃^{-1/2}`` (Kipf and Welling).

    ``D̃`` is the diagonal of row sums of ``A + I``. Without self-loops it is
    ``D^{-1/2} A D^{-1/2}``, with isolated nodes mapped to zero rows.
    Shape: ``(..., N, N) -> (..., N, N)``.
    """
    n = check_graph(None, adjacency)
    a = adjacency
    if add_self_loops:
        a = a + torch.eye(n, dtype=a.dtype, device=a.device)
    deg = a.sum(-1)
    if (deg < 0).any():
        raise ValueError("adjacency must have non-negative row sums for gcn_norm")
    inv_sqrt = deg.pow(-0.5).masked_fill(deg == 0, 0.0)
    return inv_sqrt.unsqueeze(-1) * a * inv_sqrt.unsqueeze(-2)


def readout(x: torch.Tensor, mask: torch.Tensor | None = None,
            reduce: str = "sum") -> torch.Tensor:
    """Pool node features into one vector per graph, ignoring padded nodes.

    Shapes: ``x (..., N, C)``, ``mask (..., N)`` boolean (True on real nodes)
    -> ``(..., C)``. A permutation-invariant function of the node multiset.
    """
    _check_reduce(reduce)
    if mask is None:
        mask = torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
    if mask.shape != x.shape[:-1]:
        raise ValueError(f"mask must have shape {tuple(x.shape[:-1])}, got "
                         f"{tuple(mask.shape)}")
    m = mask.unsqueeze(-1)
    if reduce == "max":
        return x.masked_fill(~m, float("-inf")).amax(-2)
    total = (x * m).sum(-2)
    if reduce == "sum":
        return total
    return total / m.sum(-2).clamp(min=1)


def _glorot_(w: torch.Tensor, fan_in: int, fan_out: int,
             generator: torch.Generator | None) -> None:
    a = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        w.uniform_(-a, a, generator=generator)


class GCNConv(nn.Module):
    """Graph convolution ``H' = D̃^{-1/2} Ã D̃^{-1/2} H W^T + b`` (Kipf, Welling).

    Parameters as in PyTorch Geometric: ``lin.weight (out, in)``, ``bias
    (out,)``; Glorot-uniform weights from ``generator``, zero bias.
    Shapes: ``x (..., N, in_channels)``, ``adjacency (..., N, N)`` ->
    ``(..., N, out_channels)``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, *,
                 add_self_loops: bool = True, normalize: bool = True,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.add_self_loops, self.normalize = add_self_loops, normalize
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        _glorot_(self.lin.weight, in_channels, out_channels, generator)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        check_graph(x, adjacency)
        a = (gcn_norm(adjacency, self.add_self_loops) if self.normalize
             else adjacency)
        out = a @ self.lin(x)                       # eq. (gcn)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}"


class GATConv(nn.Module):
    """Graph attention (Veličković et al.), dense and masked by the adjacency.

    Scores ``e_ij = LeakyReLU(a_dst · W h_i + a_src · W h_j)`` for ``A_ij != 0``
    (and ``i = j`` with ``add_self_loops``), normalized by a softmax over
    ``j``: each row of attention sums to one over the neighbours and is zero
    elsewhere. ``heads`` outputs are concatenated (``concat=True``) or
    averaged. Parameters as in PyTorch Geometric: ``lin.weight (heads*out,
    in)``, ``att_src`` and ``att_dst`` ``(1, heads, out)``, ``bias``.
    Shapes: ``x (..., N, in)``, ``adjacency (..., N, N)`` -> ``(..., N,
    heads*out)`` or ``(..., N, out)``; with ``return_attention_weights`` also
    the attention ``(..., heads, N, N)``.
    """

    def __init__(self, in_channels: int, out_channels: int, heads: int = 1,
                 concat: bool = True, negative_slope: float = 0.2,
                 add_self_loops: bool = True, bias: bool = True, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.heads = heads
        self.concat, self.negative_slope = concat, negative_slope
        self.add_self_loops = add_self_loops
        self.lin = nn.Linear(in_channels, heads * out_channels, bias=False)
        _glorot_(self.lin.weight, in_channels, heads * out_channels, generator)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        for att in (self.att_src, self.att_dst):
            _glorot_(att, heads, out_channels, generator)
        width = heads * out_channels if concat else out_channels
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None

    def attention(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """Attention ``alpha (..., heads, N, N)`` from ``h (..., N, heads, out)``."""
        s_src = (h * self.att_src).sum(-1).transpose(-1, -2)    # (..., H, N)
        s_dst = (h * self.att_dst).sum(-1).transpose(-1, -2)
        e = F.leaky_relu(s_dst.unsqueeze(-1) + s_src.unsqueeze(-2),
                         self.negative_slope)                   # (..., H, N_i, N_j)
        edge = adjacency != 0
        if self.add_self_loops:
            eye = torch.eye(edge.shape[-1], dtype=torch.bool, device=edge.device)
            edge = edge | eye
        e = e.masked_fill(~edge.unsqueeze(-3), float("-inf"))
        alpha = torch.softmax(e, dim=-1)                        # eq. (gat-softmax)
        return torch.nan_to_num(alpha, nan=0.0)   # a node with no neighbours

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor,
                return_attention_weights: bool = False):
        check_graph(x, adjacency)
        h = self.lin(x).unflatten(-1, (self.heads, self.out_channels))
        alpha = self.attention(h, adjacency)
        out = alpha @ h.transpose(-2, -3)                       # (..., H, N, out)
        out = out.transpose(-2, -3)                             # (..., N, H, out)
        out = out.flatten(-2) if self.concat else out.mean(-2)
        if self.bias is not None:
            out = out + self.bias
        return (out, alpha) if return_attention_weights else out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, heads={self.heads}"


class GINConv(nn.Module):
    """Graph isomorphism layer ``h_i' = nn((1 + eps) h_i + sum_{j in N(i)} h_j)``.

    From Xu et al. (2019).

    Sum aggregation (the injective one), ``eps`` a learnable scalar when
    ``train_eps`` (as in PyTorch Geometric, default fixed at its value).
    Shapes: ``x (..., N, C)``, ``adjacency (..., N, N)`` -> ``nn``'s output.
    """

    def __init__(self, nn: nn.Module, eps: float = 0.0,
                 train_eps: bool = False) -> None:
        super().__init__()
        self.nn = nn
        eps_t = torch.tensor([float(eps)])
        if train_eps:
            self.eps = torch.nn.Parameter(eps_t)
        else:
            self.register_buffer("eps", eps_t)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        check_graph(x, adjacency)
        return self.nn((1 + self.eps) * x + adjacency @ x)      # eq. (gin)
