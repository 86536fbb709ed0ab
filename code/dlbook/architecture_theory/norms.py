"""Norms on weight space (chapter: the theory of architecture).

The RMS norm of activations, the RMS-to-RMS operator norm of a linear layer
(a rescaled spectral norm), the spectral scale ``sqrt(fan_out / fan_in)`` of
Yang, Simon and Bernstein (2023), and a small implementation of the modular
norm of Large et al. (2024) for chains of linear layers and nonlinearities.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["rms_norm", "rms_operator_norm", "spectral_scale", "Atom", "Chain",
           "linear_atom", "nonlinearity", "compose", "modular_norm"]


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    """Root-mean-square of the last dimension, ``||x||_2 / sqrt(n)``.

    Shape: ``(..., n) -> (...)``.
    """
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"x needs a non-empty last dimension, got {tuple(x.shape)}")
    return x.pow(2).mean(dim=-1).sqrt()


def rms_operator_norm(W: torch.Tensor) -> torch.Tensor:
    """The RMS-to-RMS operator norm ``sqrt(fan_in / fan_out) ||W||_2``.

    ``W`` has PyTorch's layout ``(fan_out, fan_in)``; the result is the
    largest ratio ``rms(W x) / rms(x)`` over nonzero ``x``.
    """
    if W.ndim != 2:
        raise ValueError(f"W must be a matrix (out, in), got shape {tuple(W.shape)}")
    fan_out, fan_in = W.shape
    return math.sqrt(fan_in / fan_out) * torch.linalg.matrix_norm(W, ord=2)


def spectral_scale(fan_out: int, fan_in: int) -> float:
    """The spectral condition's target ``sqrt(fan_out / fan_in)`` for the
    spectral norm of a weight and of its update (Yang, Simon and Bernstein,
    2023); an RMS-to-RMS operator norm of one."""
    if fan_out < 1 or fan_in < 1:
        raise ValueError(f"fans must be positive, got {fan_out=}, {fan_in=}")
    return math.sqrt(fan_out / fan_in)


@dataclass(frozen=True)
class Atom:
    """An atomic module: a forward map ``f(x, w)``, its ``mass``, its input
    ``sensitivity`` (an RMS Lipschitz constant in ``x``) and a weight norm.

    A weightless atom (a nonlinearity) has ``mass = 0`` and ``norm = None``.
    """
    forward: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    mass: float
    sensitivity: float
    norm: Callable[[torch.Tensor], torch.Tensor] | None = None
    name: str = "atom"

    @property
    def n_weights(self) -> int:
        return 0 if self.norm is None else 1


@dataclass(frozen=True)
class Chain:
    """The composite ``outer o inner`` of two modules (atoms or chains).

    Mass adds, sensitivity multiplies (Large et al., 2024).
    """
    outer: "Atom | Chain"
    inner: "Atom | Chain"
    name: str = field(default="chain")

    @property
    def mass(self) -> float:
        return self.outer.mass + self.inner.mass

    @property
    def sensitivity(self) -> float:
        return self.outer.sensitivity * self.inner.sensitivity

    @property
    def n_weights(self) -> int:
        return self.outer.n_weights + self.inner.n_weights

    def forward(self, x: torch.Tensor, w: Sequence[torch.Tensor]) -> torch.Tensor:
        k = self.inner.n_weights
        return _apply(self.outer, _apply(self.inner, x, w[:k]), w[k:])


def _apply(m: Atom | Chain, x: torch.Tensor, w: Sequence[torch.Tensor]) -> torch.Tensor:
    if isinstance(m, Chain):
        return m.forward(x, w)
    return m.forward(x, w[0] if m.n_weights else None)


def linear_atom(mass: float = 1.0) -> Atom:
    """A linear layer ``x -> x W^T`` whose norm is the RMS-to-RMS operator
    norm; it is well normed with sensitivity one when that norm is <= 1."""
    if mass <= 0:
        raise ValueError(f"a linear atom needs positive mass, got {mass}")
    return Atom(forward=lambda x, W: x @ W.T, mass=mass, sensitivity=1.0,
                norm=rms_operator_norm, name="linear")


def nonlinearity(fn: Callable[[torch.Tensor], torch.Tensor],
                 lipschitz: float = 1.0) -> Atom:
    """A weightless atom applying ``fn`` coordinatewise; ``lipschitz`` is its
    Lipschitz constant, which is also its RMS sensitivity."""
    return Atom(forward=lambda x, _w: fn(x), mass=0.0, sensitivity=lipschitz,
                name="nonlinearity")


def compose(*modules: Atom | Chain) -> Atom | Chain:
    """``compose(m_L, ..., m_1)`` is ``m_L o ... o m_1`` (outermost first)."""
    if not modules:
        raise ValueError("compose needs at least one module")
    out = modules[-1]
    for m in reversed(modules[:-1]):
        out = Chain(outer=m, inner=out)
    return out


def modular_norm(m: Atom | Chain, w: Sequence[torch.Tensor]) -> torch.Tensor:
    """The modular norm of weights ``w`` (inner module's first) of ``m``.

    For ``outer o inner`` with masses ``m_o, m_i`` (total ``m``) and outer
    sensitivity ``mu_o``, it is
    ``max((m / m_i) mu_o ||w_i||_inner, (m / m_o) ||w_o||_outer)``; a
    weightless side drops out (Large et al., 2024). Recursive, like
    the definition; the chains of this book are a few modules deep.
    """
    if len(w) != m.n_weights:
        raise ValueError(f"module has {m.n_weights} weights, got {len(w)}")
    if isinstance(m, Atom):
        if m.norm is None:
            return torch.tensor(0.0)
        return m.norm(w[0])
    k = m.inner.n_weights
    w_in, w_out = w[:k], w[k:]
    if m.inner.mass == 0:
        return modular_norm(m.outer, w_out)
    n_in = modular_norm(m.inner, w_in) * m.outer.sensitivity
    if m.outer.mass == 0:
        return n_in
    n_out = modular_norm(m.outer, w_out)
    return torch.maximum(m.mass / m.inner.mass * n_in,
                         m.mass / m.outer.mass * n_out)
