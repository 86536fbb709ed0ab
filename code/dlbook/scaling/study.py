"""A scaling study small enough to run in a book: random-feature regression.

Chapter: scaling. The data are Gaussian inputs ``x`` in ``R^M`` whose
covariance has a power-law spectrum ``lambda_i = i^-nu``, labelled by a
linear teacher ``y = w^T x + noise`` (the solvable model of Maloney, Roberts
and Sully 2022 and Bahri et al. 2024). A model of size ``N`` is a two-layer
linear network whose first layer is a fixed random projection ``F`` of shape
``(M, N)``; its read-out ``theta`` is fitted by ridge regression on ``D``
fresh samples, exactly, so that no optimizer noise blurs the law.

Ridge regression needs the samples only through ``Z^T Z`` and ``Z^T y``
(``Z = X F``), whose joint law is Wishart with ``D`` degrees of freedom. We
draw that matrix directly (Bartlett 1933), at a cost independent of ``D``,
so that fresh data cost nothing however many there are; and the test
loss is exact: ``E (y - theta^T F^T x)^2 = sigma^2 + (w - F theta)^T Lambda
(w - F theta)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TeacherTask", "wishart_bartlett", "random_feature_run",
           "random_feature_run_sampled", "run_grid"]


@dataclass(frozen=True)
class TeacherTask:
    """The data distribution: ``M`` latent directions with spectrum
    ``i^-nu``, teacher weights ``w ~ N(0, I)`` drawn from ``seed``,
    label noise of standard deviation ``sigma`` (irreducible loss
    ``sigma^2``)."""
    M: int = 2048
    nu: float = 2.0
    sigma: float = 0.1
    seed: int = 0

    def spectrum(self) -> np.ndarray:
        """``lambda_i = i^-nu``. Shape: ``(M,)``."""
        return np.arange(1, self.M + 1, dtype=float) ** -self.nu

    def teacher(self) -> np.ndarray:
        """The teacher's weights. Shape: ``(M,)``."""
        return np.random.default_rng(self.seed).standard_normal(self.M)


def wishart_bartlett(scale: np.ndarray, dof: int,
                     rng: np.random.Generator) -> np.ndarray:
    """One draw of ``sum_{t<dof} u_t u_t^T`` with ``u_t ~ N(0, scale)``, by
    the Bartlett decomposition: ``L A A^T L^T`` with ``L`` the Cholesky
    factor of ``scale`` and ``A`` lower triangular, ``A_jj^2 ~ chi^2(dof -
    j)``, ``A_jk ~ N(0, 1)`` below the diagonal. Shape: ``(p, p)``."""
    p = scale.shape[0]
    if scale.shape != (p, p) or dof < p:
        raise ValueError(f"scale must be square (got {scale.shape}) and "
                         f"dof >= its size (got dof={dof})")
    L = np.linalg.cholesky(scale)
    A = np.tril(rng.standard_normal((p, p)), -1)
    A[np.diag_indices(p)] = np.sqrt(rng.chisquare(dof - np.arange(p)))
    LA = L @ A
    return LA @ LA.T


def _joint_cov(task: TeacherTask, F: np.ndarray) -> np.ndarray:
    """Covariance of ``(F^T x, y)``. Shape: ``(N + 1, N + 1)``."""
    lam, w = task.spectrum(), task.teacher()
    LF = lam[:, None] * F
    top = np.hstack([F.T @ LF, (LF.T @ w)[:, None]])
    yy = w @ (lam * w) + task.sigma ** 2
    return np.vstack([top, np.append(LF.T @ w, yy)[None]])


def _ridge_loss(task: TeacherTask, F: np.ndarray, S: np.ndarray,
                ridge: float) -> float:
    """Exact test loss of ridge on the statistics ``S = [Z y]^T [Z y]``."""
    N = F.shape[1]
    G, b = S[:N, :N], S[:N, N]
    pen = ridge * np.trace(G) / N
    if pen > 0:
        theta = np.linalg.solve(G + pen * np.eye(N), b)
    else:                                   # min-norm least squares
        theta = np.linalg.lstsq(G, b, rcond=None)[0]
    v = task.teacher() - F @ theta
    return float(task.sigma ** 2 + v @ (task.spectrum() * v))


def random_feature_run(task: TeacherTask, N: int, D: int, *,
                       ridge: float = 1e-6, seed: int = 0) -> float:
    """Test loss of a model of ``N`` random features trained by ridge
    (penalty ``ridge`` times the mean eigenvalue of ``Z^T Z``) on ``D``
    fresh samples, the samples' statistics drawn from their Wishart law.
    Projection and data come from ``seed``."""
    if not (1 <= N <= task.M) or D < N + 1:
        raise ValueError(f"need 1 <= N <= M={task.M} and D > N for the "
                         f"Wishart draw, got N={N}, D={D}")
    if ridge < 0:
        raise ValueError(f"ridge must be non-negative, got {ridge}")
    rng = np.random.default_rng([seed, N, D])
    F = rng.standard_normal((task.M, N)) / task.M ** 0.5
    S = wishart_bartlett(_joint_cov(task, F), D, rng)
    return _ridge_loss(task, F, S, ridge)


def random_feature_run_sampled(task: TeacherTask, N: int, D: int, *,
                               ridge: float = 1e-6, seed: int = 0) -> float:
    """The same experiment with the ``D`` samples drawn one by one (``X`` of
    shape ``(D, M)``): the oracle that the Wishart shortcut is tested
    against, and the only way when ``D <= N``."""
    rng = np.random.default_rng([seed, N, D, 1])
    F = rng.standard_normal((task.M, N)) / task.M ** 0.5
    X = rng.standard_normal((D, task.M)) * np.sqrt(task.spectrum())
    y = X @ task.teacher() + task.sigma * rng.standard_normal(D)
    Zy = np.hstack([X @ F, y[:, None]])
    return _ridge_loss(task, F, Zy.T @ Zy, ridge)


def run_grid(task: TeacherTask, Ns, Ds, *, ridge: float = 1e-6,
             seeds: int = 2) -> np.ndarray:
    """Mean test loss over ``seeds`` seeds at every ``(N, D)`` of the grid.
    Returns an array of shape ``(len(Ns), len(Ds))``."""
    return np.array([[np.mean([random_feature_run(task, n, d, ridge=ridge,
                                                  seed=s) for s in range(seeds)])
                      for d in Ds] for n in Ns])
