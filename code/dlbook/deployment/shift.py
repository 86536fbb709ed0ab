"""Shift in the field (chapter ``deployment``): a vectorised MMD permutation
test for samples of model outputs, and black-box shift estimation of a new
label prior (Lipton, Wang and Smola, 2018).
"""
from __future__ import annotations

import torch

from dlbook.generative.metrics import gaussian_kernel

__all__ = ["median_bandwidth", "mmd_permutation_pvalue", "confusion_joint",
           "bbse_weights", "bbse_prior", "label_shift_subsample"]


def _check_2d(name: str, x: torch.Tensor) -> None:
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"{name} must have shape (N, D) with N >= 2, got "
                         f"{tuple(x.shape)}")


def median_bandwidth(x: torch.Tensor, y: torch.Tensor) -> float:
    """The median heuristic: the median distance between distinct points of
    the pooled sample. Shapes: ``(N, D)``, ``(M, D)``; returns a float > 0."""
    _check_2d("x", x), _check_2d("y", y)
    z = torch.cat([x, y]).double()
    i, j = torch.triu_indices(len(z), len(z), offset=1)
    h = float(torch.quantile(torch.cdist(z, z)[i, j], 0.5))  # as numpy.median
    if h <= 0:
        raise ValueError("the pooled sample has a zero median distance")
    return h


def _unbiased_stats(k: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``mmd2`` for each row of the 0/1 membership matrix ``a (B, N+M)``
    (1 marks the first sample), from the pooled kernel ``k``."""
    k0 = k - torch.diag(k.diagonal())  # the U-statistic drops i = j
    b = 1.0 - a
    n, m = a.sum(1), b.sum(1)
    kaa = ((a @ k0) * a).sum(1) / (n * (n - 1))
    kbb = ((b @ k0) * b).sum(1) / (m * (m - 1))
    kab = ((a @ k) * b).sum(1) / (n * m)
    return kaa + kbb - 2 * kab


def mmd_permutation_pvalue(x: torch.Tensor, y: torch.Tensor, bandwidth: float,
                           n_permutations: int = 200, *,
                           generator: torch.Generator | None = None) -> float:
    """p-value of the MMD two-sample test of ``P = Q``, all permutations at once.

    The same test as ``dlbook.generative.metrics.mmd_permutation_test`` (and,
    for the same generator, the same permutations and p-value), computed as
    batched quadratic forms of the pooled kernel matrix. Shapes: ``x (N, D)``,
    ``y (M, D)``; returns ``(1 + #{T_b >= T}) / (1 + B)``.
    """
    _check_2d("x", x), _check_2d("y", y)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    pooled = torch.cat([x, y]).double()
    n, total = len(x), len(x) + len(y)
    k = gaussian_kernel(pooled, pooled, bandwidth)
    perms = torch.stack([torch.arange(total)] + [
        torch.randperm(total, generator=generator) for _ in range(n_permutations)])
    a = torch.zeros(len(perms), total, dtype=torch.float64)
    a.scatter_(1, perms[:, :n], 1.0)
    stats = _unbiased_stats(k, a)
    return (1 + int((stats[1:] >= stats[0]).sum())) / (1 + n_permutations)


def confusion_joint(pred: torch.Tensor, y: torch.Tensor,
                    num_classes: int) -> torch.Tensor:
    """The joint confusion matrix ``C[i, j] = P(pred = i, y = j)`` on source data.

    Shapes: ``pred (N,)``, ``y (N,)`` int64 in ``0..num_classes-1``; returns
    ``(num_classes, num_classes)`` float64 summing to 1.
    """
    if pred.shape != y.shape or pred.ndim != 1:
        raise ValueError(f"pred and y must be (N,) alike, got {tuple(pred.shape)}"
                         f" and {tuple(y.shape)}")
    if min(pred.min(), y.min()) < 0 or max(pred.max(), y.max()) >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    flat = torch.bincount(pred * num_classes + y, minlength=num_classes ** 2)
    return flat.reshape(num_classes, num_classes).double() / len(y)


def bbse_weights(pred_source: torch.Tensor, y_source: torch.Tensor,
                 pred_target: torch.Tensor, num_classes: int,
                 clip: bool = True) -> torch.Tensor:
    """Black-box shift estimation: solve ``C w = mu`` for ``w = q(y) / p(y)``.

    ``C`` is the joint confusion matrix on held-out source data and ``mu`` the
    distribution of the predictions on unlabelled target data. ``clip`` sets
    negative solutions to 0 (an estimate of a ratio of probabilities).
    Shapes: ``(N,)``, ``(N,)``, ``(M,)``; returns ``(num_classes,)`` float64.
    """
    c = confusion_joint(pred_source, y_source, num_classes)
    if torch.linalg.matrix_rank(c) < num_classes:
        raise ValueError("the confusion matrix is singular: BBSE needs it "
                         "invertible (assumption A.3)")
    mu = torch.bincount(pred_target, minlength=num_classes).double()
    w = torch.linalg.solve(c, mu / len(pred_target))  # eq. (bbse)
    return w.clamp_min(0.0) if clip else w


def bbse_prior(pred_source: torch.Tensor, y_source: torch.Tensor,
               pred_target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The target label prior ``q(y) = w(y) p(y)`` estimated by BBSE, with
    ``p(y)`` the source label frequencies, renormalised to sum to 1.
    Returns ``(num_classes,)`` float64."""
    w = bbse_weights(pred_source, y_source, pred_target, num_classes)
    p = torch.bincount(y_source, minlength=num_classes).double() / len(y_source)
    q = w * p
    if q.sum() <= 0:
        raise ValueError("the estimated prior has no mass")
    return q / q.sum()


def label_shift_subsample(y: torch.Tensor, prior: torch.Tensor, n: int,
                          generator: torch.Generator | None = None
                          ) -> torch.Tensor:
    """Indices of ``n`` distinct examples whose labels follow ``prior``.

    Like ``dlbook.robustness.prior_shift_indices`` but without replacement:
    the class counts are drawn from the multinomial of ``prior``, then the
    examples of each class uniformly without repeats, so that a two-sample
    test never sees duplicated points. Shapes: ``y (N,)``, ``prior (C,)``.
    """
    if (prior < 0).any() or abs(float(prior.sum()) - 1) > 1e-6:
        raise ValueError("prior must be a probability vector")
    labels = torch.multinomial(prior.double(), n, replacement=True,
                               generator=generator)
    counts = torch.bincount(labels, minlength=len(prior))
    out = []
    for c, k in enumerate(counts.tolist()):
        pool = (y == c).nonzero().squeeze(1)
        if k > len(pool):
            raise ValueError(f"class {c} needs {k} examples, has {len(pool)}")
        out.append(pool[torch.randperm(len(pool), generator=generator)[:k]])
    return torch.cat(out)[torch.randperm(n, generator=generator)]
