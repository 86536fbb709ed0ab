"""Group convolutions for p4, translations and quarter turns (chapter: geometric
deep learning), after Cohen and Welling (2016).

A p4 feature map has shape (N, C, 4, H, W): a plane of values for each
channel and each of the four rotations. The group p4 acts on it by
:func:`rotate_p4` (rotate every plane, shift the rotation axis cyclically).

* :class:`P4ConvZ2` -- the lifting layer, images -> p4 feature maps;
* :class:`P4ConvP4` -- the group layer, p4 feature maps -> p4 feature maps;
* :class:`P4CNN` and :class:`PlainCNN` -- small classifiers for 8x8 digits
  built from them or from ``nn.Conv2d``.

Both layers run torch's own ``conv2d`` with a bank of transformed filters, so
the only new code is the filter transformation.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dlbook.nn import init_layer_

__all__ = ["rotate_p4", "P4ConvZ2", "P4ConvP4", "rotation_pool",
           "P4CNN", "PlainCNN"]


def rotate_p4(x: torch.Tensor, k: int = 1) -> torch.Tensor:
    """The action of the quarter turn r^k on a p4 feature map.

    (r^k . x)[c, s] = rot90(x[c, s - k], k): each plane rotated by k quarter
    turns counter-clockwise, the rotation axis shifted cyclically by k.
    Shape: (N, C, 4, H, W) with H == W, kept.
    """
    if x.ndim != 5 or x.shape[2] != 4:
        raise ValueError(f"x must have shape (N, C, 4, H, W), got {tuple(x.shape)}")
    return torch.roll(torch.rot90(x, k, dims=(-2, -1)), k, dims=2)


def _check_kernel(kernel_size: int) -> None:
    # Any size works: with stride 1 and the same padding on all sides the
    # output grid is centred on the input grid, and rot90 turns a k x k filter
    # about its own centre, even or odd k alike.
    if not isinstance(kernel_size, int) or kernel_size < 1:
        raise ValueError(f"kernel_size must be a positive int, got {kernel_size!r}")


class _P4Conv(nn.Module):
    """Shared parameters and initialization of the two p4 layers."""

    def __init__(self, weight_shape: tuple[int, ...], out_channels: int,
                 bias: bool, padding: int,
                 generator: torch.Generator | None) -> None:
        super().__init__()
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(weight_shape))
        # One bias per output channel, shared by its four rotations.
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in * (4 *) k * k
        init_layer_(self, "pytorch", generator=generator)

    def _bias4(self) -> torch.Tensor | None:
        return None if self.bias is None else self.bias.repeat_interleave(4)


class P4ConvZ2(_P4Conv):
    """Lifting convolution: an image to a p4 feature map.

    out[o, r] = x * rot90(weight[o], r) (cross-correlation, as in conv2d).
    weight: (out_channels, in_channels, k, k); stride 1.
    Shape: (N, in_channels, H, W) -> (N, out_channels, 4, H', W').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding: int = 0, bias: bool = True, *,
                 generator: torch.Generator | None = None) -> None:
        _check_kernel(kernel_size)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        super().__init__(shape, out_channels, bias, padding, generator)
        self.in_channels, self.out_channels = in_channels, out_channels

    def filter_bank(self) -> torch.Tensor:
        """The four rotated copies of every filter: (out*4, in, k, k)."""
        bank = torch.stack([torch.rot90(self.weight, r, dims=(-2, -1))
                            for r in range(4)], dim=1)
        return bank.flatten(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        y = F.conv2d(x, self.filter_bank(), self._bias4(), padding=self.padding)
        return y.unflatten(1, (self.out_channels, 4))


class P4ConvP4(_P4Conv):
    """Group convolution on p4: a p4 feature map to a p4 feature map.

    out[o, r] = sum_{i, s} x[i, s] * rot90(weight[o, i, s - r], r): the filter
    for output rotation r is the filter rotated by r with its rotation axis
    shifted by r (eq. (gconv-p4)).
    weight: (out_channels, in_channels, 4, k, k); stride 1.
    Shape: (N, in_channels, 4, H, W) -> (N, out_channels, 4, H', W').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding: int = 0, bias: bool = True, *,
                 generator: torch.Generator | None = None) -> None:
        _check_kernel(kernel_size)
        shape = (out_channels, in_channels, 4, kernel_size, kernel_size)
        super().__init__(shape, out_channels, bias, padding, generator)
        self.in_channels, self.out_channels = in_channels, out_channels

    def filter_bank(self) -> torch.Tensor:
        """The transformed filters as one conv2d weight: (out*4, in*4, k, k)."""
        bank = torch.stack(
            [torch.rot90(torch.roll(self.weight, r, dims=2), r, dims=(-2, -1))
             for r in range(4)], dim=1)          # (out, 4, in, 4, k, k)
        return bank.flatten(0, 1).flatten(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1:3] != (self.in_channels, 4):
            raise ValueError(f"x must have shape (N, {self.in_channels}, 4, H, W), "
                             f"got {tuple(x.shape)}")
        y = F.conv2d(x.flatten(1, 2), self.filter_bank(), self._bias4(),
                     padding=self.padding)
        return y.unflatten(1, (self.out_channels, 4))


def rotation_pool(x: torch.Tensor) -> torch.Tensor:
    """Max over the rotation axis: invariant to the shift of that axis.

    Shape: (N, C, 4, H, W) -> (N, C, H, W).
    """
    if x.ndim != 5 or x.shape[2] != 4:
        raise ValueError(f"x must have shape (N, C, 4, H, W), got {tuple(x.shape)}")
    return x.amax(dim=2)


class P4CNN(nn.Module):
    """A p4-equivariant classifier for square images, invariant to quarter
    turns: lift, ``depth - 1`` group layers (2x2 max pooling after the
    second), rotation pooling, global average pooling, linear read-out.

    Shape: (N, in_channels, H, W) -> (N, classes), H == W even.
    """

    def __init__(self, channels: int = 10, classes: int = 10, depth: int = 3,
                 in_channels: int = 1, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        g = generator
        self.lift = P4ConvZ2(in_channels, channels, 3, padding=1, generator=g)
        self.layers = nn.ModuleList(
            P4ConvP4(channels, channels, 3, padding=1, generator=g)
            for _ in range(depth - 1))
        self.head = init_layer_(nn.Linear(channels, classes), generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.lift(x))
        for i, layer in enumerate(self.layers):
            h = torch.relu(layer(h))
            if i == 0:  # 2x2 pooling keeps p4 symmetry when H is even
                h = F.max_pool2d(h.flatten(1, 2), 2).unflatten(1, h.shape[1:3])
        return self.head(rotation_pool(h).mean(dim=(-2, -1)))


class PlainCNN(nn.Module):
    """The same architecture with ordinary convolutions: ``depth`` 3x3
    ``nn.Conv2d`` layers (2x2 max pooling after the second), global average
    pooling, linear read-out. Shape: (N, in_channels, H, W) -> (N, classes).
    """

    def __init__(self, channels: int = 20, classes: int = 10, depth: int = 3,
                 in_channels: int = 1, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        self.convs = nn.ModuleList(
            init_layer_(nn.Conv2d(in_channels if i == 0 else channels, channels,
                                  3, padding=1), generator=generator)
            for i in range(depth))
        self.head = init_layer_(nn.Linear(channels, classes), generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, conv in enumerate(self.convs):
            h = torch.relu(conv(h))
            if i == 1:
                h = F.max_pool2d(h, 2)
        return self.head(h.mean(dim=(-2, -1)))
