"""Parameterizations of a multilayer perceptron across width (chapter: the
theory of architecture): standard (SP), neural tangent (NTK) and maximal
update (muP), with the coordinate check and learning-rate sweeps.

A layer is an ``abc``-parameterized linear map (Yang and Hu, 2021): weights
``w ~ N(0, std^2)``, forward ``multiplier * x w^T``, learning rate
``lr_scale * lr``. The three parameterizations only choose the three numbers
per layer, as functions of the width ``n`` relative to a base width ``n0``
(the chapter's letters).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PARAMETRIZATIONS", "LayerScale", "layer_scales", "ScaledLinear",
           "WidthMLP", "param_groups", "coord_check", "train_steps",
           "lr_sweep"]

#: Parameterizations known to :func:`layer_scales`.
PARAMETRIZATIONS = ("sp", "ntk", "mup")


@dataclass(frozen=True)
class LayerScale:
    """Multiplier, initial standard deviation and learning-rate factor of one
    layer."""
    multiplier: float
    std: float
    lr_scale: float


def layer_scales(kind: str, fan_in: int, fan_out: int, role: str, *,
                 base_width: int, width: int,
                 optimizer: str = "adam") -> LayerScale:
    """The scales of one layer: ``role`` is ``"input"``, ``"hidden"`` or
    ``"output"``; ``kind`` one of ``PARAMETRIZATIONS``.

    muP follows Table 3 of Yang et al. (2022), written relative to the base
    width so that muP coincides with SP at ``width == base_width``: with
    ``r = width / base_width``, hidden and output learning rates are divided
    by ``r`` under Adam; under SGD the input rate is multiplied by ``r`` and
    the output rate divided by ``r``; the output layer's initial variance is
    ``1 / (fan_in r)``, i.e. ``1 / fan_in^2`` up to the base constant. NTK
    has unit-variance entries behind a multiplier ``1 / sqrt(fan_in)`` and a
    learning rate ``lr * base_fan_in``, so that under SGD it takes the same
    steps as SP at the base width and steps ``1 / r`` times smaller (in the
    hidden and output layers) at width ``n``.
    """
    if kind not in PARAMETRIZATIONS:
        raise ValueError(f"kind must be one of {PARAMETRIZATIONS}, got {kind!r}")
    if role not in ("input", "hidden", "output"):
        raise ValueError(f"role must be input, hidden or output, got {role!r}")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    r = width / base_width
    if kind == "sp":
        return LayerScale(1.0, 1 / math.sqrt(fan_in), 1.0)
    if kind == "ntk":  # lr in units of the base fan-in: SP at the base width
        base_fan_in = fan_in if role == "input" else base_width
        return LayerScale(1 / math.sqrt(fan_in), 1.0, float(base_fan_in))
    std = 1 / math.sqrt(fan_in) if role != "output" else 1 / math.sqrt(fan_in * r)
    if optimizer == "adam":
        lr = {"input": 1.0, "hidden": 1 / r, "output": 1 / r}[role]
    else:
        lr = {"input": r, "hidden": 1.0, "output": 1 / r}[role]
    return LayerScale(1.0, std, lr)


class ScaledLinear(nn.Module):
    """``y = multiplier * x W^T`` with ``W ~ N(0, std^2)``, no bias.

    Shape: ``(N, in_features) -> (N, out_features)``; ``weight`` is
    ``(out_features, in_features)`` as in ``nn.Linear``.
    """

    def __init__(self, in_features: int, out_features: int, scale: LayerScale,
                 *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.scale = scale
        w = torch.randn(out_features, in_features, generator=generator)
        self.weight = nn.Parameter(w * scale.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale.multiplier * F.linear(x, self.weight)


class WidthMLP(nn.Module):
    """A bias-free MLP ``in -> n -> n -> out`` in a chosen parameterization.

    ``forward(x, return_hidden=True)`` also returns the pre-activations of
    the two hidden layers, for the coordinate check. Shape: ``(N, in) ->
    (N, out)``.
    """

    def __init__(self, in_features: int, width: int, out_features: int, *,
                 kind: str = "sp", base_width: int = 32,
                 optimizer: str = "adam",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if width < 1 or base_width < 1:
            raise ValueError(f"widths must be positive, got {width=}, {base_width=}")
        self.kind, self.width, self.optimizer = kind, width, optimizer
        dims = [(in_features, width, "input"), (width, width, "hidden"),
                (width, out_features, "output")]
        self.layers = nn.ModuleList(
            ScaledLinear(i, o, layer_scales(kind, i, o, role, base_width=base_width,
                                            width=width, optimizer=optimizer),
                         generator=generator)
            for i, o, role in dims)

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        h1 = self.layers[0](x)
        h2 = self.layers[1](torch.relu(h1))
        out = self.layers[2](torch.relu(h2))
        return (out, (h1, h2)) if return_hidden else out


def param_groups(model: WidthMLP, lr: float) -> list[dict]:
    """One optimizer parameter group per layer, with ``lr * lr_scale``."""
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    return [{"params": [layer.weight], "lr": lr * layer.scale.lr_scale}
            for layer in model.layers]


def _optimizer(model: WidthMLP, lr: float) -> torch.optim.Optimizer:
    groups = param_groups(model, lr)
    if model.optimizer == "adam":
        return torch.optim.Adam(groups)
    return torch.optim.SGD(groups)


def train_steps(model: WidthMLP, X: torch.Tensor, y: torch.Tensor, lr: float,
                steps: int, *, batch_size: int = 128,
                generator: torch.Generator | None = None) -> list[float]:
    """``steps`` optimizer steps of cross-entropy on random mini-batches;
    returns the losses. The loop is written out (not ``fit``) because the
    per-layer learning rates are the subject."""
    opt = _optimizer(model, lr)
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(X), (batch_size,), generator=generator)
        loss = F.cross_entropy(model(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def coord_check(kind: str, widths: list[int], X: torch.Tensor, y: torch.Tensor, *,
                lr: float, steps: int = 4, seeds: int = 2, base_width: int = 32,
                optimizer: str = "adam") -> dict[str, torch.Tensor]:
    """The coordinate check: RMS size of the change, after ``steps`` steps,
    of the second hidden layer's pre-activation and of the logits on ``X``.

    Returns ``{"hidden": (len(widths),), "logits": (len(widths),),
    "hidden0": ...}`` averaged over ``seeds``; ``hidden0`` is the RMS size at
    initialization.
    """
    out = {k: torch.zeros(len(widths)) for k in ("hidden", "logits", "hidden0")}
    for i, m in enumerate(widths):
        for s in range(seeds):
            g = torch.Generator().manual_seed(1000 * s + m)
            model = WidthMLP(X.shape[1], m, int(y.max()) + 1, kind=kind,
                             base_width=base_width, optimizer=optimizer,
                             generator=g)
            with torch.no_grad():
                f0, (_, h0) = model(X, return_hidden=True)
            train_steps(model, X, y, lr, steps, generator=g)
            with torch.no_grad():
                f1, (_, h1) = model(X, return_hidden=True)
            out["hidden"][i] += (h1 - h0).pow(2).mean().sqrt() / seeds
            out["logits"][i] += (f1 - f0).pow(2).mean().sqrt() / seeds
            out["hidden0"][i] += h0.pow(2).mean().sqrt() / seeds
    return out


def lr_sweep(kind: str, widths: list[int], lrs: list[float], X: torch.Tensor,
             y: torch.Tensor, *, steps: int = 80, batch_size: int = 128,
             seed: int = 0, base_width: int = 32,
             optimizer: str = "adam") -> torch.Tensor:
    """Training loss on ``(X, y)`` after ``steps`` steps, for every width and
    learning rate; the same seed (initialization and batches) per width.

    Returns shape ``(len(widths), len(lrs))``; a diverged run gives ``inf``.
    """
    losses = torch.empty(len(widths), len(lrs))
    for i, m in enumerate(widths):
        for j, lr in enumerate(lrs):
            g = torch.Generator().manual_seed(seed * 7919 + m)
            model = WidthMLP(X.shape[1], m, int(y.max()) + 1, kind=kind,
                             base_width=base_width, optimizer=optimizer,
                             generator=g)
            train_steps(model, X, y, lr, steps, batch_size=batch_size,
                        generator=g)
            with torch.no_grad():
                loss = F.cross_entropy(model(X), y).item()
            losses[i, j] = loss if math.isfinite(loss) else math.inf
    return losses
