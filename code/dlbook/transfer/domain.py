"""Domain adaptation (chapter transfer-data): density ratios under covariate
shift, the true ratio of two Gaussians and a domain classifier's estimate,
importance-weighted least squares, the effective sample size, the proxy
A-distance, and domain-adversarial training (DANN) with gradient reversal."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

__all__ = ["gaussian_log_ratio", "domain_classifier_ratio",
           "effective_sample_size", "weighted_least_squares", "proxy_a_distance",
           "grad_reverse", "DANN", "DANNConfig", "train_dann"]

F = nn.functional


def _check_2d(name: str, X: torch.Tensor) -> None:
    if X.ndim != 2:
        raise ValueError(f"{name} must be (N, d), got {tuple(X.shape)}")


def gaussian_log_ratio(x: torch.Tensor, mu_s: float, std_s: float,
                       mu_t: float, std_t: float) -> torch.Tensor:
    """``log p_T(x) - log p_S(x)`` for 1-D Gaussians ``N(mu, std^2)``.
    Shape: ``(N,) -> (N,)``."""
    if not (std_s > 0 and std_t > 0):
        raise ValueError(f"std_s and std_t must be > 0, got {std_s}, {std_t}")
    def logp(m: float, s: float) -> torch.Tensor:
        return -0.5 * ((x - m) / s) ** 2 - math.log(s)
    return logp(mu_t, std_t) - logp(mu_s, std_s)


def domain_classifier_ratio(X_src: torch.Tensor, X_tgt: torch.Tensor, *,
                            features=None, C: float = 1.0):
    """Estimate ``w(x) = p_T(x) / p_S(x)`` with a probabilistic classifier.

    Logistic regression (scikit-learn) separates target (label 1) from source
    (label 0) on ``features(X)`` (default: ``X`` itself); by Bayes' rule
    ``w(x) = (n_S / n_T) P(T | x) / P(S | x)``, i.e. ``(n_S / n_T) e^{logit}``.
    Returns a function mapping ``(N, d)`` inputs to weights ``(N,)``.
    """
    _check_2d("X_src", X_src)
    _check_2d("X_tgt", X_tgt)
    phi = features or (lambda X: X)
    Z = torch.cat([phi(X_src), phi(X_tgt)]).numpy()
    d = np.r_[np.zeros(len(X_src)), np.ones(len(X_tgt))]
    clf = LogisticRegression(C=C, max_iter=2000).fit(Z, d)
    log_prior = math.log(len(X_src) / len(X_tgt))

    def ratio(X: torch.Tensor) -> torch.Tensor:
        logit = clf.decision_function(phi(X).numpy())
        return torch.as_tensor(np.exp(logit + log_prior), dtype=X.dtype)
    return ratio


def effective_sample_size(w: torch.Tensor) -> torch.Tensor:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of weights ``(N,)``;
    ``N`` for equal weights, 1 when one weight dominates."""
    if w.ndim != 1 or (w < 0).any():
        raise ValueError("w must be a 1-D tensor of non-negative weights")
    return w.sum() ** 2 / (w ** 2).sum()


def weighted_least_squares(X: torch.Tensor, y: torch.Tensor,
                           w: torch.Tensor | None = None,
                           ridge: float = 0.0) -> torch.Tensor:
    """Minimize ``sum_i w_i (x_i^T beta - y_i)^2 + ridge |beta|^2``.
    Shapes: ``X (N, d)``, ``y (N,)``, ``w (N,)``; returns ``beta (d,)``."""
    _check_2d("X", X)
    if y.shape != (len(X),):
        raise ValueError(f"y must be ({len(X)},), got {tuple(y.shape)}")
    w = torch.ones_like(y) if w is None else w
    A = X.T @ (w[:, None] * X) + ridge * torch.eye(X.shape[1], dtype=X.dtype)
    return torch.linalg.solve(A, X.T @ (w * y))


def proxy_a_distance(X_src: torch.Tensor, X_tgt: torch.Tensor, *,
                     seed: int = 0) -> float:
    """``2 (1 - 2 err)`` for the held-out error of a linear domain classifier
    (Ben-David et al. 2007): 0 for indistinguishable domains, 2 for disjoint.
    Half of each domain trains the classifier, the other half tests it."""
    _check_2d("X_src", X_src)
    _check_2d("X_tgt", X_tgt)
    rng = np.random.default_rng(seed)
    Z = torch.cat([X_src, X_tgt]).numpy()
    d = np.r_[np.zeros(len(X_src)), np.ones(len(X_tgt))]
    idx = rng.permutation(len(d))
    tr, te = idx[: len(d) // 2], idx[len(d) // 2:]
    clf = LogisticRegression(max_iter=2000).fit(Z[tr], d[tr])
    err = 1.0 - clf.score(Z[te], d[te])
    return 2.0 * (1.0 - 2.0 * min(err, 0.5))


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lambd: float) -> torch.Tensor:
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lambd * grad, None


def grad_reverse(x: torch.Tensor, lambd: float = 1.0) -> torch.Tensor:
    """The identity forward; multiplies the gradient by ``-lambd`` backward
    (Ganin & Lempitsky 2015). Shape kept."""
    if lambd < 0:
        raise ValueError(f"lambd must be >= 0, got {lambd!r}")
    return _GradReverse.apply(x, lambd)


class DANN(nn.Module):
    """Feature extractor ``G_f``, label head ``G_y`` and domain head ``G_d``
    (logit of "target"), the last behind a gradient reversal layer.
    ``forward(x)`` returns the class logits ``(N, C)``."""

    def __init__(self, sizes: list[int], n_classes: int, domain_hidden: int = 32,
                 *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        from dlbook.nn import mlp
        self.features = nn.Sequential(mlp(sizes, generator=generator), nn.ReLU())
        self.label_head = mlp([sizes[-1], n_classes], generator=generator)
        self.domain_head = mlp([sizes[-1], domain_hidden, 1], generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.label_head(self.features(x))

    def domain_logits(self, x: torch.Tensor, lambd: float) -> torch.Tensor:
        """Domain logits ``(N,)`` of features passed through ``grad_reverse``."""
        return self.domain_head(grad_reverse(self.features(x), lambd))[:, 0]


@dataclass(frozen=True)
class DANNConfig:
    """Training of :class:`DANN`; ``lambd = 0`` is source-only training with
    the same network, optimizer and steps."""
    lambd: float = 0.3
    steps: int = 600
    lr: float = 3e-3
    batch_size: int = 128
    warmup: bool = True  # lambd ramps as 2 / (1 + e^{-10 p}) - 1 (Ganin et al.)


def train_dann(model: DANN, source: tuple[torch.Tensor, torch.Tensor],
               X_tgt: torch.Tensor, config: DANNConfig, *,
               generator: torch.Generator | None = None) -> list[float]:
    """Minimize ``CE(G_y(G_f(x_S)), y_S) + BCE(domain)`` by Adam; the reversal
    layer makes ``G_f`` *maximize* the domain loss, scaled by ``lambd``.
    Written out rather than through ``fit`` because each step draws a source
    and a target batch. Returns the domain classifier's loss per step."""
    X_src, y_src = source
    _check_2d("X_src", X_src)
    _check_2d("X_tgt", X_tgt)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    b, hist = config.batch_size, []
    for step in range(config.steps):
        p = step / config.steps
        lam = config.lambd * ((2 / (1 + math.exp(-10 * p)) - 1)
                              if config.warmup else 1.0)
        i = torch.randint(len(X_src), (b,), generator=generator)
        j = torch.randint(len(X_tgt), (b,), generator=generator)
        loss = F.cross_entropy(model(X_src[i]), y_src[i])
        if config.lambd > 0:
            z = model.domain_logits(torch.cat([X_src[i], X_tgt[j]]), lam)
            d = torch.cat([torch.zeros(b), torch.ones(b)]).to(z.dtype)
            ld = F.binary_cross_entropy_with_logits(z, d)
            loss = loss + ld
            hist.append(ld.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return hist
