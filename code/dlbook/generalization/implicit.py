"""Implicit bias of gradient descent on separable data (chapter: generalization).

Soudry et al. (2018): gradient descent on the logistic loss of a homogeneous
linear classifier, on linearly separable data, converges in *direction* to the
hard-margin support vector machine, slowly (the angle decays like
``1 / log t``). This module computes both sides of that statement: the
max-margin direction by a small quadratic program, and the gradient descent
iterates at chosen steps.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

__all__ = ["max_margin_direction", "logistic_gd_directions", "normalized_margin"]


def _check(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if X.ndim != 2 or y.shape != (len(X),):
        raise ValueError(f"X must be (N, D) and y (N,), got {X.shape}, {y.shape}")
    if not np.all(np.isin(y, (-1.0, 1.0))):
        raise ValueError("y must take values in {-1, +1}")
    return X, y


def max_margin_direction(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Hard-margin SVM without bias: ``argmin ||w||^2 s.t. y_i <w, x_i> >= 1``.

    Shapes: ``X (N, D)``, ``y (N,)`` in {-1, +1} -> ``w (D,)``. Solved as a
    quadratic program (SLSQP); raises if the data are not linearly separable
    through the origin.
    """
    X, y = _check(X, y)
    Z = y[:, None] * X                       # rows y_i x_i
    w0 = np.linalg.lstsq(Z, np.ones(len(Z)), rcond=None)[0]
    res = minimize(lambda w: 0.5 * w @ w, w0, jac=lambda w: w, method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda w: Z @ w - 1,
                                 "jac": lambda w: Z}],
                   options={"ftol": 1e-14, "maxiter": 500})
    if not res.success or (Z @ res.x).min() < 1 - 1e-6:
        raise ValueError(f"no separating direction through the origin: {res.message}")
    return res.x


def normalized_margin(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """``min_i y_i <w, x_i> / ||w||``, the margin of the direction of ``w``."""
    X, y = _check(X, y)
    return float((y * (X @ w)).min() / np.linalg.norm(w))


def logistic_gd_directions(
    X: np.ndarray, y: np.ndarray, *, lr: float, record: list[int],
    w0: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient descent on the logistic loss ``sum_i log(1 + exp(-y_i <w, x_i>))``.

    Returns the iterates ``w_t`` at the steps in ``record`` (increasing), as
    an array of shape ``(len(record), D)``. The loss is ``L_smooth``-smooth
    with ``L_smooth = s_max(X)^2 / 4``; Soudry et al.'s theorem needs
    ``lr < 2 / L_smooth``.
    """
    X, y = _check(X, y)
    if any(b <= a for a, b in zip(record, record[1:])) or record[0] < 0:
        raise ValueError(f"record must be increasing and >= 0, got {record}")
    Z = y[:, None] * X
    w = np.zeros(X.shape[1]) if w0 is None else np.array(w0, dtype=float)
    out, t = [], 0
    for target in record:
        for _ in range(target - t):
            margins = Z @ w
            # d/dm log(1 + e^{-m}) = -1 / (1 + e^{m}), written to avoid overflow
            coef = np.exp(-np.logaddexp(0.0, margins))
            w = w + lr * (Z.T @ coef)
        t = target
        out.append(w.copy())
    return np.array(out)
