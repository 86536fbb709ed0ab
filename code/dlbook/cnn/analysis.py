"""Chapter 6 (cnn): receptive fields, parameter / FLOP / connection counts,
and input-output Jacobian spectra.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .layers import Conv1d, Conv2d, MaxPool2d
from .models import EuclideanRBF, SparseConv2d, Subsampling

__all__ = ["receptive_field", "gradient_receptive_field", "LayerCount",
           "layer_counts", "jacobian", "jacobian_singular_values"]


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> int:
    """Receptive field (along one axis) of a stack of windows, eq. (rf).

    ``layers`` lists ``(kernel, stride, dilation)`` from the input up:
    ``r = 1 + sum_l d_l (k_l - 1) prod_{i < l} s_i``.
    """
    r, jump = 1, 1
    for k, s, d in layers:
        if min(k, s, d) < 1:
            raise ValueError(f"kernel, stride and dilation must be >= 1, "
                             f"got {(k, s, d)}")
        r += d * (k - 1) * jump
        jump *= s
    return r


def gradient_receptive_field(model: Callable[[torch.Tensor], torch.Tensor],
                             input_shape: tuple[int, int, int],
                             position: tuple[int, int] | None = None,
                             channel: int = 0) -> torch.Tensor:
    """``|d out[channel, i, j] / d input|`` summed over input channels.

    The support of this map is the receptive field of output unit
    ``(i, j)`` (the centre by default). Shapes: ``input_shape = (C, H, W)``;
    returns ``(H, W)``. The input is random Gaussian (seed 0), in float64,
    so that no ReLU sits exactly at its kink.
    """
    x = torch.randn(1, *input_shape, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0)).requires_grad_()
    out = model(x)
    if out.ndim != 4:
        raise ValueError(f"model must return (N, C, H, W) maps, "
                         f"got {tuple(out.shape)}")
    i, j = position if position is not None else (out.shape[2] // 2,
                                                  out.shape[3] // 2)
    (g,) = torch.autograd.grad(out[0, channel, i, j], x)
    return g[0].abs().sum(0)


@dataclass(frozen=True)
class LayerCount:
    """One layer of :func:`layer_counts`.

    ``macs`` counts multiply-accumulates of weights with inputs (FLOPs are
    about twice that); ``connections`` counts, as LeCun et al. (1998) do,
    every input-to-unit link plus one bias link per unit.
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    connections: int


def _count(m: nn.Module, out: torch.Tensor) -> tuple[int, int]:
    """``(macs, connections)`` of one module for one example."""
    units = math.prod(out.shape[1:])
    if isinstance(m, (Conv2d, Conv1d)):
        fan_in = m.weight[0].numel()
        return units * fan_in, units * (fan_in + (m.bias is not None))
    if isinstance(m, SparseConv2d):
        per_map = math.prod(out.shape[2:])
        macs = per_map * m.weight.numel()
        return macs, macs + units
    if isinstance(m, Subsampling):
        return units * 4, units * 5
    if isinstance(m, nn.Linear):
        return units * m.in_features, units * (m.in_features + (m.bias is not None))
    if isinstance(m, EuclideanRBF):
        return units * m.centers.shape[1], units * m.centers.shape[1]
    if isinstance(m, MaxPool2d):
        ks = m.kernel_size
        window = ks * ks if isinstance(ks, int) else math.prod(ks)
        return 0, units * window
    raise TypeError(f"cannot count {type(m).__name__}")


_COUNTED = (Conv2d, Conv1d, SparseConv2d, Subsampling, nn.Linear, EuclideanRBF,
            MaxPool2d)


def layer_counts(model: nn.Module, input_shape: tuple[int, ...],
                 device: str | torch.device | None = None) -> list[LayerCount]:
    """Per-layer output shape, trainable parameters, MACs and connections for
    one example of ``input_shape`` (without the batch axis), measured by a
    forward pass with hooks. Works for a model built on the meta device."""
    rows: list[LayerCount] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(m, _inp, out):
        macs, conn = _count(m, out)
        params = sum(p.numel() for p in m.parameters(recurse=False) if p.requires_grad)
        rows.append(LayerCount(names[m], type(m).__name__, tuple(out.shape[1:]),
                               params, macs, conn))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, _COUNTED)]
    try:
        dev = device or next(model.parameters()).device
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape, device=dev))
    finally:
        for h in handles:
            h.remove()
    return rows


def jacobian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
             ) -> torch.Tensor:
    """The Jacobian of ``f`` at one unbatched ``x``, one VJP per output.

    Shape: ``(prod(f(x).shape), prod(x.shape))``.
    """
    x = x.detach().requires_grad_()
    y = f(x[None])[0].flatten()
    rows = [torch.autograd.grad(y[i], x, retain_graph=True)[0].flatten()
            for i in range(len(y))]
    return torch.stack(rows)


def jacobian_singular_values(f: Callable[[torch.Tensor], torch.Tensor],
                             x: torch.Tensor) -> torch.Tensor:
    """Singular values of :func:`jacobian`, largest first."""
    return torch.linalg.svdvals(jacobian(f, x))
