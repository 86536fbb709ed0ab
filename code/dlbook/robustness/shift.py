"""Distribution shift on the digits (chapter ``ood``): a planted shortcut and
its counterfactual test sets, the prior correction for label shift, and the
maximum-softmax score for detecting a shift.
"""
from __future__ import annotations

import torch

__all__ = ["SHORTCUT_PIXELS", "binary_digits_label", "plant_shortcut",
           "spurious_attribute", "groups_of", "prior_shift_indices",
           "correct_label_shift", "max_softmax_score", "auroc"]

#: The pixels of the planted patch: a bar in the left margin of an 8x8 digit
#: (rows 0-4 of column 0), where the scikit-learn digits carry almost no ink.
SHORTCUT_PIXELS = (0, 8, 16, 24, 32)


def binary_digits_label(digit: torch.Tensor) -> torch.Tensor:
    """The shape task of the shortcut experiments: 1 if the digit is >= 5.

    Shape: ``(N,)`` int64 in 0..9; returns ``(N,)`` int64 in {0, 1}."""
    if digit.min() < 0 or digit.max() > 9:
        raise ValueError("digit labels must lie in 0..9")
    return (digit >= 5).long()


def spurious_attribute(y: torch.Tensor, rho: float,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """An attribute equal to the label with probability ``rho``, else flipped.

    ``rho = 1`` makes the attribute a perfect shortcut, ``rho = 1/2`` makes it
    independent of the label and ``rho = 0`` anti-correlated. Shape: ``y (N,)``
    in {0, 1}; returns ``(N,)`` int64.
    """
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must lie in [0, 1], got {rho!r}")
    keep = torch.rand(len(y), generator=generator) < rho
    return torch.where(keep, y, 1 - y)


def plant_shortcut(X: torch.Tensor, attribute: torch.Tensor,
                   strength: float) -> torch.Tensor:
    """Paint the margin bar at intensity ``strength`` where ``attribute`` is 1
    and blank it where it is 0.

    ``strength`` in (0, 1] is the salience of the shortcut: how far the two
    kinds of image are apart in pixel space. Shapes: ``X (N, 64)`` in [0, 1],
    ``attribute (N,)``; returns a new ``(N, 64)`` tensor.
    """
    if X.ndim != 2 or X.shape[1] != 64:
        raise ValueError(f"X must have shape (N, 64), got {tuple(X.shape)}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must lie in (0, 1], got {strength!r}")
    out = X.clone()
    patch = strength * attribute.to(X.dtype).unsqueeze(1)
    out[:, list(SHORTCUT_PIXELS)] = patch.expand(-1, len(SHORTCUT_PIXELS))
    return out


def groups_of(y: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor:
    """Group index ``2 y + a`` of (label, attribute) pairs, in 0..3."""
    return 2 * y + attribute


def prior_shift_indices(y: torch.Tensor, prior: torch.Tensor, n: int,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of a resample of ``y`` whose labels follow ``prior``.

    Draws ``n`` indices with replacement: a label by ``prior``, then an example
    of that label uniformly, so that p(x | y) is unchanged (label shift).
    Shapes: ``y (N,)``, ``prior (C,)``; returns ``(n,)``.
    """
    if (prior < 0).any() or abs(float(prior.sum()) - 1) > 1e-6:
        raise ValueError("prior must be a probability vector")
    labels = torch.multinomial(prior.double(), n, replacement=True,
                               generator=generator)
    out = torch.empty(n, dtype=torch.int64)
    for c in labels.unique():
        pool = (y == c).nonzero().squeeze(1)
        if len(pool) == 0:
            raise ValueError(f"prior puts mass on class {int(c)}, absent from y")
        where = (labels == c).nonzero().squeeze(1)
        pick = torch.randint(len(pool), (len(where),), generator=generator)
        out[where] = pool[pick]
    return out


def correct_label_shift(probs: torch.Tensor, source_prior: torch.Tensor,
                        target_prior: torch.Tensor) -> torch.Tensor:
    """Bayes' rule for a new label prior: ``p_t(y|x) ∝ p_s(y|x) q_t(y) / q_s(y)``.

    Valid under label shift, where p(x | y) is the same in both domains
    (Saerens et al., 2002). Shapes: ``probs (N, C)``, priors ``(C,)``;
    returns ``(N, C)`` rows summing to 1.
    """
    if probs.shape[1] != len(source_prior) or len(source_prior) != len(target_prior):
        raise ValueError("probs (N, C) and both priors (C,) must agree on C")
    w = probs * (target_prior / source_prior).to(probs.dtype)
    return w / w.sum(1, keepdim=True)


def max_softmax_score(logits: torch.Tensor) -> torch.Tensor:
    """The baseline out-of-distribution score of Hendrycks and Gimpel (2017):
    the largest softmax probability, high for inputs that look familiar.

    Shape: ``logits (N, C)``; returns ``(N,)``."""
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, C), got {tuple(logits.shape)}")
    return torch.softmax(logits.detach().double(), 1).amax(1)


def auroc(scores_in: torch.Tensor, scores_out: torch.Tensor) -> float:
    """Area under the ROC curve for telling ``scores_in`` (positives, expected
    high) from ``scores_out``: the probability that a random in-distribution
    score exceeds a random out-of-distribution one, ties counting one half
    (the Mann-Whitney statistic). Shapes: ``(N,)`` and ``(M,)``; 1/2 is chance.
    """
    if (scores_in.ndim != 1 or scores_out.ndim != 1
            or len(scores_in) == 0 or len(scores_out) == 0):
        raise ValueError("scores_in and scores_out must be non-empty (N,), (M,)")
    a, b = scores_in.double().unsqueeze(1), scores_out.double().unsqueeze(0)
    return float(((a > b).double() + 0.5 * (a == b).double()).mean())
