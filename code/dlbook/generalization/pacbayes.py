"""A non-vacuous PAC-Bayes bound for a small stochastic network.

Chapter: generalization. Following Dziugaite and Roy (2017): train a network
from a random initialization ``w0`` (here by full-batch Adam, where they used
SGD), then optimize a diagonal Gaussian
posterior ``Q = N(mu, diag(sigma^2))`` against the prior ``P = N(w0, lam I)``
to minimize a PAC-Bayes bound, and finally evaluate the PAC-Bayes-kl bound
with a Monte Carlo estimate of the empirical error of ``Q``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .bounds import pac_bayes_kl_bound, sample_convergence_bound

__all__ = ["PacBayesConfig", "PacBayesResult", "mlp_forward", "init_params",
           "gaussian_kl", "pac_bayes_optimize"]


@dataclass(frozen=True)
class PacBayesConfig:
    """Sizes and budgets of the PAC-Bayes experiment."""

    hidden: int = 64              # 64-64-1: 4,225 parameters
    base_steps: int = 60          # full-batch Adam on the logistic loss
    base_lr: float = 3e-3
    pb_steps: int = 3000
    pb_lr: float = 3e-2
    sigma2_init: float = 1e-3     # initial posterior variance
    lam_init: float = 1e-2        # initial prior variance (then optimized)
    delta: float = 0.025          # confidence of the PAC-Bayes bound
    delta_mc: float = 0.01        # confidence of the Monte Carlo estimate
    mc_samples: int = 1000        # draws of Q for the training error (in the bound)
    mc_test_samples: int = 250    # draws of Q for the reported test error
    lam_grid: int = 20            # prior variances lam_j = 0.5 ** (j / 2), per layer


@dataclass(frozen=True)
class PacBayesResult:
    """Everything the chapter reports about the bound."""

    bound: float
    kl: float
    lam: tuple[float, ...]        # prior variance of each layer
    train_err_q: float
    train_err_q_upper: float
    test_err_q: float
    train_err_base: float
    test_err_base: float
    n_params: int


def init_params(sizes: list[int], generator: torch.Generator) -> torch.Tensor:
    """A flat vector of MLP weights and biases, PyTorch's default ranges.

    Layer ``i`` stores ``W_i (out, in)`` then ``b_i (out,)``.
    """
    parts = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        bound = 1 / math.sqrt(a)
        parts.append((torch.rand(b * a + b, generator=generator) * 2 - 1) * bound)
    return torch.cat(parts)


def mlp_forward(theta: torch.Tensor, X: torch.Tensor,
                sizes: list[int]) -> torch.Tensor:
    """Scalar-output ReLU MLP with flat parameters, batched over parameter draws.

    Shapes: ``theta (P,)`` or ``(S, P)``, ``X (N, D)`` -> ``(N,)`` or ``(S, N)``.
    """
    single = theta.ndim == 1
    th = theta[None] if single else theta
    h = X.expand(th.shape[0], *X.shape)
    i = 0
    for layer, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = th[:, i:i + a * b].reshape(-1, b, a)
        bias = th[:, i + a * b:i + a * b + b]
        i += a * b + b
        h = h @ W.transpose(1, 2) + bias[:, None, :]
        if layer < len(sizes) - 2:
            h = torch.relu(h)
    out = h[..., 0]
    return out[0] if single else out


def gaussian_kl(mu: torch.Tensor, log_sigma2: torch.Tensor, w0: torch.Tensor,
                lam: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(sigma^2)) || N(w0, lam I))`` in nats."""
    s2 = log_sigma2.exp()
    return 0.5 * ((s2 + (mu - w0) ** 2) / lam - 1 - log_sigma2 + lam.log()).sum()


def _errors(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor,
            sizes: list[int], chunk: int = 50) -> torch.Tensor:
    """0-1 error of each parameter draw; ``theta (S, P)`` -> ``(S,)``, chunked
    over draws so that memory stays at ``chunk * N * width`` numbers."""
    if theta.ndim == 1:
        return ((mlp_forward(theta, X, sizes) > 0).long() != y).float().mean()
    return torch.cat([((mlp_forward(t, X, sizes) > 0).long() != y).float().mean(-1)
                      for t in theta.split(chunk)])


def _layer_index(sizes: list[int]) -> torch.Tensor:
    """Layer of each entry of the flat parameter vector of :func:`init_params`."""
    counts = [a * b + b for a, b in zip(sizes[:-1], sizes[1:])]
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))


def pac_bayes_optimize(
    train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
    config: PacBayesConfig = PacBayesConfig(), *, generator: torch.Generator,
) -> PacBayesResult:
    """Train a base net, optimize the posterior, evaluate the PAC-Bayes-kl bound.

    Binary labels ``y`` in {0, 1}; the classifier predicts 1 when the output
    is positive. Each layer's prior variance is chosen from a grid of
    ``lam_grid`` values, paid for by a union bound over the
    ``lam_grid ** layers`` priors (``delta / lam_grid ** layers`` each).
    """
    X, y = train
    n, sizes = len(X), [X.shape[1], config.hidden, 1]
    w0 = init_params(sizes, generator)
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=config.base_lr)
    for _ in range(config.base_steps):
        opt.zero_grad()
        logits = mlp_forward(w, X, sizes)
        F.binary_cross_entropy_with_logits(logits, y.float()).backward()
        opt.step()
    mu = w.detach().clone().requires_grad_(True)
    log_s2 = torch.full_like(mu, math.log(config.sigma2_init)).requires_grad_(True)
    # one prior variance per layer, each later rounded to the grid
    layer = _layer_index(sizes)
    n_layers = len(sizes) - 1
    log_lam = torch.full((n_layers,), math.log(config.lam_init), requires_grad=True)
    opt = torch.optim.Adam([mu, log_s2, log_lam], lr=config.pb_lr)
    n_priors = config.lam_grid ** n_layers          # size of the union bound
    log_term = math.log(2 * math.sqrt(n) * n_priors / config.delta)
    for _ in range(config.pb_steps):
        opt.zero_grad()
        theta = mu + (0.5 * log_s2).exp() * torch.randn(mu.shape, generator=generator)
        # logistic loss / log 2 is an upper bound on the 0-1 loss (not bounded);
        # it is only the training objective, the final bound uses the 0-1 loss
        surrogate = F.binary_cross_entropy_with_logits(
            mlp_forward(theta, X, sizes), y.float()) / math.log(2)
        kl = gaussian_kl(mu, log_s2, w0, log_lam.exp()[layer])
        (surrogate + torch.sqrt((kl + log_term) / (2 * n))).backward()
        opt.step()
    with torch.no_grad():
        j = (-2 * log_lam / math.log(2)).round().clamp(0, config.lam_grid - 1)
        lam = 0.5 ** (j / 2)
        kl = gaussian_kl(mu, log_s2, w0, lam[layer]).item()
        thetas = mu + (0.5 * log_s2).exp() * torch.randn(
            config.mc_samples, mu.numel(), generator=generator)
        err_q = _errors(thetas, X, y, sizes).mean().item()
        test_q = _errors(thetas[:config.mc_test_samples], *test, sizes).mean().item()
        err_up = sample_convergence_bound(err_q, config.mc_samples, config.delta_mc)
        bound = pac_bayes_kl_bound(err_up, kl, n, config.delta / n_priors)
        base_tr = _errors(w.detach(), X, y, sizes)
        base_te = _errors(w.detach(), *test, sizes)
    return PacBayesResult(bound, kl, tuple(lam.tolist()), err_q, err_up, test_q,
                          base_tr.item(), base_te.item(), mu.numel())
