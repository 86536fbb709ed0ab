"""Guided diffusion on labelled 2-D data (chapter: conditional generative models).

One conditional denoiser ``eps(x_t, t, y)`` is trained with condition dropout
(the label is replaced by a *null* label with probability ``p_uncond``), so
that it is also the unconditional model ``eps(x_t, t)``; classifier-free
guidance (Ho and Salimans, 2022) then samples with
``(1 + w) eps(x_t, t, y) - w eps(x_t, t)``. The data are isotropic Gaussian
classes, for which the noisy densities, scores and class posteriors are known
in closed form: the oracle of the chapter's measurements.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dlbook.nn import mlp

__all__ = ["GaussianClasses", "linear_alpha_bar", "ConditionalDenoiser",
           "train_denoiser", "cfg_eps", "classifier_guided_eps", "ddpm_sample",
           "scale_to_w", "w_to_scale", "fidelity_diversity",
           "tilted_fidelity_diversity"]

F = nn.functional
EpsFn = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class GaussianClasses:
    """``K`` equally likely classes ``x | y ~ N(means[y], std^2 I)`` in 2-D.

    The defaults put three overlapping classes on a circle, so that a
    sample can be more or less typical of its class.
    """

    num_classes: int = 3
    radius: float = 1.0
    std: float = 0.6

    @property
    def means(self) -> torch.Tensor:
        """Class means, shape ``(K, 2)``."""
        angle = 2 * math.pi * torch.arange(self.num_classes) / self.num_classes
        return self.radius * torch.stack([angle.cos(), angle.sin()], 1)

    def sample(self, n: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``X (n, 2)`` and labels ``y (n,)``."""
        g = torch.Generator().manual_seed(seed)
        y = torch.randint(0, self.num_classes, (n,), generator=g)
        return self.means[y] + self.std * torch.randn(n, 2, generator=g), y

    def noisy_log_joint(self, x: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        """``log q_t(x, y)`` for every class, with ``x_t = sqrt(ab) x_0 +
        sqrt(1 - ab) eps``. Shapes: ``x (N, 2)`` -> ``(N, K)``."""
        var = alpha_bar * self.std ** 2 + 1 - alpha_bar
        d2 = ((x[:, None, :] - math.sqrt(alpha_bar) * self.means) ** 2).sum(-1)
        return -d2 / (2 * var) - math.log(2 * math.pi * var) - math.log(
            self.num_classes)

    def posterior(self, x: torch.Tensor, alpha_bar: float = 1.0) -> torch.Tensor:
        """The Bayes class posterior ``q_t(y | x)``, shape ``(N, K)``."""
        return self.noisy_log_joint(x, alpha_bar).softmax(1)

    def eps(self, x: torch.Tensor, alpha_bar: float,
            y: torch.Tensor | None = None) -> torch.Tensor:
        """The exact noise predictor ``-sqrt(1 - ab) * grad log q_t(x [| y])``
        (unconditional when ``y`` is None). Shape ``(N, 2)``."""
        var = alpha_bar * self.std ** 2 + 1 - alpha_bar
        centred = x[:, None, :] - math.sqrt(alpha_bar) * self.means  # (N, K, 2)
        if y is None:
            resp = self.posterior(x, alpha_bar)
            score = -(resp[..., None] * centred).sum(1) / var
        else:
            score = -centred[torch.arange(len(x)), y] / var
        return -math.sqrt(1 - alpha_bar) * score


def linear_alpha_bar(T: int = 100, beta_min: float = 1e-4, beta_max: float = 0.1
                     ) -> torch.Tensor:
    """``alpha_bar_t = prod_{s <= t} (1 - beta_s)`` for a linear ``beta``
    schedule, shape ``(T,)`` (index ``t - 1`` holds step ``t``)."""
    if not 0 < beta_min <= beta_max < 1:
        raise ValueError(f"need 0 < beta_min <= beta_max < 1, got {beta_min}, "
                         f"{beta_max}")
    return torch.cumprod(1 - torch.linspace(beta_min, beta_max, T), 0)


class ConditionalDenoiser(nn.Module):
    """``eps_theta(x_t, t, y)`` for 2-D data; label ``num_classes`` is null.

    Input features: ``x_t``, a sinusoidal embedding of ``t / T`` and the
    one-hot label (``num_classes + 1`` entries). Shapes: ``x (N, 2)``,
    ``t (N,)`` integer steps in ``[0, T)``, ``y (N,)`` -> ``(N, 2)``.
    """

    def __init__(self, num_classes: int, T: int, hidden: int = 128,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.num_classes, self.T = num_classes, T
        self.freqs = torch.tensor([1.0, 2.0, 4.0, 8.0]) * math.pi
        self.net = mlp([2 + 8 + num_classes + 1, hidden, hidden, hidden, 2],
                       "silu", generator=generator)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor
                ) -> torch.Tensor:
        """The predicted noise ``(N, 2)``."""
        n = len(x)
        if x.ndim != 2 or x.shape[1] != 2 or t.shape != (n,) or y.shape != (n,):
            raise ValueError(f"need x (N, 2), t (N,), y (N,); got "
                             f"{tuple(x.shape)}, {tuple(t.shape)}, {tuple(y.shape)}")
        phase = (t.float() / self.T)[:, None] * self.freqs
        label = F.one_hot(y.long(), self.num_classes + 1).float()
        return self.net(torch.cat([x, phase.sin(), phase.cos(), label], 1))


def train_denoiser(model: ConditionalDenoiser, X: torch.Tensor, y: torch.Tensor,
                   alpha_bar: torch.Tensor, *, steps: int, p_uncond: float = 0.2,
                   batch_size: int = 256, lr: float = 2e-3,
                   generator: torch.Generator | None = None) -> list[float]:
    """Minimize ``L_simple`` with condition dropout; return per-step losses.

    Each step draws examples, steps ``t``, noise ``eps`` and a drop mask
    afresh (the reason this loop is not :func:`dlbook.train.fit`, whose
    targets are fixed tensors); dropped labels become the null label.
    """
    if not 0 <= p_uncond <= 1:
        raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(X), (batch_size,), generator=generator)
        t = torch.randint(0, len(alpha_bar), (batch_size,), generator=generator)
        eps = torch.randn(batch_size, 2, generator=generator)
        ab = alpha_bar[t][:, None]
        x_t = ab.sqrt() * X[idx] + (1 - ab).sqrt() * eps  # q(x_t | x_0)
        drop = torch.rand(batch_size, generator=generator) < p_uncond
        label = torch.where(drop, model.num_classes, y[idx])
        loss = F.mse_loss(model(x_t, t, label), eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def cfg_eps(model: ConditionalDenoiser, y: torch.Tensor, w: float) -> EpsFn:
    """Classifier-free guidance: ``(1 + w) eps(x, t, y) - w eps(x, t, null)``.

    ``w = 0`` is the conditional model; the popular "guidance scale" is
    ``1 + w`` (:func:`w_to_scale`).
    """
    null = torch.full_like(y, model.num_classes)

    def eps_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        tt = torch.full((len(x),), t, dtype=torch.long)
        cond, uncond = model(x, tt, y), model(x, tt, null)
        return (1 + w) * cond - w * uncond

    return eps_fn


def classifier_guided_eps(eps_uncond: EpsFn,
                          grad_log_py: Callable[[torch.Tensor, int], torch.Tensor],
                          alpha_bar: torch.Tensor, s: float) -> EpsFn:
    """Classifier guidance (Dhariwal and Nichol, 2021):
    ``eps(x_t) - s sqrt(1 - ab_t) grad_x log p(y | x_t)``."""

    def eps_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        return eps_uncond(x, t) - s * (1 - alpha_bar[t]).sqrt() * grad_log_py(x, t)

    return eps_fn


@torch.no_grad()
def ddpm_sample(eps_fn: EpsFn, n: int, alpha_bar: torch.Tensor, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Ancestral sampling (Ho et al., 2020) with ``sigma_t^2 = beta_t``.

    ``x_{t-1} = (x_t - beta_t / sqrt(1 - ab_t) eps) / sqrt(alpha_t) +
    sqrt(beta_t) z``, from ``x_T ~ N(0, I)``. Returns ``(n, 2)``.
    """
    ab_prev = torch.cat([torch.ones(1), alpha_bar[:-1]])
    alpha = alpha_bar / ab_prev
    x = torch.randn(n, 2, generator=generator)
    for t in reversed(range(len(alpha_bar))):
        beta = 1 - alpha[t]
        x = (x - beta / (1 - alpha_bar[t]).sqrt() * eps_fn(x, t)) / alpha[t].sqrt()
        if t > 0:
            x = x + beta.sqrt() * torch.randn(n, 2, generator=generator)
    return x


def w_to_scale(w: float) -> float:
    """Ho and Salimans' weight ``w`` as the "guidance scale" ``1 + w`` of
    popular text-to-image tools (which sample ``eps_u + s (eps_c - eps_u)``)."""
    return 1.0 + w


def scale_to_w(scale: float) -> float:
    """The inverse of :func:`w_to_scale`: ``w = scale - 1``."""
    return scale - 1.0


def fidelity_diversity(data: GaussianClasses, x: torch.Tensor, y: torch.Tensor
                       ) -> tuple[float, float]:
    """Fidelity: the mean Bayes posterior ``p(y | x)`` of the intended class;
    diversity: the mean within-class variance per coordinate, divided by the
    data's ``std^2`` (1 for perfect samples). Shapes: ``x (N, 2)``, ``y (N,)``."""
    post = data.posterior(x)[torch.arange(len(x)), y].mean().item()
    var = [x[y == k].var(0).mean().item() for k in range(data.num_classes)
           if (y == k).sum() > 1]
    return post, sum(var) / len(var) / data.std ** 2


def tilted_fidelity_diversity(data: GaussianClasses, w: float, *,
                              half_width: float = 5.0, points: int = 301
                              ) -> tuple[float, float]:
    """:func:`fidelity_diversity` of the *tilted* target
    ``p(x | y) p(y | x)^w`` (normalized), by quadrature on a square grid,
    averaged over the classes: what guidance would give if it sampled the
    tilted density exactly."""
    g = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
    grid = torch.cartesian_prod(g, g)
    log_joint = data.noisy_log_joint(grid, 1.0)
    post = log_joint.softmax(1)
    fid, var = 0.0, 0.0
    for k in range(data.num_classes):
        weight = (log_joint[:, k] + w * post[:, k].log()).softmax(0)
        mean = weight @ grid
        fid += (weight @ post[:, k]).item()
        var += (weight @ (grid - mean) ** 2).mean().item()
    return fid / data.num_classes, var / data.num_classes / data.std ** 2
