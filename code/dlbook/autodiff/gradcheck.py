"""Gradient checking with central differences (chapter: backprop).

The central difference ``(f(x+h) - f(x-h)) / (2h)`` has a truncation error
``O(h^2)`` and, in floating point, a round-off error ``O(u / h)`` where
``u`` is the unit round-off of the number format; the total is smallest
near ``h ~ u^(1/3)``. :func:`gradcheck` compares the engine's gradients with
central differences at such a step, in float64.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .tensor import Tensor

__all__ = ["numerical_gradient", "GradcheckResult", "gradcheck",
           "central_difference_error", "error_model", "optimal_step"]


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
    non-scalar output is contracted with a fixed random cotangent ``u``,
    so the check covers the whole vector-Jacobian product ``u^T J``.
    Passes when ``|analytic - numeric| <= atol + rtol * |numeric|``
    everywhere. Computation is in float64.
    """
    xs = [np.array(x, dtype=np.float64) for x in inputs]
    probe = f(*[Tensor(x) for x in xs])
    u = np.random.default_rng(seed).standard_normal(probe.shape)

    def scalar(*arrays: np.ndarray) -> float:
        return float((f(*[Tensor(a) for a in arrays]).data * u).sum())

    ts = [Tensor(x, requires_grad=True) for x in xs]
    (f(*ts) * Tensor(u)).sum().backward()
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


def error_model(h: np.ndarray, u: float, f0: float, f3: float) -> np.ndarray:
    """Predicted central-difference error ``h^2 |f'''| / 6 + u |f| / h``."""
    h = np.asarray(h, dtype=np.float64)
    return h ** 2 * abs(f3) / 6 + u * abs(f0) / h


def optimal_step(u: float, f0: float, f3: float) -> float:
    """The minimizer ``(3 u |f| / |f'''|)^(1/3)`` of :func:`error_model`."""
    return float((3 * u * abs(f0) / abs(f3)) ** (1 / 3))
