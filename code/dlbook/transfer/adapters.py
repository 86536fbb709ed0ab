"""Parameter-efficient finetuning (chapter transfer-models): low-rank
adaptation (LoRA) of a linear layer, bottleneck adapters, and helpers that
freeze a network and insert them."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["LoRALinear", "Adapter", "freeze_", "add_lora", "add_adapters"]


class LoRALinear(nn.Module):
    """``y = x W^T + b + (alpha / r) x A^T B^T`` around a frozen ``base``.

    ``base`` is an ``nn.Linear(n_in, n_out)``; ``A (r, n_in)`` is drawn like
    a PyTorch linear weight from ``generator`` and ``B (n_out, r)`` starts at
    zero, so the layer computes ``base`` exactly at initialization and its
    update ``(alpha / r) B A`` has rank at most ``r`` (Hu et al., 2022).
    Shape: ``(N, n_in) -> (N, n_out)``.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float = 1.0, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ValueError(f"base must be nn.Linear, got {type(base)}")
        n_out, n_in = base.weight.shape
        if not 1 <= rank <= min(n_in, n_out):
            raise ValueError(f"rank must lie in [1, {min(n_in, n_out)}], "
                             f"got {rank}")
        self.base, self.rank, self.alpha = base, rank, alpha
        for p in self.base.parameters():
            p.requires_grad_(False)
        dt = base.weight.dtype
        bound = 1 / math.sqrt(n_in)
        self.A = nn.Parameter(torch.empty(rank, n_in, dtype=dt).uniform_(
            -bound, bound, generator=generator))
        self.B = nn.Parameter(torch.zeros(n_out, rank, dtype=dt))

    @property
    def scaling(self) -> float:
        """``alpha / r``."""
        return self.alpha / self.rank

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / r) B A`` of shape ``(n_out, n_in)``."""
        return self.scaling * self.B @ self.A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * (x @ self.A.T) @ self.B.T

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """An ``nn.Linear`` with weight ``W + (alpha / r) B A``: the same
        function with no extra cost at inference."""
        out = copy.deepcopy(self.base)
        out.weight.add_(self.delta_weight())
        for p in out.parameters():
            p.requires_grad_(True)
        return out


class Adapter(nn.Module):
    """A bottleneck adapter ``h + W_up relu(W_down h + b_down) + b_up``
    (Houlsby et al., 2019). ``W_up`` and ``b_up`` start at zero, so the
    adapter is the identity at initialization.
    Shape: ``(N, features) -> (N, features)``."""

    def __init__(self, features: int, bottleneck: int, *,
                 generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if not 1 <= bottleneck:
            raise ValueError(f"bottleneck must be >= 1, got {bottleneck}")
        self.down = nn.Linear(features, bottleneck, dtype=dtype)
        self.up = nn.Linear(bottleneck, features, dtype=dtype)
        bound = 1 / math.sqrt(features)
        with torch.no_grad():
            self.down.weight.uniform_(-bound, bound, generator=generator)
            self.down.bias.zero_()
            self.up.weight.zero_()
            self.up.bias.zero_()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(torch.relu(self.down(h)))


def freeze_(module: nn.Module) -> nn.Module:
    """Set ``requires_grad = False`` on every parameter; returns ``module``."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def add_lora(body: nn.Sequential, rank: int, alpha: float = 1.0, *,
             generator: torch.Generator | None = None) -> nn.Sequential:
    """A copy of ``body`` with every ``nn.Linear`` wrapped in a
    :class:`LoRALinear` of rank ``min(rank, ...)`` and all else frozen."""
    body = freeze_(copy.deepcopy(body))
    layers = []
    for m in body:
        if isinstance(m, nn.Linear):
            r = min(rank, *m.weight.shape)
            m = LoRALinear(m, r, alpha, generator=generator)
        layers.append(m)
    return nn.Sequential(*layers)


def add_adapters(body: nn.Sequential, bottleneck: int, *,
                 generator: torch.Generator | None = None) -> nn.Sequential:
    """A frozen copy of ``body`` with an :class:`Adapter` after every
    activation (the modules that follow an ``nn.Linear``, here ReLUs)."""
    body = freeze_(copy.deepcopy(body))
    layers, width = [], None
    for m in body:
        layers.append(m)
        if isinstance(m, nn.Linear):
            width = m.out_features
        elif width is not None and not isinstance(m, Adapter):
            layers.append(Adapter(width, bottleneck, generator=generator,
                                  dtype=body[0].weight.dtype))
    return nn.Sequential(*layers)
