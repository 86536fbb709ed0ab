"""Exact counting of the linear pieces of a ReLU network along a line.

Chapter: approximation (linear regions).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "breakpoints",
    "count_pieces",
    "max_pieces",
    "restrict_to_line",
    "activation_patterns",
    "neuron_gradient_norms",
]


def _affine_layers(model: nn.Module) -> list[nn.Module]:
    layers = list(model) if isinstance(model, nn.Sequential) else [model]
    for layer in layers:
        if not isinstance(layer, (nn.Linear, nn.ReLU)):
            raise TypeError(f"only nn.Linear and nn.ReLU layers, got {layer!r}")
    if not isinstance(layers[0], nn.Linear) or layers[0].in_features != 1:
        raise ValueError("the first layer must be nn.Linear with in_features=1; "
                         "use restrict_to_line for inputs in R^d")
    return layers


def breakpoints(model: nn.Module, a: float, b: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every point of ``(a, b)`` where some neuron of a 1-D ReLU net switches.

    Propagates a sorted list of points layer by layer, in float64: between two
    consecutive points every pre-activation is affine, so a ReLU adds the zero
    crossing of each neuron whose sign differs at the two ends (found by
    linear interpolation, exactly). Returns ``(x, y)``: the points, including
    ``a`` and ``b``, and the network's output at them, shapes ``(P,)`` and
    ``(P, d_out)``. The network is affine between consecutive points.
    """
    if not b > a:
        raise ValueError(f"need b > a, got a={a}, b={b}")
    x = torch.tensor([a, b], dtype=torch.float64)
    h = x[:, None]
    with torch.no_grad():
        for layer in _affine_layers(model):
            if isinstance(layer, nn.Linear):
                h = nn.functional.linear(h, layer.weight.double(),
                                         layer.bias.double())
                continue
            h0, h1 = h[:-1], h[1:]
            i, j = torch.nonzero((h0 * h1) < 0, as_tuple=True)
            t = h0[i, j] / (h0[i, j] - h1[i, j])  # zero of neuron j on interval i
            x_new = x[i] + t * (x[i + 1] - x[i])
            h_new = h0[i] + t[:, None] * (h1[i] - h0[i])
            h_new[torch.arange(len(j)), j] = 0.0
            x = torch.cat([x, x_new])
            h = torch.cat([h, h_new])
            order = torch.argsort(x)
            x, h = x[order], h[order]
            keep = torch.ones_like(x, dtype=torch.bool)
            keep[1:] = x[1:] - x[:-1] > 1e-13 * max(1.0, b - a)
            x, h = x[keep], torch.relu(h[keep])
    return x, h


def count_pieces(model: nn.Module, a: float, b: float, rtol: float = 1e-7,
                 regions: bool = False) -> int:
    """Number of maximal intervals of ``[a, b]`` on which the net is affine.

    With ``regions=True``, count activation regions instead (intervals between
    consecutive neuron switches), which can exceed the pieces of the function
    when a switch leaves the output's slope unchanged. Scalar output only.
    """
    x, y = breakpoints(model, a, b)
    if regions:
        return len(x) - 1
    if y.shape[1] != 1:
        raise ValueError(f"count_pieces needs a scalar output, got {y.shape[1]}")
    slope = (y[1:, 0] - y[:-1, 0]) / (x[1:] - x[:-1])
    scale = rtol * (1.0 + slope.abs().max())
    return 1 + int(((slope[1:] - slope[:-1]).abs() > scale).sum())


def max_pieces(hidden_widths: Sequence[int]) -> int:
    """The counting bound ``prod_l (m_l + 1)`` on the pieces of a 1-D ReLU net."""
    return math.prod(n + 1 for n in hidden_widths)


def restrict_to_line(model: nn.Sequential, p: torch.Tensor,
                     v: torch.Tensor) -> nn.Sequential:
    """The net ``t -> model(p + t v)`` as a network with one input.

    Folds the line into the first layer: ``W (p + t v) + b = (W v) t + (W p + b)``.
    Shapes: ``p (d,)``, ``v (d,)``; the result is float64.
    """
    first = model[0]
    if not isinstance(first, nn.Linear) or p.shape != (first.in_features,) \
            or v.shape != p.shape:
        raise ValueError(f"p and v must have shape ({first.in_features},)")
    W, b = first.weight.detach().double(), first.bias.detach().double()
    lin = nn.Linear(1, first.out_features, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_((W @ v.double())[:, None])
        lin.bias.copy_(W @ p.double() + b)
    rest = [_as_double(layer) for layer in list(model)[1:]]
    return nn.Sequential(lin, *rest)


def _as_double(layer: nn.Module) -> nn.Module:
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
        new.load_state_dict({k: t.double() for k, t in layer.state_dict().items()})
        return new
    return layer


def activation_patterns(model: nn.Sequential, X: torch.Tensor) -> torch.Tensor:
    """An integer id per input for its ReLU on/off pattern (its linear region).

    Inputs with equal ids lie in the same activation region. Shape ``X (N, d)``
    -> ``(N,)`` with ids ``0..R-1`` (``R`` distinct patterns seen).
    """
    on, h = [], X
    with torch.no_grad():
        for layer in model:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                on.append(h > 0)
    if not on:
        return torch.zeros(len(X), dtype=torch.long)
    _, ids = torch.unique(torch.cat(on, dim=1), dim=0, return_inverse=True)
    return ids


def neuron_gradient_norms(model: nn.Sequential, X: torch.Tensor) -> torch.Tensor:
    """``|grad_x z_j(x)|`` for every hidden pre-activation ``z_j`` of a ReLU net.

    The input Jacobian of each hidden layer's pre-activations is carried
    forward, ``J_l = W_l diag(z_{l-1} > 0) J_{l-1}`` with ``J_1 = W_1``: the
    quantity whose size ``C_grad`` bounds in Hanin and Rolnick's theorem.
    Shape ``X (N, d)`` -> ``(N, L, m)`` for ``L`` hidden layers of width ``m``
    (hidden widths must be equal), float64.
    """
    lins = [layer for layer in model if isinstance(layer, nn.Linear)][:-1]
    if not lins or len({lin.out_features for lin in lins}) != 1:
        raise ValueError("need at least one hidden layer, all of the same width")
    X = X.double()
    W = lins[0].weight.detach().double()
    J = W.expand(len(X), *W.shape)  # (N, m, d)
    z = X @ W.T + lins[0].bias.detach().double()
    norms = [J.norm(dim=2)]
    for lin in lins[1:]:
        W = lin.weight.detach().double()
        J = W @ ((z > 0).double()[:, :, None] * J)
        z = torch.relu(z) @ W.T + lin.bias.detach().double()
        norms.append(J.norm(dim=2))
    return torch.stack(norms, dim=1)
