"""A multilayer perceptron on the tensor engine, and its PyTorch twin.

Chapter: backprop. Weights follow PyTorch's layout (``weight (out, in)``,
``bias (out,)``) and initialization (uniform on ``[-1/sqrt(in), 1/sqrt(in)]``),
so the same numbers can be loaded into :class:`torch.nn.Linear` and the two
trainings compared step by step.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .tensor import Tensor, cross_entropy

__all__ = ["Linear", "MLP", "sgd_step", "train_full_batch",
           "train_full_batch_torch", "sharpness"]

_ACTIVATIONS = ("tanh", "relu")


class Linear:
    """``y = x @ weight.T + bias``. Shapes: ``x (N, in)`` -> ``y (N, out)``."""

    def __init__(self, in_features: int, out_features: int, *,
                 generator: np.random.Generator,
                 dtype: type = np.float64) -> None:
        bound = 1.0 / np.sqrt(in_features)
        w = generator.uniform(-bound, bound, (out_features, in_features))
        b = generator.uniform(-bound, bound, out_features)
        self.weight = Tensor(w.astype(dtype), requires_grad=True)
        self.bias = Tensor(b.astype(dtype), requires_grad=True)

    def __call__(self, x: Tensor) -> Tensor:
        return x @ self.weight.T + self.bias

    def parameters(self) -> list[Tensor]:
        return [self.weight, self.bias]


class MLP:
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]``.

    Hidden layers apply ``activation`` ("tanh" or "relu"); the last layer
    is linear (it returns logits). Shapes: ``x (N, sizes[0])`` ->
    ``(N, sizes[-1])``.
    """

    def __init__(self, sizes: Sequence[int], *, activation: str = "tanh",
                 seed: int = 0, dtype: type = np.float64) -> None:
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes needs >= 2 positive entries, got {sizes}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, "
                             f"got {activation!r}")
        rng = np.random.default_rng(seed)
        self.layers = [Linear(a, b, generator=rng, dtype=dtype)
                       for a, b in zip(sizes[:-1], sizes[1:])]
        self.activation = activation

    def __call__(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = x.tanh() if self.activation == "tanh" else x.relu()
        return x

    def parameters(self) -> list[Tensor]:
        return [p for layer in self.layers for p in layer.parameters()]

    def to_torch(self) -> nn.Sequential:
        """A :class:`torch.nn.Sequential` with the same layers and weights."""
        mods: list[nn.Module] = []
        act = nn.Tanh if self.activation == "tanh" else nn.ReLU
        for i, layer in enumerate(self.layers):
            out_f, in_f = layer.weight.shape
            lin = nn.Linear(in_f, out_f, dtype=_torch_dtype(layer.weight))
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.weight.data))
                lin.bias.copy_(torch.from_numpy(layer.bias.data))
            mods += [lin] + ([act()] if i < len(self.layers) - 1 else [])
        return nn.Sequential(*mods)


def _torch_dtype(t: Tensor) -> torch.dtype:
    return torch.from_numpy(t.data[:0]).dtype


def sgd_step(params: Sequence[Tensor], lr: float) -> None:
    """``p <- p - lr * p.grad`` in place, then clear the gradients."""
    for p in params:
        if p.grad is not None:
            p.data -= lr * p.grad
            p.grad = None


def train_full_batch(model: MLP, X: np.ndarray, y: np.ndarray, *,
                     lr: float, steps: int) -> list[float]:
    """Full-batch gradient descent on cross-entropy.

    Returns the loss before each step. Shapes: ``X (N, D)``, ``y (N,)``.
    """
    Xt, losses = Tensor(X), []
    for _ in range(steps):
        loss = cross_entropy(model(Xt), y)
        loss.backward()
        sgd_step(model.parameters(), lr)
        losses.append(loss.item())
    return losses


def train_full_batch_torch(model: nn.Module, X: np.ndarray, y: np.ndarray, *,
                           lr: float, steps: int) -> list[float]:
    """:func:`train_full_batch` in PyTorch, with ``torch.optim.SGD``."""
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    opt, losses = torch.optim.SGD(model.parameters(), lr=lr), []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(Xt), yt)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def sharpness(model: nn.Module, X: np.ndarray, y: np.ndarray, *,
              iters: int = 50, seed: int = 0) -> float:
    """Largest-magnitude eigenvalue of the Hessian of the mean cross-entropy.

    Power iteration on Hessian-vector products (double backward through
    ``torch.autograd``), with respect to all of ``model``'s parameters, on
    the full batch ``X (N, D)``, ``y (N,)``. Near a minimum the Hessian's
    dominant eigenvalue is its largest one, the *sharpness*; gradient
    descent with step ``lr`` is stable on a quadratic only below ``2 / lr``.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    params = [p for p in model.parameters() if p.requires_grad]
    dtype = params[0].dtype
    Xt, yt = torch.as_tensor(X, dtype=dtype), torch.as_tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=g, dtype=dtype) for p in params]
    grads = torch.autograd.grad(nn.functional.cross_entropy(model(Xt), yt),
                                params, create_graph=True)
    lam = 0.0
    for _ in range(iters):
        norm = torch.sqrt(sum((a * a).sum() for a in v))
        v = [a / norm for a in v]
        hv = torch.autograd.grad(sum((a * b).sum() for a, b in zip(grads, v)),
                                 params, retain_graph=True)
        lam = float(sum((a * b).sum() for a, b in zip(hv, v)))  # Rayleigh quotient
        v = [h.detach() for h in hv]
    return lam
