"""Monitoring a deployed model (chapter ``deployment``): the CUSUM statistic
of Page (1954) over a stream of per-input scores, its first alarm, and a
threshold set by simulation for a target false-alarm probability.
"""
from __future__ import annotations

import torch

__all__ = ["cusum", "first_alarm", "cusum_threshold"]


def cusum(z: torch.Tensor, k: float) -> torch.Tensor:
    """One-sided CUSUM ``S_t = max(0, S_{t-1} + z_t - k)``, ``S_0 = 0``.

    ``z`` are standardised scores that rise when the stream drifts and ``k``
    is the allowance (half the shift, in standard deviations, to detect).
    Shape: ``z (..., T)``; returns ``(..., T)``. A loop over time, vectorised
    over the leading dimensions.
    """
    if z.ndim < 1 or z.shape[-1] == 0:
        raise ValueError(f"z must have a time axis of length >= 1, got "
                         f"{tuple(z.shape)}")
    out = torch.empty_like(z, dtype=torch.float64)
    s = torch.zeros(z.shape[:-1], dtype=torch.float64)
    for t in range(z.shape[-1]):
        s = (s + z[..., t].double() - k).clamp_min(0.0)
        out[..., t] = s
    return out


def first_alarm(s: torch.Tensor, h: float) -> torch.Tensor:
    """Index of the first ``t`` with ``S_t > h``, or -1 where there is none.
    Shape: ``s (..., T)``; returns ``(...,)`` int64."""
    above = s > h
    first = above.double().argmax(-1)
    return torch.where(above.any(-1), first, torch.full_like(first, -1))


def cusum_threshold(null_z: torch.Tensor, k: float, horizon: int,
                    alpha: float, n_streams: int = 2000, *,
                    generator: torch.Generator | None = None) -> float:
    """The threshold ``h`` at which a stream of in-control scores raises a
    false alarm within ``horizon`` steps with probability about ``alpha``.

    Streams are bootstrapped from ``null_z (N,)`` (scores of held-out source
    data) and ``h`` is the ``1 - alpha`` quantile of ``max_t S_t``, so that
    ``P(max_t S_t > h) <= alpha`` under the bootstrap distribution.
    """
    if not 0 < alpha < 1 or horizon < 1 or null_z.ndim != 1:
        raise ValueError("need 0 < alpha < 1, horizon >= 1 and null_z (N,)")
    idx = torch.randint(len(null_z), (n_streams, horizon), generator=generator)
    peaks = cusum(null_z[idx], k).amax(-1)
    return float(torch.quantile(peaks, 1 - alpha))
