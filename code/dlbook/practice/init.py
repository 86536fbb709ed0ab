"""Variance propagation through depth (chapter: the practice of training).

The initialization schemes themselves live in :mod:`dlbook.nn`
(:func:`dlbook.nn.init_`); this module predicts and measures what they do to
the second moments of the pre-activations, forward and backward.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["weight_variance", "predicted_second_moments", "second_moments",
           "signal_variances", "gradient_second_moments", "geometric_rate",
           "mean_cosine_similarity"]

_RELU_FACTOR = {"relu": 0.5, "linear": 1.0}


def weight_variance(scheme: str, n_in: int, n_out: int,
                    gain: float = 1.0) -> float:
    """The variance of one weight under ``scheme`` (see :func:`dlbook.nn.init_layer_`).

    ``"pytorch"`` is ``U(-1/sqrt(n_in), 1/sqrt(n_in))``, variance ``1/(3 n_in)``
    (``gain`` does not apply to it).
    """
    table = {"lecun": gain**2 / n_in, "he": 2 * gain**2 / n_in,
             "glorot": 2 * gain**2 / (n_in + n_out), "pytorch": 1 / (3 * n_in)}
    if scheme not in table:
        raise ValueError(f"scheme must be one of {sorted(table)}, got {scheme!r}")
    return table[scheme]


def predicted_second_moments(sizes: Sequence[int], scheme: str,
                             input_moment: float, activation: str = "relu",
                             gain: float = 1.0) -> list[float]:
    """``q_l = E[z_l^2]`` of the pre-activations of every linear layer.

    The recursion of the chapter's variance-propagation theorem:
    ``q_1 = m_0 v_1 q_0`` with ``q_0 = input_moment``, the mean of
    ``E[x_j^2]`` over coordinates, and ``q_l = chi m_{l-1} v_l q_{l-1} + v_b``
    with ``chi = 1/2`` for ReLU and ``1`` for a linear network; ``m_l`` are
    the widths ``sizes`` and ``v_b`` the bias variance (``1/(3 m_{l-1})`` for
    ``"pytorch"``, zero otherwise). Returns ``len(sizes) - 1`` values.
    """
    if activation not in _RELU_FACTOR:
        raise ValueError(f"activation must be 'relu' or 'linear', got {activation!r}")
    c, q, out = _RELU_FACTOR[activation], None, []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        v = weight_variance(scheme, n_in, n_out, gain)
        v_b = 1 / (3 * n_in) if scheme == "pytorch" else 0.0
        q = n_in * v * (input_moment if q is None else c * q) + v_b
        out.append(q)
    return out


def _linear_outputs(model: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Run ``model`` layer by layer; return the output of every ``nn.Linear``."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model must be an nn.Sequential, got {type(model).__name__}")
    outs = []
    for layer in model:
        x = layer(x)
        if isinstance(layer, nn.Linear):
            outs.append(x)
    return outs


@torch.no_grad()
def second_moments(model: nn.Sequential, x: torch.Tensor) -> list[float]:
    """Measured ``E[z_l^2]`` (mean over examples and units) of each linear
    layer's output. Shape: ``x (N, sizes[0])``."""
    return [z.pow(2).mean().item() for z in _linear_outputs(model, x)]


@torch.no_grad()
def signal_variances(model: nn.Sequential, x: torch.Tensor) -> list[float]:
    """The part of each linear layer's output that depends on the input: the
    variance over examples, averaged over units. Shape: ``x (N, sizes[0])``."""
    return [z.var(dim=0).mean().item() for z in _linear_outputs(model, x)]


def gradient_second_moments(model: nn.Sequential, x: torch.Tensor,
                            y: torch.Tensor,
                            loss_fn: Callable[[torch.Tensor, torch.Tensor],
                                              torch.Tensor]) -> list[float]:
    """Measured ``E[(dL/dz_l)^2]`` for each linear layer's output ``z_l``,
    with ``L`` the *summed* loss (so the scale does not depend on ``N``)."""
    zs = _linear_outputs(model, x)
    loss = loss_fn(zs[-1], y) * len(x)
    grads = torch.autograd.grad(loss, zs)
    return [g.pow(2).mean().item() for g in grads]


def geometric_rate(moments: Sequence[float]) -> float:
    """The per-layer factor of a geometric sequence fitted to ``moments``
    (least squares on the logarithms)."""
    logs = torch.tensor([math.log(m) for m in moments], dtype=torch.float64)
    t = torch.arange(len(logs), dtype=torch.float64)
    slope = ((t - t.mean()) * (logs - logs.mean())).sum() / ((t - t.mean()) ** 2).sum()
    return math.exp(slope.item())



@torch.no_grad()
def mean_cosine_similarity(h: torch.Tensor) -> float:
    """The mean cosine similarity between the rows of ``h`` over all pairs of
    distinct rows: near 1 when a network maps all inputs to one direction.
    Shape: ``h (N, D)``, ``N >= 2``."""
    if h.ndim != 2 or len(h) < 2:
        raise ValueError(f"h must be (N, D) with N >= 2, got {tuple(h.shape)}")
    u = h / h.norm(dim=1, keepdim=True).clamp_min(1e-30)
    n = len(u)
    total = (u.sum(0) ** 2).sum() - (u ** 2).sum()
    return (total / (n * (n - 1))).item()
