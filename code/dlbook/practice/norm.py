"""Batch and layer normalization from scratch (chapter: the practice of training).

:class:`BatchNorm1d` and :class:`LayerNorm` have the signatures, buffers,
parameter names and train/eval semantics of :class:`torch.nn.BatchNorm1d` and
:class:`torch.nn.LayerNorm`, so that their ``state_dict`` loads into torch's
modules. Batch normalization's backward pass is written out by hand
(:class:`BatchNormFunction`, eq. (bn-backward) of the chapter); layer
normalization relies on autograd.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlbook.nn import activation as make_activation
from dlbook.nn import init_

__all__ = ["BatchNormFunction", "batch_norm_train", "BatchNorm1d", "LayerNorm",
           "normalized_mlp"]


class BatchNormFunction(torch.autograd.Function):
    """``y = weight * (x - mean) / sqrt(var + eps) + bias`` over the batch.

    Shape: ``x (M, C)``, ``weight, bias (C,)``; statistics over dim 0, the
    variance biased (divided by ``M``). The backward pass is the closed form
    ``dx = weight / s * (g - mean(g) - x_hat * mean(g * x_hat))``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps: float):
        """Normalize ``x (M, C)`` over dim 0; save ``x_hat`` and ``s``."""
        mean = x.mean(dim=0)
        var = ((x - mean) ** 2).mean(dim=0)  # biased, as in the forward pass
        s = torch.sqrt(var + eps)
        x_hat = (x - mean) / s
        ctx.save_for_backward(x_hat, s, weight)
        return weight * x_hat + bias

    @staticmethod
    def backward(ctx, g):
        """Gradients for ``x``, ``weight`` and ``bias`` (eq. (bn-backward))."""
        x_hat, s, weight = ctx.saved_tensors
        g_hat = g * weight
        # eq. (bn-backward): project out the mean and the x_hat direction
        dx = (g_hat - g_hat.mean(0) - x_hat * (g_hat * x_hat).mean(0)) / s
        return dx, (g * x_hat).sum(0), g.sum(0), None


def batch_norm_train(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                     eps: float = 1e-5) -> torch.Tensor:
    """Training-mode batch normalization of ``x (M, C)`` with the hand-written
    backward of :class:`BatchNormFunction`."""
    if x.ndim != 2 or x.shape[1] != weight.shape[0]:
        raise ValueError(f"x must have shape (M, {weight.shape[0]}), got "
                         f"{tuple(x.shape)}")
    return BatchNormFunction.apply(x, weight, bias, eps)


def _to_rows(x: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` or ``(N, C, L)`` to ``(N * L, C)``, channels last."""
    return x if x.ndim == 2 else x.transpose(1, 2).reshape(-1, x.shape[1])


def _from_rows(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.ndim == 2:
        return rows
    n, c, length = like.shape
    return rows.reshape(n, length, c).transpose(1, 2)


class BatchNorm1d(nn.Module):
    """Batch normalization (Ioffe and Szegedy, 2015), as ``nn.BatchNorm1d``.

    Training mode normalizes each channel by the batch mean and the biased
    batch variance and updates ``running_mean`` and ``running_var`` (the
    latter with the *unbiased* batch variance) by
    ``running = (1 - momentum) * running + momentum * batch``; with
    ``momentum=None`` it keeps a cumulative average instead. Evaluation mode
    uses the running statistics (batch statistics if
    ``track_running_stats=False``). Shape: ``(N, C)`` or ``(N, C, L)``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5,
                 momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1] or be None, got {momentum}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        kw = {"dtype": dtype}
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **kw))
            self.bias = nn.Parameter(torch.zeros(num_features, **kw))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **kw))
            self.register_buffer("running_var", torch.ones(num_features, **kw))
            self.register_buffer("num_batches_tracked",
                                 torch.tensor(0, dtype=torch.long))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def _affine(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.affine:
            return self.weight, self.bias
        ones = torch.ones(self.num_features, dtype=like.dtype, device=like.device)
        return ones, torch.zeros_like(ones)

    @torch.no_grad()
    def _update_running(self, rows: torch.Tensor) -> None:
        self.num_batches_tracked += 1
        m = (1.0 / float(self.num_batches_tracked) if self.momentum is None
             else self.momentum)
        unbiased = rows.var(dim=0, unbiased=True)
        self.running_mean.mul_(1 - m).add_(rows.mean(0), alpha=m)
        self.running_var.mul_(1 - m).add_(unbiased, alpha=m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(f"expected input (N, {self.num_features}) or "
                             f"(N, {self.num_features}, L), got {tuple(x.shape)}")
        rows = _to_rows(x)
        weight, bias = self._affine(x)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            if rows.shape[0] < 2 and self.training:
                raise ValueError("batch normalization needs more than one value "
                                 f"per channel in training, got {tuple(x.shape)}")
            if self.training and self.track_running_stats:
                self._update_running(rows)
            out = batch_norm_train(rows, weight, bias, self.eps)
        else:  # eval mode: a fixed affine map of the input
            scale = weight / torch.sqrt(self.running_var + self.eps)
            out = (rows - self.running_mean) * scale + bias
        return _from_rows(out, x)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class LayerNorm(nn.Module):
    """Layer normalization (Ba, Kiros and Hinton, 2016), as ``nn.LayerNorm``.

    Normalizes over the last ``len(normalized_shape)`` dimensions of each
    example with the biased variance; the same in training and evaluation.
    Shape: ``(*, *normalized_shape)`` to the same shape.
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                 else tuple(normalized_shape))
        if not shape or min(shape) < 1:
            raise ValueError(f"normalized_shape must be positive, got {shape}")
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(shape, dtype=dtype))
            self.bias = (nn.Parameter(torch.zeros(shape, dtype=dtype)) if bias
                         else None)
        else:
            self.weight, self.bias = None, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.normalized_shape)
        if tuple(x.shape[-k:]) != self.normalized_shape:
            raise ValueError(f"the last dims of x must be {self.normalized_shape}, "
                             f"got {tuple(x.shape)}")
        dims = tuple(range(-k, 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
        out = (x - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            out = out * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


def normalized_mlp(sizes: Sequence[int], norm: str | None = "batch",
                   activation: str = "relu", *, init: str = "pytorch",
                   generator: torch.Generator | None = None,
                   dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """An MLP ``Linear -> norm -> activation`` per hidden layer.

    ``norm`` is ``"batch"`` (:class:`BatchNorm1d`), ``"layer"``
    (:class:`LayerNorm`) or ``None`` (then it is :func:`dlbook.nn.mlp`'s
    network). Linear layers followed by a normalization have no bias (the
    normalization removes it); weights come from :func:`dlbook.nn.init_`.
    Shapes: ``(N, sizes[0]) -> (N, sizes[-1])``.
    """
    sizes = list(sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must be >= 2 positive ints, got {sizes!r}")
    if norm not in ("batch", "layer", None):
        raise ValueError(f"norm must be 'batch', 'layer' or None, got {norm!r}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = i < len(sizes) - 2
        layers.append(nn.Linear(n_in, n_out, bias=not (hidden and norm),
                                dtype=dtype))
        if hidden:
            if norm == "batch":
                layers.append(BatchNorm1d(n_out, dtype=dtype))
            elif norm == "layer":
                layers.append(LayerNorm(n_out, dtype=dtype))
            layers.append(make_activation(activation))
    return init_(nn.Sequential(*layers), init, generator=generator)
