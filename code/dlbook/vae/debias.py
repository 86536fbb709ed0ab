"""Debiasing with learned latent structure, after Amini et al. (2019), on a
generated data set of 8x8 "faces" (VAE chapter)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["FaceData", "face_images", "latent_density_weights",
           "resample_indices", "group_accuracies"]

_EYES = [(2, 2), (2, 5)]
_MOUTH = [(5, 2), (5, 3), (5, 4), (5, 5)]
_REGION = [(r, c) for r in range(1, 7) for c in range(1, 7)]


@dataclass(frozen=True)
class FaceData:
    """Images ``X (N, 64)`` in [0, 1], labels ``y (N,)`` (1: face, 0: not)
    and the subgroup ``group (N,)`` that the labels do not mark: 0 a light
    face, 1 a dark face, 2 a light non-face, 3 a dark non-face."""

    X: torch.Tensor
    y: torch.Tensor
    group: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


def _draw(face: bool, dark: bool, rng: np.random.Generator,
          noise: float) -> np.ndarray:
    """One image: a square region of the tone's brightness with three dark
    features, at the eyes and mouth of a face or at random places."""
    img = np.zeros((8, 8))
    tone = rng.uniform(0.25, 0.45) if dark else rng.uniform(0.75, 0.95)
    for r, c in _REGION:
        img[r, c] = tone
    if face:
        feats = _EYES + _MOUTH
    else:  # as many features, scattered over the region
        picks = rng.choice(len(_REGION), size=len(_EYES) + len(_MOUTH),
                           replace=False)
        feats = [_REGION[i] for i in picks]
    for r, c in feats:
        img[r, c] = tone - 0.25
    dr, dc = rng.integers(-1, 2, size=2)  # jitter the whole image by a pixel
    img = np.roll(img, (int(dr), int(dc)), axis=(0, 1))
    return np.clip(img + noise * rng.standard_normal((8, 8)), 0, 1).ravel()


def face_images(n: int, *, minority: float = 0.05, face_fraction: float = 0.5,
                noise: float = 0.1, seed: int = 0) -> FaceData:
    """``n`` generated images, a fraction ``face_fraction`` of them faces.

    Among faces a fraction ``minority`` is dark (the under-represented
    subgroup); non-faces are light or dark with equal probability. With a
    small ``minority`` the tone is then a spurious cue (a dark image is
    mostly a non-face); with ``minority=0.5`` the four groups are equally
    likely and tone carries no information. Shape: ``X (n, 64)``.
    """
    if n < 1 or not 0 <= minority <= 1 or not 0 < face_fraction < 1:
        raise ValueError(f"need n >= 1, minority in [0, 1], face_fraction in "
                         f"(0, 1); got {n}, {minority}, {face_fraction}")
    rng = np.random.default_rng(seed)
    face = rng.random(n) < face_fraction
    dark = np.where(face, rng.random(n) < minority, rng.random(n) < 0.5)
    X = np.stack([_draw(f, d, rng, noise) for f, d in zip(face, dark)])
    group = np.where(face, dark.astype(int), 2 + dark.astype(int))
    return FaceData(torch.tensor(X, dtype=torch.float32),
                    torch.tensor(face, dtype=torch.long),
                    torch.tensor(group, dtype=torch.long))


def latent_density_weights(mu: torch.Tensor, bins: int = 10,
                           alpha: float = 0.01) -> torch.Tensor:
    """Sampling probabilities proportional to ``prod_j 1 / (Q_j(mu_j) +
    alpha)``, where ``Q_j`` is the histogram density (``bins`` bins, mass
    one) of latent coordinate ``j``: rare latent values are drawn more often.
    ``alpha -> inf`` gives uniform weights. ``alpha`` is compared with a
    bin's mass, about ``1 / bins``, so the two interact; what the weights
    achieve can depend strongly on ``bins``: choose both on validation data.
    Shape: ``(N, D) -> (N,)``, sums to one."""
    if mu.ndim != 2 or bins < 1 or alpha <= 0:
        raise ValueError(f"need mu (N, D), bins >= 1, alpha > 0; got "
                         f"{tuple(mu.shape)}, {bins}, {alpha}")
    log_w = torch.zeros(len(mu), dtype=torch.float64)
    for col in mu.double().T.contiguous():
        edges = torch.linspace(col.min().item(), col.max().item(), bins + 1,
                               dtype=torch.float64)
        idx = torch.bucketize(col, edges[1:-1], right=True)
        mass = torch.bincount(idx, minlength=bins).double() / len(col)
        log_w -= torch.log(mass[idx] + alpha)
    return torch.softmax(log_w, dim=0)


def resample_indices(weights: torch.Tensor, n: int, *,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` indices drawn with replacement with probabilities ``weights``.
    Shape: ``(N,) -> (n,)``."""
    if weights.ndim != 1 or bool((weights < 0).any()):
        raise ValueError("weights must be a non-negative (N,) vector")
    return torch.multinomial(weights.float(), n, replacement=True,
                             generator=generator)


@torch.no_grad()
def group_accuracies(logits: torch.Tensor, y: torch.Tensor,
                     group: torch.Tensor) -> dict[int, float]:
    """Accuracy of ``logits.argmax(1)`` on each subgroup present.
    Shapes: ``logits (N, C)``, ``y, group (N,)``."""
    correct = (logits.argmax(1) == y).float()
    return {int(g): correct[group == g].mean().item()
            for g in torch.unique(group)}
