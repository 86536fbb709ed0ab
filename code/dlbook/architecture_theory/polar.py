"""Steepest descent under the spectral norm (chapter: the theory of
architecture): the polar factor ``U V^T`` of a gradient, its Newton-Schulz
approximation, and a Muon-style optimizer.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch

__all__ = ["polar_factor", "newton_schulz", "NS_CUBIC", "NS_MUON",
           "cubic_map", "Muon"]

#: Coefficients ``(a, b, c)`` of ``a X + b (X X^T) X + c (X X^T)^2 X``.
NS_CUBIC = (1.5, -0.5, 0.0)
#: The quintic of Jordan et al. (2024), tuned for speed, not for convergence.
NS_MUON = (3.4445, -4.7750, 2.0315)


def polar_factor(G: torch.Tensor, rtol: float = 0.0) -> torch.Tensor:
    """``U V^T`` from the reduced SVD ``G = U S V^T`` (the oracle).

    Singular values at or below ``rtol * max(S)`` are treated as zero and
    their directions dropped, so that a numerically rank-deficient ``G``
    gets the polar factor of its range. Shape: ``(m, n) -> (m, n)``.
    """
    if G.ndim != 2:
        raise ValueError(f"G must be a matrix, got shape {tuple(G.shape)}")
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    keep = S > rtol * S.max() if rtol > 0 else torch.ones_like(S, dtype=torch.bool)
    return U[:, keep] @ Vh[keep]


def cubic_map(s: torch.Tensor) -> torch.Tensor:
    """What one cubic Newton-Schulz step does to a singular value,
    ``p(s) = 3/2 s - 1/2 s^3``."""
    return 1.5 * s - 0.5 * s ** 3


def newton_schulz(G: torch.Tensor, steps: int = 10,
                  coefficients: tuple[float, float, float] = NS_CUBIC,
                  eps: float = 1e-12) -> torch.Tensor:
    """Approximate the polar factor of ``G`` by ``steps`` odd-polynomial
    iterations ``X <- a X + b (X X^T) X + c (X X^T)^2 X`` started from
    ``X = G / ||G||_F``.

    With the default cubic coefficients ``(3/2, -1/2, 0)`` every nonzero
    singular value converges to one (the chapter proves it); with
    ``NS_MUON`` they land near one in few steps but do not converge.
    Works on the smaller Gram matrix. Shape: ``(m, n) -> (m, n)``.
    """
    if G.ndim != 2:
        raise ValueError(f"G must be a matrix, got shape {tuple(G.shape)}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    a, b, c = coefficients
    transpose = G.shape[0] > G.shape[1]
    X = G.T if transpose else G
    X = X / (torch.linalg.matrix_norm(X) + eps)
    for _ in range(steps):
        A = X @ X.T  # the (min(m, n))^2 Gram matrix
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if transpose else X


class Muon(torch.optim.Optimizer):
    """Momentum orthogonalized by Newton-Schulz, for matrix parameters.

    Each step: ``B <- beta B + grad``; the direction is ``B`` (or the
    Nesterov look-ahead ``grad + beta B``), replaced by its Newton-Schulz
    polar factor and scaled by ``sqrt(max(1, fan_out / fan_in))`` as in
    Jordan et al. (2024); then ``W <- W - lr * update``. Their buffer is an
    exponential average, ``(1 - beta)`` times ours, which the normalization
    inside Newton-Schulz makes irrelevant. Every parameter must be a matrix
    ``(fan_out, fan_in)``; give vectors to another optimizer.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 0.02,
                 momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
                 coefficients: tuple[float, float, float] = NS_MUON) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov,
                        ns_steps=ns_steps, coefficients=coefficients)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError("Muon takes matrix parameters only, got "
                                     f"shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer",
                                               torch.zeros_like(p))
                buf.mul_(beta).add_(p.grad)
                d = p.grad + beta * buf if group["nesterov"] else buf
                u = newton_schulz(d, group["ns_steps"], group["coefficients"])
                scale = math.sqrt(max(1.0, p.shape[0] / p.shape[1]))
                p.add_(u, alpha=-group["lr"] * scale)
        return loss
