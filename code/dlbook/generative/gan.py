"""Generative adversarial networks: the optimal discriminator, the
Jensen-Shannon form of the minimax value, and a small training loop.

Chapter: generative-basics. ``optimal_discriminator``, ``gan_value`` and
``js_divergence`` evaluate Goodfellow et al. (2014), Proposition 1 and
Theorem 1, by quadrature on a grid; ``train_gan`` trains a generator with the
non-saturating loss, optionally with a *packed* discriminator that judges
``pack`` samples at once (Lin et al., 2018), the chapter's remedy for mode
collapse.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlbook.nn import mlp

__all__ = ["optimal_discriminator", "gan_value", "js_divergence", "GANConfig",
           "train_gan"]


def _trapezoid(f: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return torch.trapezoid(f, grid)


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    """``D*(x) = p_data(x) / (p_data(x) + p_g(x))`` (Proposition 1), on any
    common shape; 1/2 where both densities vanish."""
    total = p_data + p_g
    return torch.where(total > 0, p_data / total.clamp_min(1e-300),
                       torch.full_like(total, 0.5))


def gan_value(d: torch.Tensor, p_data: torch.Tensor, p_g: torch.Tensor,
              grid: torch.Tensor) -> torch.Tensor:
    """``V(D, G) = int p_data log D + p_g log(1 - D) dx`` by the trapezoidal
    rule on a 1-D ``grid (M,)``; ``d``, ``p_data``, ``p_g`` are ``(M,)``."""
    eps = torch.finfo(d.dtype).tiny
    f = p_data * d.clamp_min(eps).log() + p_g * (1 - d).clamp_min(eps).log()
    return _trapezoid(f, grid)


def js_divergence(p: torch.Tensor, q: torch.Tensor, grid: torch.Tensor
                  ) -> torch.Tensor:
    """``JS(p, q) = KL(p | m)/2 + KL(q | m)/2`` with ``m = (p + q)/2``, in
    nats, by the trapezoidal rule on ``grid (M,)``."""
    m = (p + q) / 2

    def kl(a: torch.Tensor) -> torch.Tensor:
        ratio = torch.where(a > 0, a / m.clamp_min(1e-300), torch.ones_like(a))
        return _trapezoid(a * ratio.log(), grid)

    return (kl(p) + kl(q)) / 2


@dataclass(frozen=True)
class GANConfig:
    """A small GAN on 2-D points: MLP generator and discriminator.

    ``pack`` > 1 makes the discriminator score ``pack`` samples concatenated
    (PacGAN). ``loss`` is ``"non-saturating"`` (generator maximizes
    ``log D(G(z))``) or ``"minimax"`` (minimizes ``log(1 - D(G(z)))``).
    """

    latent_dim: int = 2
    hidden: int = 64
    depth: int = 2
    steps: int = 1500
    batch_size: int = 256
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    pack: int = 1
    loss: str = "non-saturating"


def _nets(cfg: GANConfig, dim: int, gen: torch.Generator):
    h = [cfg.hidden] * cfg.depth
    G = mlp([cfg.latent_dim, *h, dim], generator=gen)
    D = mlp([dim * cfg.pack, *h, 1], generator=gen)
    return G, D


def train_gan(data: torch.Tensor, cfg: GANConfig = GANConfig(), *,
              generator: torch.Generator | None = None
              ) -> tuple[nn.Module, dict[str, list[float]]]:
    """Train a GAN on ``data (N, D)`` by alternating one discriminator and one
    generator Adam step per iteration; return the generator (a module mapping
    ``(M, latent_dim)`` noise to ``(M, D)`` points) and the loss curves."""
    if cfg.loss not in ("non-saturating", "minimax"):
        raise ValueError(f"loss must be 'non-saturating' or 'minimax', got "
                         f"{cfg.loss!r}")
    if data.ndim != 2:
        raise ValueError(f"data must be (N, D), got {tuple(data.shape)}")
    G, D = _nets(cfg, data.shape[1], generator)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)
    bce = nn.functional.binary_cross_entropy_with_logits
    B, k = cfg.batch_size * cfg.pack, cfg.pack
    hist: dict[str, list[float]] = {"d_loss": [], "g_loss": []}

    def judge(x: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B / pack,) logits
        return D(x.reshape(len(x) // k, -1)).squeeze(1)

    for _ in range(cfg.steps):
        real = data[torch.randint(len(data), (B,), generator=generator)]
        fake = G(torch.randn(B, cfg.latent_dim, generator=generator))
        lr_, lf = judge(real), judge(fake.detach())
        d_loss = bce(lr_, torch.ones_like(lr_)) + bce(lf, torch.zeros_like(lf))
        opt_d.zero_grad(), d_loss.backward(), opt_d.step()
        lf = judge(fake)
        if cfg.loss == "non-saturating":
            g_loss = bce(lf, torch.ones_like(lf))  # -log D(G(z))
        else:
            g_loss = -bce(lf, torch.zeros_like(lf))  # log(1 - D(G(z)))
        opt_g.zero_grad(), g_loss.backward(), opt_g.step()
        hist["d_loss"].append(d_loss.item()), hist["g_loss"].append(g_loss.item())
    return G, hist
