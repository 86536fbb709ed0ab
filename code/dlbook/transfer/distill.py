"""Knowledge distillation (chapter transfer-models): soft targets at a
temperature, the distillation loss, its closed-form gradient and the
logit-matching limit, pseudo-labels, and the bias correction for a class that
the transfer set omits."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["soften", "distillation_loss", "soft_target_grad",
           "logit_matching_grad", "pseudo_labels", "prior_bias_shift"]

F = nn.functional


def _check_logits(name: str, z: torch.Tensor) -> None:
    if z.ndim != 2:
        raise ValueError(f"{name} must be (N, C), got {tuple(z.shape)}")


def _check_pair(z: torch.Tensor, v: torch.Tensor) -> None:
    _check_logits("student_logits", z)
    if v.shape != z.shape:
        raise ValueError(f"teacher_logits {tuple(v.shape)} and "
                         f"student_logits {tuple(z.shape)} differ")


def _check_tau(tau: float) -> None:
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")


def soften(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Soft targets ``softmax(z / tau)`` row by row; ``tau = 1`` is the usual
    softmax and ``tau -> inf`` the uniform distribution.
    Shape: ``(N, C) -> (N, C)``."""
    _check_logits("logits", logits)
    _check_tau(tau)
    return F.softmax(logits / tau, dim=1)


def distillation_loss(student_logits: torch.Tensor,
                      teacher_logits: torch.Tensor,
                      y: torch.Tensor | None = None, *, tau: float,
                      soft_weight: float = 1.0) -> torch.Tensor:
    """``w tau^2 KL(p_T || p_S) + (1 - w) CE(z_S, y)``, batch means, with
    ``w = soft_weight`` (the weight omega of def-transfer-models-kd).

    ``p_T = soften(teacher, tau)`` and ``p_S = soften(student, tau)``; the
    factor ``tau^2`` keeps the soft term's gradient of order one as ``tau``
    grows (thm-transfer-models-hightemp). The teacher's logits are treated as
    constants. ``soft_weight = 1`` uses soft targets only (then ``y`` may be None).
    Shapes: logits ``(N, C)``, ``y (N,)``; returns a scalar.
    """
    _check_pair(student_logits, teacher_logits)
    if not 0.0 <= soft_weight <= 1.0:
        raise ValueError(f"soft_weight must lie in [0, 1], got {soft_weight!r}")
    _check_tau(tau)
    log_p_s = F.log_softmax(student_logits / tau, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach() / tau, dim=1)
    soft = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean")
    if soft_weight == 1.0:
        return tau**2 * soft
    if y is None:
        raise ValueError("y is needed when soft_weight < 1")
    return soft_weight * tau**2 * soft + (1 - soft_weight) * F.cross_entropy(
        student_logits, y)


def soft_target_grad(student_logits: torch.Tensor,
                     teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """The gradient of ``CE(p_T, p_S) = -sum_c p_T,c log p_S,c`` for one
    example with respect to the student's logits: ``(p_S - p_T) / tau``.
    Shape: ``(N, C) -> (N, C)`` (one row per example, no batch mean)."""
    _check_pair(student_logits, teacher_logits)
    return (soften(student_logits, tau) - soften(teacher_logits, tau)) / tau


def logit_matching_grad(student_logits: torch.Tensor,
                        teacher_logits: torch.Tensor) -> torch.Tensor:
    """The high-temperature limit of ``tau^2 * soft_target_grad``:
    ``((z - mean z) - (v - mean v)) / C``, the gradient of the squared error
    between centred logits divided by ``2 C``. Shape: ``(N, C) -> (N, C)``."""
    _check_pair(student_logits, teacher_logits)
    c = student_logits.shape[1]
    z = student_logits - student_logits.mean(dim=1, keepdim=True)
    v = teacher_logits - teacher_logits.mean(dim=1, keepdim=True)
    return (z - v) / c


def pseudo_labels(teacher_logits: torch.Tensor) -> torch.Tensor:
    """The teacher's hard decisions, ``argmax_c v_c``: the targets of
    pseudo-labelling. Shape: ``(N, C) -> (N,)`` int64."""
    _check_logits("teacher_logits", teacher_logits)
    return teacher_logits.argmax(dim=1)


@torch.no_grad()
def prior_bias_shift(logits: torch.Tensor, cls: int, prior: float, *,
                     lo: float = -20.0, hi: float = 20.0,
                     iters: int = 60) -> float:
    """The shift ``b`` of class ``cls``'s logit for which the mean softmax
    probability of ``cls`` over the rows of ``logits`` equals ``prior``.

    It uses no label: only unlabelled inputs' logits and the class's prior
    frequency. The mean probability increases with ``b``, so bisection on
    ``[lo, hi]`` finds it. Shape: ``logits (N, C)``; returns a float.
    """
    _check_logits("logits", logits)
    if not 0 < prior < 1:
        raise ValueError(f"prior must lie in (0, 1), got {prior!r}")
    if not 0 <= cls < logits.shape[1]:
        raise ValueError(f"cls must be a class index < {logits.shape[1]}, "
                         f"got {cls}")
    onehot = F.one_hot(torch.tensor(cls), logits.shape[1]).to(logits.dtype)

    def mass(b: float) -> float:
        return F.softmax(logits + b * onehot, dim=1)[:, cls].mean().item()

    if not mass(lo) <= prior <= mass(hi):
        raise ValueError(f"prior {prior} is not reached on [{lo}, {hi}]")
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mass(mid) < prior else (lo, mid)
    return 0.5 * (lo + hi)
