"""Compute-optimal allocation of a training budget between parameters and data.

Chapter: scaling. Under ``L(N, D) = E + A / N^alpha + B / D^beta`` and the
compute model ``C = k N D`` (``k = 6`` FLOPs per parameter per token,
Kaplan et al. 2020), the loss-minimizing ``N`` and ``D`` have a closed
form (Hoffmann et al. 2022, eq. 4). ``compute_optimal`` evaluates it and
``compute_optimal_numeric`` checks it with scipy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = ["ChinchillaLaw", "HOFFMANN2022", "BESIROGLU2024", "PF_DAY",
           "compute_optimal", "compute_optimal_numeric", "kaplan_optimal_n",
           "tokens_per_parameter"]

PF_DAY = 1e15 * 24 * 3600  # FLOPs in one petaflop/s-day (Kaplan et al. 2020)


@dataclass(frozen=True)
class ChinchillaLaw:
    """``L(N, D) = E + A / N^alpha + B / D^beta``, loss in nats per token."""
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    name: str = ""

    def __post_init__(self):
        for k in ("A", "B", "alpha", "beta"):
            if getattr(self, k) <= 0:
                raise ValueError(f"{k} must be positive, got {getattr(self, k)}")

    def loss(self, N, D) -> np.ndarray:
        """The law at ``(N, D)``, elementwise."""
        N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        return self.E + self.A * N ** -self.alpha + self.B * D ** -self.beta


# Hoffmann et al. (2022), eq. (10), Approach 3, as printed in the paper.
HOFFMANN2022 = ChinchillaLaw(1.69, 406.4, 410.7, 0.34, 0.28, "Hoffmann 2022")
# Besiroglu et al. (2024), their refit of Approach 3 on data read off the plots.
BESIROGLU2024 = ChinchillaLaw(1.8172, 482.01, 2085.43, 0.3478, 0.3658,
                              "Besiroglu 2024")


def _check_budget(C, k: float) -> np.ndarray:
    C = np.asarray(C, dtype=float)
    if np.any(C <= 0) or k <= 0:
        raise ValueError(f"compute C and FLOPs per parameter-token k must be "
                         f"positive, got C={C}, k={k}")
    return C


def compute_optimal(law: ChinchillaLaw, C, k: float = 6.0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form minimizer of ``law.loss(N, D)`` subject to ``k N D = C``:
    ``N* = G (C/k)^(beta/(alpha+beta))``, ``D* = G^-1 (C/k)^(alpha/(alpha+
    beta))`` with ``G = (alpha A / (beta B))^(1/(alpha+beta))``. ``E`` does
    not move the optimum. Returns ``(N*, D*)``, each shaped like ``C``."""
    C = _check_budget(C, k)
    al, be = law.alpha, law.beta
    G = (al * law.A / (be * law.B)) ** (1 / (al + be))
    return G * (C / k) ** (be / (al + be)), (C / k) ** (al / (al + be)) / G


def compute_optimal_numeric(law: ChinchillaLaw, C: float, k: float = 6.0
                            ) -> tuple[float, float]:
    """The same minimizer found numerically: bounded Brent search over
    ``log N`` of ``law.loss(N, C / (k N))``. Returns ``(N*, D*)``."""
    C = float(_check_budget(C, k))
    logM = np.log(C / k)

    def f(logN):
        return float(law.loss(np.exp(logN), np.exp(logM - logN)))

    res = minimize_scalar(f, bounds=(0.0, logM), method="bounded",
                          options={"xatol": 1e-10})
    return float(np.exp(res.x)), float(np.exp(logM - res.x))


def kaplan_optimal_n(C) -> np.ndarray:
    """Kaplan et al. (2020)'s compute-efficient model size, ``N = 1.3e9
    C_min^0.73`` with ``C_min`` in PF-days (non-embedding parameters)."""
    C = _check_budget(C, 6.0)
    return 1.3e9 * (C / PF_DAY) ** 0.73


def tokens_per_parameter(law: ChinchillaLaw, C, k: float = 6.0) -> np.ndarray:
    """``D* / N*`` at budget ``C``: ``G^-2 (C/k)^((alpha-beta)/(alpha+beta))``,
    constant in ``C`` only when ``alpha = beta``."""
    N, D = compute_optimal(law, C, k)
    return D / N
