"""Augmentations of the digits and the two-view wrapper of SimCLR (chapter:
learning by similarity).

:func:`augment_digits` draws a random small affine map (rotation, scaling,
translation), a random erased square and pixel noise per image;
:class:`TwoViews` turns an encoder and a projection head into a module whose
output holds two augmented views, so that contrastive training runs through
:func:`dlbook.train.fit` like any other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dlbook.seed import torch_generator

F = nn.functional

__all__ = ["Augment", "augment_digits", "TwoViews", "AlignUniformMonitor"]


@dataclass(frozen=True)
class Augment:
    """The augmentation family: ranges of the random transformations.

    ``degrees``: rotation uniform in ``[-degrees, degrees]``; ``scale``:
    zoom uniform in ``[1 - scale, 1 + scale]``; ``shift``: translation uniform
    in ``[-shift, shift]`` pixels per axis; ``erase``: probability of zeroing
    a random ``erase_size`` square; ``noise``: std of added Gaussian noise.
    """

    degrees: float = 15.0
    scale: float = 0.1
    shift: float = 1.0
    erase: float = 0.5
    erase_size: int = 3
    noise: float = 0.05


def _affine(n: int, aug: Augment, side: int, g: torch.Generator,
            dtype: torch.dtype) -> torch.Tensor:
    """``(n, 2, 3)`` matrices for ``F.affine_grid`` (output -> input coords)."""
    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=g, dtype=dtype)

    ang = u(-aug.degrees, aug.degrees) * math.pi / 180
    zoom = u(1 - aug.scale, 1 + aug.scale)
    t = u(-aug.shift, aug.shift), u(-aug.shift, aug.shift)
    cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
    px = 2.0 / side  # one pixel in normalized coordinates
    return torch.stack([torch.stack([cos, -sin, t[0] * px], 1),
                        torch.stack([sin, cos, t[1] * px], 1)], 1)


def augment_digits(x: torch.Tensor, aug: Augment = Augment(), *,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """One random view of each digit, drawn independently per image.

    Shape: ``(N, 64)`` (flattened 8x8) or ``(N, 1, 8, 8)``; kept. Values are
    clipped to ``[0, 1]``. ``Augment(0, 0, 0, 0, 0, 0)`` is the identity.
    All randomness comes from ``generator``; without one, a generator seeded
    with 0 is used, so that a call is always reproducible.
    """
    if x.ndim == 2 and x.shape[1] == 64:
        imgs = x.reshape(-1, 1, 8, 8)
    elif x.ndim == 4 and x.shape[1:] == (1, 8, 8):
        imgs = x
    else:
        raise ValueError(f"x must have shape (N, 64) or (N, 1, 8, 8), got "
                         f"{tuple(x.shape)}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    n, side = len(imgs), imgs.shape[-1]
    theta = _affine(n, aug, side, g, imgs.dtype)
    grid = F.affine_grid(theta, list(imgs.shape), align_corners=False)
    out = F.grid_sample(imgs, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    if aug.erase > 0 and aug.erase_size > 0:
        k = aug.erase_size
        r0 = torch.randint(0, side - k + 1, (n,), generator=g)
        c0 = torch.randint(0, side - k + 1, (n,), generator=g)
        on = torch.rand(n, generator=g) < aug.erase
        ar = torch.arange(side)
        rows = (ar[None] >= r0[:, None]) & (ar[None] < (r0 + k)[:, None])
        cols = (ar[None] >= c0[:, None]) & (ar[None] < (c0 + k)[:, None])
        mask = rows[:, :, None] & cols[:, None, :] & on[:, None, None]
        out = out.masked_fill(mask[:, None], 0.0)
    if aug.noise > 0:
        out = out + aug.noise * torch.randn(out.shape, generator=g, dtype=out.dtype)
    return out.clamp(0, 1).reshape(x.shape)


class TwoViews(nn.Module):
    """SimCLR's pipeline: ``head(encoder(view))`` for two views of each input.

    ``forward(x (N, 64))`` returns ``(2, N, d)``: two independent augmented
    views through the encoder and the projection head. In training mode the
    views draw from ``generator``; in eval mode from a fresh generator seeded
    with ``eval_seed``, so that evaluation is reproducible. The
    representation used downstream is :meth:`features`, the encoder's output
    on the clean input, before the head.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module,
                 aug: Augment = Augment(), *, generator: torch.Generator,
                 eval_seed: int = 12345):
        super().__init__()
        self.encoder, self.head, self.aug = encoder, head, aug
        self.generator, self.eval_seed = generator, eval_seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.generator if self.training else torch_generator(self.eval_seed)
        views = [augment_digits(x, self.aug, generator=g) for _ in range(2)]
        return torch.stack([self.head(self.encoder(v)) for v in views])

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The representation ``encoder(x)``, shape ``(N, d_h)``, in eval mode."""
        was = self.training
        self.eval()
        h = self.encoder(x)
        self.train(was)
        return h


class AlignUniformMonitor:
    """A :func:`dlbook.train.fit` callback: alignment and uniformity per epoch.

    Measured on the L2-normalized outputs for two fixed augmented views of
    ``X (N, 64)``; adds ``"align"`` and ``"uniform"`` to each epoch's record.
    """

    def __init__(self, X: torch.Tensor, seed: int = 0):
        self.X, self.seed = X, seed

    @torch.no_grad()
    def measure(self, model: TwoViews) -> tuple[float, float]:
        """``(alignment, uniformity)`` of ``model`` on the fixed views."""
        from .geometry import alignment, uniformity
        was = model.training
        model.eval()
        eval_seed, model.eval_seed = model.eval_seed, self.seed
        z = F.normalize(model(self.X), dim=-1)
        model.eval_seed = eval_seed
        model.train(was)
        return alignment(z[0], z[1]), uniformity(z[0])

    def __call__(self, model: TwoViews, record: dict) -> None:
        record["align"], record["uniform"] = self.measure(model)
