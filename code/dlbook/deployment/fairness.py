"""Fairness audits (chapter ``deployment``): group metrics of a binary
decision, balance and calibration of a score within groups, Chouldechova's
identity, group-specific thresholds, and a generated population whose groups
differ in base rate.
"""
from __future__ import annotations

import numpy as np
import torch

from .calibration import reliability_bins

__all__ = ["risk_population", "group_rates", "score_balance",
           "calibration_within_groups", "chouldechova_fpr",
           "equal_opportunity_thresholds"]


def _check_binary(name: str, t: torch.Tensor, n: int) -> None:
    if t.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")


def risk_population(n: int, base_rates: tuple[float, ...],
                    concentration: float = 4.0, *, seed: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A population with groups of equal size and different base rates.

    Member ``i`` of group ``g`` has a true risk ``r_i ~ Beta(kappa p_g,
    kappa (1 - p_g))`` (mean ``p_g``) and outcome ``y_i ~ Bernoulli(r_i)``;
    the score is the risk itself, so it is calibrated within every group.
    Returns ``score (n,)`` float64, ``y (n,)`` int64, ``group (n,)`` int64.
    """
    if any(not 0 < p < 1 for p in base_rates) or concentration <= 0:
        raise ValueError("base rates must lie in (0, 1), concentration > 0")
    g = torch.arange(n) % len(base_rates)
    p = torch.tensor(base_rates, dtype=torch.float64)[g]
    rng = np.random.default_rng(seed)  # torch has no seeded Beta sampler
    risk = torch.from_numpy(rng.beta(concentration * p.numpy(),
                                     concentration * (1 - p.numpy())))
    risk = risk.clamp(1e-12, 1 - 1e-12)
    y = (torch.from_numpy(rng.random(n)) < risk).long()
    return risk, y, g


def group_rates(y: torch.Tensor, decision: torch.Tensor,
                group: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-group base rate, selection rate, TPR, FPR, PPV and accuracy of a
    binary ``decision``. Shapes: three ``(N,)`` tensors, the first two in
    {0, 1}; returns a dict of ``(G,)`` float64 tensors (G = number of groups).
    """
    _check_binary("decision", decision, len(y)), _check_binary("group", group, len(y))
    out: dict[str, list[float]] = {k: [] for k in
                                   ("base_rate", "selection_rate", "tpr", "fpr",
                                    "ppv", "accuracy")}
    for g in range(int(group.max()) + 1):
        yg, dg = y[group == g].double(), decision[group == g].double()
        if len(yg) == 0 or yg.sum() == 0 or yg.sum() == len(yg) or dg.sum() == 0:
            raise ValueError(f"group {g} needs both outcomes and a positive decision")
        out["base_rate"].append(float(yg.mean()))
        out["selection_rate"].append(float(dg.mean()))
        out["tpr"].append(float((dg * yg).sum() / yg.sum()))
        out["fpr"].append(float((dg * (1 - yg)).sum() / (1 - yg).sum()))
        out["ppv"].append(float((dg * yg).sum() / dg.sum()))
        out["accuracy"].append(float((dg == yg).double().mean()))
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}


def score_balance(score: torch.Tensor, y: torch.Tensor, group: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean score of the negatives and of the positives of each group: the
    balance conditions of Kleinberg et al. (2017) ask each to be equal across
    groups. Shapes: ``(N,)`` each; returns two ``(G,)`` float64 tensors."""
    _check_binary("y", y, len(score)), _check_binary("group", group, len(score))
    groups = range(int(group.max()) + 1)
    neg = [score[(group == g) & (y == 0)].double().mean() for g in groups]
    pos = [score[(group == g) & (y == 1)].double().mean() for g in groups]
    return torch.stack(neg), torch.stack(pos)


def calibration_within_groups(score: torch.Tensor, y: torch.Tensor,
                              group: torch.Tensor, n_bins: int = 10
                              ) -> torch.Tensor:
    """Binned calibration error ``sum_m |B_m|/N_g |mean(y) - mean(score)|`` of
    a probability score within each group. Returns ``(G,)`` float64."""
    _check_binary("y", y, len(score)), _check_binary("group", group, len(score))
    errs = []
    for g in range(int(group.max()) + 1):
        s, yg = score[group == g], y[group == g]
        counts, ms, my = reliability_bins(s, yg, n_bins)
        errs.append((counts / len(s) * (my - ms).abs()).sum())
    return torch.stack(errs)


def chouldechova_fpr(base_rate: torch.Tensor, ppv: torch.Tensor,
                     tpr: torch.Tensor) -> torch.Tensor:
    """Chouldechova's identity (2017): ``FPR = p/(1-p) (1-PPV)/PPV TPR``,
    which holds for any binary decision with ``PPV > 0``. Elementwise."""
    if ((base_rate <= 0) | (base_rate >= 1) | (ppv <= 0)).any():
        raise ValueError("need 0 < base_rate < 1 and ppv > 0")
    return base_rate / (1 - base_rate) * (1 - ppv) / ppv * tpr


def equal_opportunity_thresholds(score: torch.Tensor, y: torch.Tensor,
                                 group: torch.Tensor, tpr: float
                                 ) -> torch.Tensor:
    """Per-group thresholds at which ``score >= t_g`` has true-positive rate
    about ``tpr`` in every group (equal opportunity, Hardt et al., 2016): the
    ``1 - tpr`` quantile of the positives' scores. Returns ``(G,)``."""
    if not 0 < tpr < 1:
        raise ValueError(f"tpr must lie in (0, 1), got {tpr}")
    _check_binary("y", y, len(score)), _check_binary("group", group, len(score))
    return torch.stack([torch.quantile(score[(group == g) & (y == 1)].double(),
                                       1 - tpr)
                        for g in range(int(group.max()) + 1)])
