"""Chapter 6 (cnn): convolution and pooling modules with PyTorch's parameter
layout, and the dense matrix of a convolution.

:class:`Conv2d` has the attributes and ``state_dict`` of ``torch.nn.Conv2d``
(``weight (C_out, C_in / groups, k_h, k_w)``, ``bias (C_out,)``), so weights
copy across in both directions.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from dlbook.nn import init_layer_

from .functional import IntPair, _pair, avg_pool2d, conv1d, conv2d, max_pool2d

__all__ = ["Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d",
           "conv_matrix", "cyclic_shift"]


class Conv2d(nn.Module):
    """2-D convolution layer, a drop-in for ``torch.nn.Conv2d``.

    Initialized like PyTorch (``W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``)
    from ``generator``. Shape: ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair,
                 stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 *, generator: torch.Generator | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels={in_channels} and out_channels="
                             f"{out_channels} must be divisible by groups={groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride, self.dilation = _pair("stride", stride, 1), _pair("dilation",
                                                                       dilation, 1)
        self.padding, self.groups = _pair("padding", padding, 0), groups
        self.padding_mode = padding_mode
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = nn.Parameter(torch.empty(shape, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(out_channels, dtype=dtype)) if bias \
            else None
        init_layer_(self, "pytorch", generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d(x, self.weight, self.bias, self.stride, self.padding,
                      self.dilation, self.groups, self.padding_mode)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size="
                f"{self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, groups={self.groups}, "
                f"padding_mode={self.padding_mode!r}")


class Conv1d(nn.Module):
    """1-D convolution layer with the layout of ``torch.nn.Conv1d``:
    ``weight (C_out, C_in / groups, k)``. Shape: ``(N, C_in, L) -> (N, C_out, L_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, dilation: int = 1,
                 groups: int = 1, bias: bool = True, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels={in_channels} and out_channels="
                             f"{out_channels} must be divisible by groups={groups}")
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups = groups
        shape = (out_channels, in_channels // groups, kernel_size)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        init_layer_(self, "pytorch", generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv1d(x, self.weight, self.bias, self.stride, self.padding,
                      self.dilation, self.groups)


class _Pool2d(nn.Module):
    """A pooling module: stores the arguments of its functional form."""

    _pool = staticmethod(max_pool2d)

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None,
                 padding: IntPair = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool(x, self.kernel_size, self.stride, self.padding)


class MaxPool2d(_Pool2d):
    """Max pooling module; see :func:`max_pool2d`."""

    _pool = staticmethod(max_pool2d)


class AvgPool2d(_Pool2d):
    """Average pooling module; see :func:`avg_pool2d`."""

    _pool = staticmethod(avg_pool2d)


class GlobalAvgPool2d(nn.Module):
    """Mean over all positions of each channel. ``(N, C, H, W) -> (N, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


def conv_matrix(weight: torch.Tensor, input_shape: tuple[int, ...],
                **conv_kwargs) -> torch.Tensor:
    """The dense matrix ``M`` of the linear map ``x -> conv(x, weight)``.

    ``input_shape`` is ``(C, L)`` for a 1-D weight ``(C_out, C, k)`` or
    ``(C, H, W)`` for a 2-D one; ``conv_kwargs`` go to :func:`conv1d` /
    :func:`conv2d` (stride, padding, dilation, groups, padding_mode). Column
    ``j`` is the convolution of the ``j``-th basis image, so
    ``M @ x.flatten() == conv(x).flatten()``. Shape:
    ``(prod(output shape), prod(input_shape))``.
    """
    if weight.ndim != len(input_shape) + 1:
        raise ValueError(f"a weight of {weight.ndim} dims needs an input_shape of "
                         f"{weight.ndim - 1} dims, got {input_shape}")
    n = math.prod(input_shape)
    basis = torch.eye(n, dtype=weight.dtype).reshape(n, *input_shape)
    conv = conv1d if weight.ndim == 3 else conv2d
    return conv(basis, weight, **conv_kwargs).reshape(n, -1).T


def cyclic_shift(x: torch.Tensor, shift: int | tuple[int, ...]) -> torch.Tensor:
    """Translate the last one or two axes cyclically (``torch.roll``): the
    group action under which circular convolution is equivariant."""
    shift = (shift,) if isinstance(shift, int) else tuple(shift)
    return torch.roll(x, shift, dims=tuple(range(-len(shift), 0)))
