"""The tent map, the sawtooth and its shallow approximations.

Chapter: approximation (depth separation).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .networks import as_float64, relu_interpolant

__all__ = [
    "tent_net",
    "sawtooth",
    "sawtooth_net",
    "shallow_sawtooth_net",
    "sawtooth_l1_lower_bound",
    "l1_error",
]


def tent_net() -> nn.Sequential:
    """The tent map ``T(x) = 2 relu(x) - 4 relu(x - 1/2)`` as a width-2 network.

    On ``[0, 1]``, ``T(x) = 2x`` for ``x <= 1/2`` and ``2 - 2x`` after.
    """
    return sawtooth_net(1)


def sawtooth(x: torch.Tensor, k: int) -> torch.Tensor:
    """Closed form of the ``k``-fold composition of the tent map on ``[0, 1]``.

    ``s_k(x) = 1 - |2 y - 1|`` with ``y = frac(2^(k-1) x)``: ``2^(k-1)`` teeth,
    ``2^k`` linear pieces. (An oracle independent of :func:`sawtooth_net`.)
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    y = torch.remainder(x * 2.0 ** (k - 1), 1.0)
    # the right end of a tooth (y = 0 at x = 1) belongs to the tooth before it
    y = torch.where((y == 0) & (x > 0), torch.ones_like(y), y)
    return 1 - (2 * y - 1).abs()


def sawtooth_net(k: int, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """The composition ``T o ... o T`` (``k`` times): width 2, ``k`` hidden layers.

    Hidden layer ``l`` holds ``(relu(s), relu(s - 1/2))`` of the previous tooth
    function ``s``; the next layer forms ``T(s) = 2 relu(s) - 4 relu(s - 1/2)``
    and feeds it on, so consecutive affine maps are merged into one
    ``nn.Linear(2, 2)``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    first = nn.Linear(1, 2, dtype=dtype)
    mids = [nn.Linear(2, 2, dtype=dtype) for _ in range(k - 1)]
    last = nn.Linear(2, 1, dtype=dtype)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0], [1.0]]))
        first.bias.copy_(torch.tensor([0.0, -0.5]))
        for lin in mids:  # (s, s - 1/2) with s = 2 h_1 - 4 h_2
            lin.weight.copy_(torch.tensor([[2.0, -4.0], [2.0, -4.0]]))
            lin.bias.copy_(torch.tensor([0.0, -0.5]))
        last.weight.copy_(torch.tensor([[2.0, -4.0]]))
        last.bias.zero_()
    layers: list[nn.Module] = [first, nn.ReLU()]
    for lin in mids:
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers, last)


def shallow_sawtooth_net(k: int, teeth: int) -> nn.Sequential:
    """One hidden layer: exact on the first ``teeth`` teeth of ``s_k``, then 1/2.

    Knots ``0, h, ..., 2 j h`` follow the sawtooth (``h = 2^-k``, ``j = teeth``),
    then the net rises to 1/2 at ``(2j + 1) h`` and stays there: each dropped
    tooth is replaced by the constant that is L1-optimal on it. Width
    ``2 j + 2`` (or ``2^k`` when ``j = 2^(k-1)``); L1 error ``(1 - j/2^(k-1))/4``.
    """
    n_teeth = 2 ** (k - 1)
    if not 0 <= teeth <= n_teeth:
        raise ValueError(f"teeth must be in [0, {n_teeth}], got {teeth}")
    h = 2.0 ** -k
    knots = [i * h for i in range(2 * teeth + 1)]
    if teeth < n_teeth:
        knots += [(2 * teeth + 1) * h, 1.0]
    x = torch.tensor(knots, dtype=torch.float64)
    y = sawtooth(x, k)
    if teeth < n_teeth:
        y[-2:] = 0.5
    return relu_interpolant(x, y)


def sawtooth_l1_lower_bound(pieces: int, k: int) -> float:
    """Lower bound on ``int_0^1 |f - s_k|`` for any ``f`` with ``pieces`` pieces.

    ``(1/4) (1 - (pieces - 1) / 2^(k-1))``, clipped at 0 (proved in the chapter).
    """
    if pieces < 1:
        raise ValueError(f"pieces must be >= 1, got {pieces}")
    return max(0.0, 0.25 * (1 - (pieces - 1) / 2 ** (k - 1)))


def l1_error(model: nn.Module, f: Callable[[torch.Tensor], torch.Tensor],
             a: float = 0.0, b: float = 1.0, n_grid: int = 2 ** 16 + 1) -> float:
    """``int_a^b |model(x) - f(x)| dx`` by the trapezoid rule on a uniform grid."""
    x = torch.linspace(a, b, n_grid, dtype=torch.float64)[:, None]
    with torch.no_grad():
        e = (as_float64(model)(x) - f(x)).abs().reshape(-1)
    return float(torch.trapezoid(e, dx=(b - a) / (n_grid - 1)))
