"""Paired and unpaired translation on small generated domains (chapter:
conditional generative models).

*Paired*: an input ``a in [-1, 1]`` and an output ``b`` on the unit circle
above or below it, ``b = (a, +-sqrt(1 - a^2))``: every input has two correct
outputs, as an edge map has many photographs. A regressor trained with the
squared error predicts their average, which is not on the circle (with the L1
error every point between the two answers is optimal); a conditional
generator trained adversarially, as in pix2pix (Isola et al., 2017), can
output either. *Unpaired*: two point clouds related by an unknown map, learned
with a distribution-matching loss in each direction, with or without the
cycle consistency of CycleGAN (Zhu et al., 2017). The distribution loss is a
kernel MMD, not CycleGAN's adversarial loss (see :func:`train_cycle`).
"""
from __future__ import annotations

import torch
from torch import nn

from .gan import ConditionalMLP

__all__ = ["circle_pairs", "distance_to_circle", "train_regressor",
           "train_pix2pix", "mmd2", "train_cycle", "dihedral_group"]

F = nn.functional


def circle_pairs(n: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``a (n, 1)`` uniform on ``[-1, 1]`` and ``b (n, 2)`` on the unit circle
    with ``b_1 = a`` and a random sign for ``b_2``."""
    g = torch.Generator().manual_seed(seed)
    a = 2 * torch.rand(n, 1, generator=g) - 1
    sign = torch.randint(0, 2, (n, 1), generator=g) * 2 - 1
    return a, torch.cat([a, sign * (1 - a ** 2).clamp_min(0).sqrt()], 1)


def distance_to_circle(b: torch.Tensor) -> torch.Tensor:
    """``| ||b|| - 1 |`` per row: how far an output is off the unit circle.
    Shape: ``(N, 2) -> (N,)``."""
    return (b.norm(dim=1) - 1).abs()


def train_regressor(net: nn.Module, a: torch.Tensor, b: torch.Tensor, *,
                    steps: int, loss: str = "l1", lr: float = 3e-3) -> list[float]:
    """Full-batch Adam on ``mean |net(a) - b|`` (``"l1"``) or its square."""
    fn = {"l1": F.l1_loss, "l2": F.mse_loss}[loss]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        value = fn(net(a), b)
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(value.item())
    return losses


def train_pix2pix(G: ConditionalMLP, D: ConditionalMLP, a: torch.Tensor,
                  b: torch.Tensor, *, steps: int, lam: float = 1.0,
                  batch_size: int = 256, lr: float = 2e-3,
                  generator: torch.Generator | None = None) -> list[float]:
    """The pix2pix objective on paired data: a conditional GAN ``D(b, a)``
    (non-saturating) plus ``lam`` times the L1 distance to the paired target.

    ``G(z, a)`` maps noise and input to an output, ``D(b, a)`` scores a pair.
    Shapes: ``a (N, A)``, ``b (N, B)``. Returns the generator's losses.
    """
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    bce = F.binary_cross_entropy_with_logits
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(a), (batch_size,), generator=generator)
        ai, bi = a[idx], b[idx]
        fake = G(torch.randn(batch_size, G.in_features, generator=generator), ai)
        real_l, fake_l = D(bi, ai), D(fake.detach(), ai)
        d_loss = bce(real_l, torch.ones_like(real_l)) + bce(
            fake_l, torch.zeros_like(fake_l))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        gen_l = D(fake, ai)
        g_loss = bce(gen_l, torch.ones_like(gen_l)) + lam * F.l1_loss(fake, bi)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        losses.append(g_loss.item())
    return losses


def mmd2(x: torch.Tensor, y: torch.Tensor,
         bandwidths: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)) -> torch.Tensor:
    """The biased (V-statistic) squared MMD between samples ``x (N, D)`` and
    ``y (M, D)`` for a sum of Gaussian kernels ``exp(-|u - v|^2 / (2 h^2))``.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need x (N, D) and y (M, D), got {tuple(x.shape)}, "
                         f"{tuple(y.shape)}")

    def k(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(u, v).pow(2)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def train_cycle(G: nn.Module, Fm: nn.Module, A: torch.Tensor, B: torch.Tensor, *,
                steps: int, lam_cycle: float = 1.0, batch_size: int = 256,
                lr: float = 3e-3, generator: torch.Generator | None = None
                ) -> list[float]:
    """Unpaired translation ``G: A -> B`` and ``Fm: B -> A``.

    Loss per step: ``mmd2(G(a), b) + mmd2(Fm(b), a)`` on independent
    batches (no pairing), plus ``lam_cycle`` times the cycle-consistency loss
    ``|Fm(G(a)) - a|_1 + |G(Fm(b)) - b|_1`` (Zhu et al., 2017).

    This is *not* CycleGAN's objective: CycleGAN matches distributions with
    two adversarial discriminators; here a kernel MMD (:func:`mmd2`) does
    that job, which needs no second player and keeps the experiment small
    and stable. Only the cycle-consistency term is CycleGAN's.
    """
    opt = torch.optim.Adam([*G.parameters(), *Fm.parameters()], lr=lr)
    losses = []
    for _ in range(steps):
        a = A[torch.randint(0, len(A), (batch_size,), generator=generator)]
        b = B[torch.randint(0, len(B), (batch_size,), generator=generator)]
        gb, fa = G(a), Fm(b)
        loss = mmd2(gb, b) + mmd2(fa, a)
        if lam_cycle > 0:
            loss = loss + lam_cycle * (F.l1_loss(Fm(gb), a) + F.l1_loss(G(fa), b))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def dihedral_group(n: int) -> torch.Tensor:
    """The ``2 n`` orthogonal maps of the plane that permute the vertices of a
    regular ``n``-gon with a vertex on the positive x-axis: ``n`` rotations by
    multiples of ``2 pi / n``, then ``n`` reflections. Shape ``(2 n, 2, 2)``,
    acting on column vectors (``x @ S.T`` for rows)."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    angle = 2 * torch.pi * torch.arange(n) / n
    c, s = angle.cos(), angle.sin()
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], 1)
    flip = torch.diag(torch.tensor([1.0, -1.0]))
    return torch.cat([rot, rot @ flip])
