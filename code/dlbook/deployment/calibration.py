"""Calibration and selective prediction (chapter ``deployment``): reliability
bins, the expected calibration error, temperature scaling (Guo et al., 2017)
and the risk-coverage curve of a confidence threshold.
"""
from __future__ import annotations

import torch

__all__ = ["reliability_bins", "expected_calibration_error", "fit_temperature",
           "risk_coverage"]


def _check_probs(probs: torch.Tensor, y: torch.Tensor) -> None:
    if probs.ndim != 2 or y.shape != (len(probs),):
        raise ValueError(f"probs must be (N, C) and y (N,), got "
                         f"{tuple(probs.shape)} and {tuple(y.shape)}")


def reliability_bins(confidence: torch.Tensor, correct: torch.Tensor,
                     n_bins: int = 15) -> tuple[torch.Tensor, ...]:
    """Equal-width bins ``((m-1)/M, m/M]`` of the confidence.

    Shapes: ``confidence (N,)`` in [0, 1], ``correct (N,)`` in {0, 1}; returns
    ``counts, mean_confidence, accuracy``, each ``(n_bins,)`` (the last two
    are 0 in empty bins).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if confidence.shape != correct.shape or confidence.ndim != 1:
        raise ValueError("confidence and correct must be (N,) alike")
    c = confidence.double()
    idx = (torch.ceil(c * n_bins) - 1).clamp(0, n_bins - 1).long()
    counts = torch.bincount(idx, minlength=n_bins).double()
    conf_sum = torch.bincount(idx, weights=c, minlength=n_bins)
    acc_sum = torch.bincount(idx, weights=correct.double(), minlength=n_bins)
    safe = counts.clamp_min(1)
    return counts, conf_sum / safe, acc_sum / safe


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor,
                               n_bins: int = 15) -> float:
    """``ECE = sum_m |B_m|/N |acc(B_m) - conf(B_m)|`` of the top-label
    confidence over ``n_bins`` equal-width bins (Naeini et al., 2015).

    Shapes: ``probs (N, C)`` rows summing to 1, ``y (N,)``; returns a float.
    """
    _check_probs(probs, y)
    conf, pred = probs.double().max(1)
    counts, mc, acc = reliability_bins(conf, (pred == y), n_bins)
    return float((counts / len(y) * (acc - mc).abs()).sum())


def fit_temperature(logits: torch.Tensor, y: torch.Tensor,
                    max_iter: int = 100) -> float:
    """The temperature ``T > 0`` that minimises the log loss of
    ``softmax(logits / T)`` on held-out data (Guo et al., 2017).

    Optimises ``log T`` with L-BFGS in float64; the objective is strictly
    convex in ``1/T`` (unless every logit row is constant), so the minimiser
    is unique when it exists. Shapes: ``logits
    (N, C)``, ``y (N,)``; returns a float.
    """
    _check_probs(logits, y)
    z = logits.detach().double()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def risk_coverage(confidence: torch.Tensor, correct: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The risk-coverage curve of selective prediction by confidence.

    Keeping the ``k`` most confident inputs gives coverage ``k/N`` and risk
    the error rate among them. Shapes: ``(N,)`` and ``(N,)``; returns
    ``coverage, risk``, each ``(N,)``, coverage increasing.
    """
    if confidence.shape != correct.shape or confidence.ndim != 1:
        raise ValueError("confidence and correct must be (N,) alike")
    order = torch.argsort(confidence.double(), descending=True, stable=True)
    errors = (1.0 - correct.double()[order]).cumsum(0)
    k = torch.arange(1, len(order) + 1, dtype=torch.float64)
    return k / len(order), errors / k
