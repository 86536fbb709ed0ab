"""Conditional GANs (chapter: conditional generative models).

A generator ``G(z, y)`` and a discriminator ``D(x, y)`` that both receive the
condition, as in Mirza and Osindero (2014): here by concatenating a one-hot
label (or any condition vector) to their inputs. :func:`optimal_discriminator`
and :func:`conditional_gan_value` give the closed forms of the chapter's
theorem for densities evaluated on a grid.
"""
from __future__ import annotations

import torch
from torch import nn

from dlbook.nn import mlp

__all__ = ["one_hot", "ConditionalMLP", "train_cgan", "optimal_discriminator",
           "conditional_gan_value", "js_divergence"]

F = nn.functional


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Float one-hot codes of integer labels. Shape: ``(N,) -> (N, C)``."""
    if y.ndim != 1:
        raise ValueError(f"y must have shape (N,), got {tuple(y.shape)}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got "
                         f"[{int(y.min())}, {int(y.max())}]")
    return F.one_hot(y.long(), num_classes).float()


class ConditionalMLP(nn.Module):
    """An MLP on the concatenation ``[u, c]`` of an input and a condition.

    ``sizes[0]`` is the width of ``u`` alone; the condition adds
    ``cond_dim`` inputs. Used as the generator ``G(z, c)`` (``u = z``) and
    as the discriminator ``D(x, c)`` (``u = x``, one output logit).
    Shapes: ``u (N, sizes[0])``, ``c (N, cond_dim)`` -> ``(N, sizes[-1])``.
    """

    def __init__(self, sizes: list[int], cond_dim: int, activation: str = "relu",
                 out_activation: str | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if len(sizes) < 2 or cond_dim < 0:
            raise ValueError(f"need >= 2 sizes and cond_dim >= 0, got {sizes}, "
                             f"{cond_dim}")
        self.in_features, self.cond_dim = sizes[0], cond_dim
        self.net = mlp([sizes[0] + cond_dim, *sizes[1:]], activation,
                       generator=generator)
        self.out = {None: nn.Identity(), "sigmoid": nn.Sigmoid(),
                    "tanh": nn.Tanh()}[out_activation]

    def forward(self, u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The network on ``[u, c]``, with the output activation."""
        if u.ndim != 2 or u.shape[1] != self.in_features:
            raise ValueError(f"u must have shape (N, {self.in_features}), got "
                             f"{tuple(u.shape)}")
        if c.shape != (len(u), self.cond_dim):
            raise ValueError(f"c must have shape ({len(u)}, {self.cond_dim}), "
                             f"got {tuple(c.shape)}")
        return self.out(self.net(torch.cat([u, c], dim=1)))


def train_cgan(G: ConditionalMLP, D: ConditionalMLP, X: torch.Tensor,
               C: torch.Tensor, *, steps: int, batch_size: int = 128,
               lr: float = 2e-3, generator: torch.Generator | None = None
               ) -> dict[str, list[float]]:
    """Alternating updates of a conditional GAN with the non-saturating loss.

    Each step draws a mini-batch of real pairs ``(x, c)`` from ``X (N, D)``
    and ``C (N, K)``, fake pairs ``(G(z, c), c)`` with the *same* conditions,
    takes one Adam step on ``D`` (binary cross-entropy, real = 1) and one on
    ``G`` (``-log D(G(z, c), c)``). Returns the per-step losses.
    """
    if len(X) != len(C):
        raise ValueError(f"X and C must have equal length, got {len(X)}, {len(C)}")
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    log = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
        idx = torch.randint(0, len(X), (batch_size,), generator=generator)
        x, c = X[idx], C[idx]
        z = torch.randn(batch_size, G.in_features, generator=generator)
        fake = G(z, c)
        real_logit, fake_logit = D(x, c), D(fake.detach(), c)
        d_loss = (F.binary_cross_entropy_with_logits(real_logit,
                                                     torch.ones_like(real_logit))
                  + F.binary_cross_entropy_with_logits(fake_logit,
                                                       torch.zeros_like(fake_logit)))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        gen_logit = D(fake, c)  # the non-saturating generator loss
        g_loss = F.binary_cross_entropy_with_logits(gen_logit,
                                                    torch.ones_like(gen_logit))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        log["d_loss"].append(d_loss.item())
        log["g_loss"].append(g_loss.item())
    return log


def optimal_discriminator(p_data: torch.Tensor, p_model: torch.Tensor
                          ) -> torch.Tensor:
    """``D*(x, y) = p_data(x|y) / (p_data(x|y) + p_model(x|y))``, pointwise.

    Shapes: any two equal shapes of non-negative densities; where both are
    zero the value is 1/2 (any value is optimal there).
    """
    if p_data.shape != p_model.shape:
        raise ValueError(f"shapes differ: {tuple(p_data.shape)} vs "
                         f"{tuple(p_model.shape)}")
    total = p_data + p_model
    return torch.where(total > 0, p_data / total.clamp_min(1e-300),
                       torch.full_like(total, 0.5))


def conditional_gan_value(D: torch.Tensor, p_data: torch.Tensor,
                          p_model: torch.Tensor, p_y: torch.Tensor, dx: float
                          ) -> torch.Tensor:
    """The minimax value ``V(D, G)`` of a conditional GAN by quadrature.

    ``V = sum_y p(y) int [p_data(x|y) log D + p_model(x|y) log(1 - D)] dx``
    with densities on a uniform grid of spacing ``dx``.
    Shapes: ``D, p_data, p_model (K, M)`` (K conditions, M grid points),
    ``p_y (K,)``.
    """
    if not D.shape == p_data.shape == p_model.shape or p_y.shape != D.shape[:1]:
        raise ValueError("need D, p_data, p_model of one shape (K, M) and "
                         f"p_y (K,), got {tuple(D.shape)}, {tuple(p_y.shape)}")
    eps = torch.finfo(D.dtype).tiny
    inner = (torch.xlogy(p_data, D.clamp_min(eps))
             + torch.xlogy(p_model, (1 - D).clamp_min(eps))).sum(1) * dx
    return (p_y * inner).sum()


def js_divergence(p: torch.Tensor, q: torch.Tensor, dx: float) -> torch.Tensor:
    """Jensen-Shannon divergence (nats) of densities on a grid, per row.

    Shapes: ``p, q (K, M)`` -> ``(K,)``.
    """
    m = (p + q) / 2
    kl_pm = torch.xlogy(p, p) - torch.xlogy(p, m)
    kl_qm = torch.xlogy(q, q) - torch.xlogy(q, m)
    return 0.5 * (kl_pm + kl_qm).sum(-1) * dx

