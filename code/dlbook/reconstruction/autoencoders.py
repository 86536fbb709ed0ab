"""Nonlinear, denoising, masked and sparse autoencoders on small images, and
the linear probe that measures what their codes hold (chapter:
reconstruction).

The corruption of a denoising or masked autoencoder happens inside
``forward`` in training mode, freshly drawn at every step from the model's
own generator; in evaluation mode the models reconstruct clean inputs. The
models therefore train with the book's ``fit`` on pairs ``(X, X)``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlbook.nn import mlp

__all__ = ["Autoencoder", "patch_mask", "linear_probe", "sparsity",
           "l1_code_penalty"]


def patch_mask(n: int, side: int, patch: int, ratio: float, *,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Random masks of square patches, as in masked autoencoders.

    The ``side x side`` image is cut into ``(side/patch)^2`` patches, and for
    each of the ``n`` images ``round(ratio * patches)`` of them, chosen
    uniformly without replacement, are masked. Returns a boolean tensor
    ``(n, side * side)``, ``True`` where a pixel is hidden.
    """
    if side % patch:
        raise ValueError(f"patch={patch} must divide side={side}")
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio must lie in [0, 1), got {ratio}")
    g = side // patch
    n_masked = round(ratio * g * g)
    scores = torch.rand(n, g * g, generator=generator)
    hidden = torch.zeros(n, g * g, dtype=torch.bool)
    hidden.scatter_(1, scores.argsort(dim=1)[:, :n_masked], True)
    grid = hidden.reshape(n, g, 1, g, 1).expand(n, g, patch, g, patch)
    return grid.reshape(n, side * side)


class Autoencoder(nn.Module):
    """An MLP autoencoder ``sizes[0] -> ... -> sizes[-1] -> ... -> sizes[0]``
    with optional corruption during training.

    ``noise_std > 0`` makes it a denoising autoencoder (Gaussian noise added
    to the input); ``mask_ratio > 0`` a masked one (patches of the
    ``side x side`` image set to zero, and the output on visible pixels
    replaced by the input, so that a squared loss against the clean input
    counts only the hidden pixels). The code is ``encode(x)``, the output of
    the last encoder layer (ReLU'd when ``code_activation``).
    Shape: ``(N, D) -> (N, D)``.
    """

    def __init__(self, sizes: Sequence[int], *, noise_std: float = 0.0,
                 mask_ratio: float = 0.0, side: int = 8, patch: int = 2,
                 code_activation: bool = True,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes must have >= 2 entries, got {sizes}")
        if noise_std < 0 or (noise_std > 0 and mask_ratio > 0):
            raise ValueError("use noise_std >= 0 or mask_ratio, not both; got "
                             f"{noise_std} and {mask_ratio}")
        enc = [mlp(sizes, generator=generator)]
        if code_activation:
            enc.append(nn.ReLU())
        self.encoder = nn.Sequential(*enc)
        self.decoder = mlp(sizes[::-1], generator=generator)
        self.noise_std, self.mask_ratio = noise_std, mask_ratio
        self.side, self.patch = side, patch
        self.generator = generator
        self.last_mask: torch.Tensor | None = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of clean inputs. Shape: ``(N, D) -> (N, sizes[-1])``."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction; corrupted input in training mode only."""
        if not self.training or (self.noise_std == 0 and self.mask_ratio == 0):
            return self.decoder(self.encoder(x))
        if self.noise_std > 0:
            noise = torch.randn(x.shape, generator=self.generator,
                                dtype=x.dtype)
            return self.decoder(self.encoder(x + self.noise_std * noise))
        if x.ndim != 2 or x.shape[1] != self.side ** 2:
            raise ValueError(f"masking needs x of shape (N, {self.side ** 2}) "
                             f"(side={self.side}), got {tuple(x.shape)}")
        hidden = patch_mask(len(x), self.side, self.patch, self.mask_ratio,
                            generator=self.generator)
        self.last_mask = hidden
        out = self.decoder(self.encoder(x.masked_fill(hidden, 0.0)))
        return torch.where(hidden, out, x)  # loss only on the hidden pixels


def linear_probe(Z_train: torch.Tensor, y_train: torch.Tensor,
                 Z_test: torch.Tensor, y_test: torch.Tensor, *,
                 C: float = 1.0) -> float:
    """Test accuracy of multinomial logistic regression (scikit-learn) on
    frozen features, standardized with the training statistics.
    Shapes: ``Z_* (N, m)``, ``y_* (N,)``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(),
                        LogisticRegression(C=C, max_iter=3000))
    clf.fit(Z_train.detach().numpy(), y_train.numpy())
    return float(clf.score(Z_test.detach().numpy(), y_test.numpy()))


def sparsity(Z: torch.Tensor, tol: float = 1e-6) -> float:
    """Fraction of code entries with ``|z| <= tol``. Shape: ``(N, m)``."""
    return float((Z.abs() <= tol).float().mean())


def l1_code_penalty(model: Autoencoder, lam: float):
    """A loss for ``fit``: squared error plus ``lam * mean_i ||z_i||_1``,
    with the code recomputed from the (clean) input ``y``."""
    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mse = ((out - y) ** 2).sum(dim=1).mean()
        return mse + lam * model.encode(y).abs().sum(dim=1).mean()
    return loss
