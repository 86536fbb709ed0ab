"""Preference optimization (chapter language-models): the KL-regularized
objective of RLHF and its optimal policy, Bradley-Terry preferences, the
DPO loss of Rafailov et al. (2023), DPO on a table of responses, and DPO on
the instruction-tuned GPT.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from dlbook.transformer import GPT

from .finetune import IGNORE

__all__ = ["rlhf_objective", "rlhf_optimal_policy", "bradley_terry_pairs",
           "dpo_loss", "fit_tabular_dpo", "preferred_ft_policy",
           "answer_log_probs", "train_dpo"]


def _check_dist(pi: torch.Tensor, name: str) -> None:
    if pi.dim() != 1 or (pi < 0).any() or abs(pi.sum().item() - 1) > 1e-6:
        raise ValueError(f"{name} must be a 1-D probability vector, got shape "
                         f"{tuple(pi.shape)} and sum {pi.sum().item():.4g}")


def rlhf_objective(pi: torch.Tensor, pi_ref: torch.Tensor, reward: torch.Tensor,
                   beta: float) -> float:
    """``E_pi[r] - beta KL(pi || pi_ref)`` for distributions over ``K``
    responses of one prompt. Shapes: ``(K,), (K,), (K,)``."""
    _check_dist(pi, "pi")
    _check_dist(pi_ref, "pi_ref")
    m = pi > 0
    kl = (pi[m] * (pi[m].log() - pi_ref[m].log())).sum()
    return ((pi * reward).sum() - beta * kl).item()


def rlhf_optimal_policy(pi_ref: torch.Tensor, reward: torch.Tensor,
                        beta: float) -> torch.Tensor:
    """``pi*(y) = pi_ref(y) exp(r(y) / beta) / Z``, the maximizer of
    :func:`rlhf_objective`. Shapes: ``(K,), (K,) -> (K,)``."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    _check_dist(pi_ref, "pi_ref")
    return torch.softmax(pi_ref.log() + reward / beta, dim=-1)


def bradley_terry_pairs(reward: torch.Tensor, pi_ref: torch.Tensor, n: int, *,
                        generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` labelled pairs: two different responses drawn from ``pi_ref``,
    the first preferred with probability ``sigmoid(r_1 - r_2)`` (Bradley
    and Terry, 1952). Returns the ids of winners and losers, ``(n,)`` each."""
    _check_dist(pi_ref, "pi_ref")
    w, l_ = [], []
    while sum(map(len, w)) < n:
        a = torch.multinomial(pi_ref, 2 * n, replacement=True, generator=generator)
        b = torch.multinomial(pi_ref, 2 * n, replacement=True, generator=generator)
        keep = a != b
        a, b = a[keep], b[keep]
        first = torch.rand(len(a), generator=generator) < torch.sigmoid(
            reward[a] - reward[b])
        w.append(torch.where(first, a, b))
        l_.append(torch.where(first, b, a))
    return torch.cat(w)[:n], torch.cat(l_)[:n]


def dpo_loss(logp_w: torch.Tensor, logp_l: torch.Tensor, ref_w: torch.Tensor,
             ref_l: torch.Tensor, beta: float) -> torch.Tensor:
    """``-mean log sigmoid(beta [(log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l)
    - log pi_ref(y_l))])``, eq. (dpo). All inputs ``(N,)`` log-probabilities."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    margin = (logp_w - ref_w) - (logp_l - ref_l)
    return -F.logsigmoid(beta * margin).mean()


def fit_tabular_dpo(winners: torch.Tensor, losers: torch.Tensor,
                    pi_ref: torch.Tensor, beta: float, *,
                    iterations: int = 100) -> torch.Tensor:
    """The policy over ``K`` responses that minimizes :func:`dpo_loss` on
    the pairs, ``softmax(theta)`` with ``theta`` found by L-BFGS (the loss
    is convex in ``theta``: a logistic regression). Returns ``(K,)``."""
    _check_dist(pi_ref, "pi_ref")
    ref = pi_ref.double().log()
    theta = ref.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([theta], max_iter=iterations,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logp = torch.log_softmax(theta, 0)
        loss = dpo_loss(logp[winners], logp[losers], ref[winners], ref[losers],
                        beta)
        loss.backward()
        return loss

    opt.step(closure)
    return torch.softmax(theta.detach(), 0).to(pi_ref.dtype)


def preferred_ft_policy(winners: torch.Tensor, k: int) -> torch.Tensor:
    """The baseline that imitates the preferred responses: the maximum
    likelihood policy on the winners alone, their frequencies. ``(K,)``."""
    counts = torch.bincount(winners, minlength=k).double()
    return (counts / counts.sum()).float()


def answer_log_probs(model: GPT, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``log pi(answer | prompt)`` of each row: the sum of the log-probabilities
    of the targets where ``y != IGNORE``. Shapes: ``(N, L), (N, L) -> (N,)``."""
    logp = F.log_softmax(model(X), -1)
    m = y != IGNORE
    tok = logp.gather(-1, y.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return (tok * m).sum(1)


def train_dpo(model: GPT, chosen: tuple[torch.Tensor, torch.Tensor],
              rejected: tuple[torch.Tensor, torch.Tensor], *, beta: float,
              steps: int, batch_size: int, lr: float = 1e-3,
              generator: torch.Generator | None = None) -> tuple[GPT, list[float]]:
    """DPO from ``model`` (also the frozen reference) on pairs ``chosen[i]``
    over ``rejected[i]``, each an ``(X, y)`` of :func:`encode_examples`.
    Returns the trained copy and the loss of every step."""
    if len(chosen[0]) != len(rejected[0]):
        raise ValueError("chosen and rejected must hold the same number of rows")
    policy = copy.deepcopy(model)
    for p in policy.parameters():
        p.requires_grad_(True)
    ref = copy.deepcopy(model).eval()
    with torch.no_grad():
        ref_w, ref_l = answer_log_probs(ref, *chosen), answer_log_probs(ref, *rejected)
    opt = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    policy.train()
    for _ in range(steps):
        i = torch.randint(0, len(ref_w), (batch_size,), generator=generator)
        loss = dpo_loss(answer_log_probs(policy, chosen[0][i], chosen[1][i]),
                        answer_log_probs(policy, rejected[0][i], rejected[1][i]),
                        ref_w[i], ref_l[i], beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return policy.eval(), losses
