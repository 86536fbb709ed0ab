"""Gradient checking with central differences (chapter: backprop).

The central difference ``(f(x+h) - f(x-h)) / (2h)`` has a truncation error
``O(h^2)`` and, in floating point, a round-off error ``O(delta / h)`` where
``delta`` is the relative error of the computed values of ``f`` (the unit
round-off ``u`` of the number format for a correctly rounded ``f``); the
total is smallest near ``h ~ delta^(1/3)``. :func:`gradcheck` compares the
engine's gradients with central differences at such a step, in float64.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .tensor import Tensor

__all__ = ["numerical_gradient", "GradcheckResult", "gradcheck",
           "central_difference_error", "relative_rounding_error",
           "central_difference_bound", "optimal_step"]


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                       h: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of a scalar function of an array.

    Costs ``2 * x.size`` evaluations of ``f``. Shape: same as ``x``.
    """
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views into x and grad
    for i in range(flat.size):
        xi = flat[i]
        flat[i] = xi + h
        f_plus = float(f(x))
        flat[i] = xi - h
        f_minus = float(f(x))
        flat[i] = xi
        gflat[i] = (f_plus - f_minus) / (2 * h)
    return grad


@dataclass(frozen=True)
class GradcheckResult:
    """Outcome of :func:`gradcheck`: per-input gradients and worst errors."""

    ok: bool
    max_abs_error: float
    max_rel_error: float
    analytic: tuple[np.ndarray, ...]
    numeric: tuple[np.ndarray, ...]


def gradcheck(f: Callable[..., Tensor], inputs: Sequence[np.ndarray], *,
              h: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-4,
              seed: int = 0) -> GradcheckResult:
    """Compare reverse-mode gradients of ``f`` with central differences.

    ``f`` maps one :class:`Tensor` per entry of ``inputs`` to a Tensor. A
    non-scalar output is contracted with a fixed random cotangent ``y_bar``,
    so the check covers the whole vector-Jacobian product ``y_bar^T J``.
    Passes when ``|analytic - numeric| <= atol + rtol * |numeric|``
    everywhere. Computation is in float64.
    """
    xs = [np.array(x, dtype=np.float64) for x in inputs]
    probe = f(*[Tensor(x) for x in xs])
    y_bar = np.random.default_rng(seed).standard_normal(probe.shape)

    def scalar(*arrays: np.ndarray) -> float:
        return float((f(*[Tensor(a) for a in arrays]).data * y_bar).sum())

    ts = [Tensor(x, requires_grad=True) for x in xs]
    (f(*ts) * Tensor(y_bar)).sum().backward()
    analytic = tuple(np.zeros_like(x) if t.grad is None else t.grad for x, t in
                     zip(xs, ts))
    numeric = []
    for i in range(len(xs)):
        def fi(xi: np.ndarray, i: int = i) -> float:
            return scalar(*xs[:i], xi, *xs[i + 1:])
        numeric.append(numerical_gradient(fi, xs[i], h))
    abs_err = max((np.abs(a - n).max(initial=0.0)
                   for a, n in zip(analytic, numeric)), default=0.0)
    rel_err = max((np.max(np.abs(a - n) / (np.abs(n) + atol), initial=0.0)
                   for a, n in zip(analytic, numeric)), default=0.0)
    ok = all(np.all(np.abs(a - n) <= atol + rtol * np.abs(n))
             for a, n in zip(analytic, numeric))
    return GradcheckResult(bool(ok), float(abs_err), float(rel_err),
                           analytic, tuple(numeric))


def central_difference_error(f: Callable[[np.ndarray], np.ndarray],
                             df: Callable[[float], float], x: float,
                             steps: np.ndarray, dtype: type = np.float64
                             ) -> np.ndarray:
    """``|(f(x+h) - f(x-h)) / (2h) - f'(x)|`` for each step ``h``, in ``dtype``.

    ``f`` must be a NumPy function that computes in the dtype it is given
    (e.g. ``np.exp``); ``df`` gives the exact derivative in float64.
    """
    x_, h = dtype(x), np.asarray(steps, dtype=dtype)
    approx = (f(x_ + h) - f(x_ - h)) / (dtype(2) * h)
    return np.abs(approx.astype(np.float64) - df(x))


def relative_rounding_error(f: Callable[[np.ndarray], np.ndarray],
                            exact: Callable[[float], float], points: np.ndarray,
                            dtype: type = np.float64) -> float:
    """Largest relative error ``|f(x) - exact(x)| / |exact(x)|`` of ``f`` in ``dtype``.

    ``points`` are cast to ``dtype`` first, so the error is that of ``f`` on
    the numbers it is really given; ``exact`` must be more accurate than
    ``dtype`` (e.g. ``mpmath`` at 113 bits for float64, whose numbers it may
    return). This is the
    ``delta`` of the central-difference error theorem. Shape: ``points (K,)``.
    """
    xs = np.asarray(points, dtype=dtype)
    got = f(xs).astype(np.float64)
    # exact(x) may be an mpmath number: the difference is then taken in its
    # precision, not rounded to float64 first
    return max(float(abs(g - exact(float(x))) / abs(exact(float(x))))
               for g, x in zip(got.tolist(), xs.tolist()))


def central_difference_bound(h: np.ndarray, delta: float, M0: np.ndarray,
                             M3: np.ndarray) -> np.ndarray:
    """The bound ``M3 h^2 / 6 + delta M0 / h`` on the central-difference error.

    ``M0`` and ``M3`` bound ``|f|`` and ``|f'''|`` on ``[x - h, x + h]`` (one
    value per step, or one for all); ``delta`` bounds the relative error of
    each computed value of ``f``. Shape: that of ``h``.
    """
    h = np.asarray(h, dtype=np.float64)
    return np.asarray(M3) * h ** 2 / 6 + delta * np.asarray(M0) / h


def optimal_step(delta: float, M0: float, M3: float) -> float:
    """The minimizer ``(3 delta M0 / M3)^(1/3)`` of :func:`central_difference_bound`
    with constant ``M0`` and ``M3``."""
    if delta <= 0 or M0 <= 0 or M3 <= 0:
        raise ValueError(f"need delta, M0, M3 > 0, got {delta}, {M0}, {M3}")
    return float((3 * delta * M0 / M3) ** (1 / 3))
