"""Fitting power laws, with an offset, in log space, with bootstrap intervals.

Chapter: scaling. ``fit_power_law`` fits ``y = e + a x^(-alpha)`` to one
variable; ``fit_scaling_law`` fits the two-variable law ``L(N, D) = E +
A / N^alpha + B / D^beta`` of Hoffmann et al. (2022). Both minimize squared
residuals of ``log y`` (each point counts by its relative error, as it does
on a log-log plot), with positive constants parameterized by their logs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

__all__ = ["PowerLawFit", "power_law", "fit_power_law", "local_exponent",
           "ScalingLawFit", "fit_scaling_law"]


def power_law(x, a: float, alpha: float, e: float = 0.0) -> np.ndarray:
    """``e + a * x**(-alpha)``, elementwise. Shape: that of ``x``."""
    return e + a * np.asarray(x, dtype=float) ** (-alpha)


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`: the constants of ``e + a x^-alpha``,
    ``intervals[name] = (low, high)`` percentile bootstrap intervals at
    ``level`` and the bootstrap draws ``boot`` (shape ``(n_boot, 3)``,
    columns ``a, alpha, e``)."""
    a: float
    alpha: float
    e: float
    intervals: dict = field(default_factory=dict)
    level: float = 0.9
    boot: np.ndarray | None = None

    def __call__(self, x) -> np.ndarray:
        return power_law(x, self.a, self.alpha, self.e)


def _check_xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D of equal length, got shapes "
                         f"{x.shape} and {y.shape}")
    if x.size < 4:
        raise ValueError(f"need at least 4 points to fit, got {x.size}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive (they are fitted in logs)")
    return x, y


def _fit_once(x: np.ndarray, y: np.ndarray, offset: bool) -> np.ndarray:
    """One log-space least-squares fit; returns ``(a, alpha, e)``."""
    lx, ly = np.log(x), np.log(y)
    slope, icpt = np.polyfit(lx, ly, 1)          # the no-offset fit, exact
    if not offset:
        return np.array([np.exp(icpt), -slope, 0.0])

    def resid(p):  # p = (log a, alpha, log e)
        return np.logaddexp(p[0] - p[1] * lx, p[2]) - ly

    best = None
    for frac in (1e-3, 0.3, 0.7, 0.95):           # starts for e below min y
        p0 = np.array([icpt, max(-slope, 1e-2), np.log(frac * y.min())])
        sol = least_squares(resid, p0, method="lm", max_nfev=2000)
        if best is None or sol.cost < best.cost:
            best = sol
    la, alpha, le = best.x
    return np.array([np.exp(la), alpha, np.exp(le)])


def fit_power_law(x, y, *, offset: bool = True, n_boot: int = 200,
                  level: float = 0.9, seed: int = 0) -> PowerLawFit:
    """Fit ``y = e + a x^(-alpha)`` (``e = 0`` if ``offset=False``) by least
    squares on ``log y``, with percentile intervals from ``n_boot``
    bootstrap resamples of the points (Efron 1979). Shapes: ``x, y``:
    ``(n,)``, positive."""
    x, y = _check_xy(x, y)
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    a, alpha, e = _fit_once(x, y, offset)
    rng = np.random.default_rng(seed)
    boot = np.array([_fit_once(x[i], y[i], offset) for i in
                     (rng.integers(0, x.size, x.size) for _ in range(n_boot))
                     ]) if n_boot > 0 else np.empty((0, 3))
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    intervals = {k: tuple(np.percentile(boot[:, j], q)) if n_boot else (v, v)
                 for j, (k, v) in enumerate(zip(("a", "alpha", "e"),
                                                (a, alpha, e)))}
    return PowerLawFit(float(a), float(alpha), float(e), intervals, level, boot)


def local_exponent(x, y) -> tuple[np.ndarray, np.ndarray]:
    """The local log-log slope ``-d log y / d log x`` between neighbouring
    points, at their geometric midpoints: constant for a pure power law.
    Returns ``(x_mid, slope)``, each of shape ``(n - 1,)``."""
    x, y = _check_xy(x, y)
    lx, ly = np.log(x), np.log(y)
    return np.exp((lx[1:] + lx[:-1]) / 2), -np.diff(ly) / np.diff(lx)


@dataclass(frozen=True)
class ScalingLawFit:
    """``L(N, D) = E + A / N^alpha + B / D^beta``, fitted by
    :func:`fit_scaling_law`."""
    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __call__(self, N, D) -> np.ndarray:
        N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        return self.E + self.A * N ** -self.alpha + self.B * D ** -self.beta


def fit_scaling_law(N, D, L, *, huber_delta: float | None = None
                    ) -> ScalingLawFit:
    """Fit ``L = E + A N^-alpha + B D^-beta`` to runs ``(N_i, D_i, L_i)`` by
    least squares (or a Huber loss with ``huber_delta``, as Hoffmann et al.
    2022 do) on ``log L``, from a small grid of starts. Shapes: ``(n,)``."""
    N, D, L = (np.asarray(v, dtype=float) for v in (N, D, L))
    if not (N.shape == D.shape == L.shape) or N.ndim != 1 or N.size < 6:
        raise ValueError(f"N, D, L must be 1-D, equal length >= 6; got "
                         f"{N.shape}, {D.shape}, {L.shape}")
    if min(N.min(), D.min(), L.min()) <= 0:
        raise ValueError("N, D and L must be positive")
    lN, lD, lL = np.log(N), np.log(D), np.log(L)

    def resid(p):  # p = (log E, log A, log B, alpha, beta)
        terms = np.stack([np.full_like(lN, p[0]), p[1] - p[3] * lN,
                          p[2] - p[4] * lD])
        return np.logaddexp.reduce(terms, axis=0) - lL

    loss = "linear" if huber_delta is None else "huber"
    kw = {} if huber_delta is None else {"f_scale": huber_delta}
    best = None
    for e0 in (0.1, 0.5, 0.9):
        for ex in (0.3, 0.7, 1.2):
            p0 = np.array([np.log(e0 * L.min()), np.log(L.max()) + ex * lN.min(),
                           np.log(L.max()) + ex * lD.min(), ex, ex])
            sol = least_squares(resid, p0, loss=loss, max_nfev=4000, **kw)
            if best is None or sol.cost < best.cost:
                best = sol
    lE, lA, lB, alpha, beta = best.x
    return ScalingLawFit(float(np.exp(lE)), float(np.exp(lA)),
                         float(np.exp(lB)), float(alpha), float(beta))
