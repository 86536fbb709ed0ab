"""The spectral bias (chapter: the theory of representations).

A one-dimensional regression target made of sinusoids, the Fourier
coefficients of a function sampled on a uniform grid of ``[0, 1)``, and the
empirical neural tangent kernel of a small network, whose eigenvalues along
the Fourier modes predict which frequency is learned first (Rahaman et al.,
2019; Basri et al., 2019).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["uniform_grid", "sinusoid_target", "fourier_coefficients",
           "frequency_errors", "empirical_ntk", "fourier_mode_eigenvalues",
           "fourier_mode_cosines"]


def uniform_grid(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` points ``0, 1/n, ..., (n-1)/n`` as a column. Shape: ``(n, 1)``."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    return (torch.arange(n, dtype=dtype) / n).unsqueeze(1)


def sinusoid_target(x: torch.Tensor, freqs: Sequence[int],
                    amplitudes: Sequence[float],
                    phases: Sequence[float] | None = None) -> torch.Tensor:
    """``sum_k A_k sin(2 pi f_k x + phi_k)``. Shapes: ``(n, 1) -> (n, 1)``."""
    if len(freqs) != len(amplitudes):
        raise ValueError(f"freqs and amplitudes differ in length: {len(freqs)} "
                         f"and {len(amplitudes)}")
    phases = [0.0] * len(freqs) if phases is None else phases
    y = torch.zeros_like(x)
    for f, a, phi in zip(freqs, amplitudes, phases):
        y = y + a * torch.sin(2 * math.pi * f * x + phi)
    return y


def fourier_coefficients(y: torch.Tensor, freqs: Sequence[int]) -> torch.Tensor:
    """Complex Fourier coefficients ``(2/n) sum_i y_i e^{-2 pi i f x_i}``.

    ``y`` holds ``n`` samples on :func:`uniform_grid`; for ``y = A sin(2 pi f x
    + phi)`` with ``0 < f < n/2`` the coefficient at ``f`` has modulus ``A``.
    Shapes: ``(n,)`` or ``(n, 1)`` -> ``(len(freqs),)``.
    """
    y = y.reshape(-1)
    n = len(y)
    if max(freqs) >= n / 2 or min(freqs) < 1:
        raise ValueError(f"freqs must lie in [1, n/2) = [1, {n / 2}), got {freqs}")
    spectrum = torch.fft.rfft(y.double()) * 2 / n
    return spectrum[list(freqs)]


def frequency_errors(prediction: torch.Tensor, target: torch.Tensor,
                     freqs: Sequence[int]) -> torch.Tensor:
    """Relative error ``|c_f(pred) - c_f(target)| / |c_f(target)|`` per frequency.

    1 at the start (a prediction with no power at ``f``), 0 once the network
    has learned that component. Shapes: ``(n, 1)`` each -> ``(len(freqs),)``.
    """
    c_pred = fourier_coefficients(prediction, freqs)
    c_true = fourier_coefficients(target, freqs)
    return (c_pred - c_true).abs() / c_true.abs()


def empirical_ntk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``K_ij = <d f(x_i)/d theta, d f(x_j)/d theta>`` for a scalar output.

    One backward pass per example. Shapes: ``x (n, d)``, ``model`` maps to
    ``(n, 1)``; returns ``(n, n)``.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for xi in x:
        out = model(xi.unsqueeze(0)).squeeze()
        if out.ndim != 0:
            raise ValueError("model must have a single output")
        grads = torch.autograd.grad(out, params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    J = torch.stack(rows)  # (n, |theta|)
    return J @ J.T


def _sine_mode(n: int, f: int, dtype: torch.dtype) -> torch.Tensor:
    x = uniform_grid(n, dtype=dtype).squeeze(1)
    u = torch.sin(2 * math.pi * f * x)
    return u / u.norm()


def fourier_mode_cosines(K: torch.Tensor, freqs: Sequence[int]) -> torch.Tensor:
    """``cos(K u_f, u_f)`` for the unit sine modes ``u_f`` of the grid.

    1 exactly when ``u_f`` is an eigenvector of ``K`` (as for a circulant,
    translation-invariant kernel on the periodic grid); well below 1 when the
    Rayleigh quotient of :func:`fourier_mode_eigenvalues` mixes several
    eigenvalues. Shape: ``(n, n) -> (len(freqs),)``.
    """
    out = []
    for f in freqs:
        u = _sine_mode(K.shape[0], f, K.dtype)
        Ku = K @ u
        out.append(u @ Ku / Ku.norm().clamp_min(1e-30))
    return torch.stack(out)


def fourier_mode_eigenvalues(K: torch.Tensor,
                             freqs: Sequence[int]) -> torch.Tensor:
    """Rayleigh quotients ``u_f^T K u_f / n`` of unit Fourier modes on the grid.

    ``u_f`` is the normalized vector ``sin(2 pi f x_i)`` (the cosine mode gives
    the same value up to small terms for a translation-invariant ``K``).
    Gradient flow on the squared loss of a linearized model reduces the error
    along an eigenvector of ``K`` at the rate of its eigenvalue.
    Shape: ``(n, n) -> (len(freqs),)``.
    """
    n = K.shape[0]
    out = []
    for f in freqs:
        u = _sine_mode(n, f, K.dtype)
        out.append(u @ K @ u / n)
    return torch.stack(out)
