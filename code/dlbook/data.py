"""Datasets that ship with installed packages or are generated with a seed.

Shared machinery. Nothing here downloads anything: the digits come with
scikit-learn, and every synthetic set is a pure function of its ``seed``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits, make_moons
from sklearn.model_selection import train_test_split

__all__ = ["Split", "digits", "two_moons", "spirals", "xor"]


@dataclass(frozen=True)
class Split:
    """A train/validation/test split of tensors.

    ``X_*`` have shape ``(N, D)`` (or ``(N, 1, 8, 8)`` for digit images) and
    ``y_*`` shape ``(N,)``. ``X_val``/``y_val`` are empty when no validation
    fraction was asked for.
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X_train, self.y_train

    @property
    def val(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X_val, self.y_val

    @property
    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X_test, self.y_test


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")


def digits(
    *,
    seed: int = 0,
    test_size: float = 0.25,
    val_size: float = 0.0,
    images: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Split:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes).

    Pixels (0..16) are scaled to [0, 1]. The split is stratified by class.
    ``val_size`` is a fraction of the whole set, carved out of the training
    part. With ``images=True``, ``X`` has shape ``(N, 1, 8, 8)``; otherwise
    ``(N, 64)``. Labels are ``int64``.
    """
    _check_fraction("test_size", test_size)
    _check_fraction("val_size", val_size)
    if test_size + val_size >= 1.0:
        raise ValueError(
            f"test_size + val_size must be < 1, got {test_size + val_size}")
    ds = load_digits()
    X, y = ds.data / 16.0, ds.target
    if test_size > 0:
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=test_size, random_state=seed, stratify=y)
    else:
        X_tr, X_te, y_tr, y_te = X, X[:0], y, y[:0]
    if val_size > 0:
        X_tr, X_va, y_tr, y_va = train_test_split(
            X_tr, y_tr, test_size=val_size / (1 - test_size),
            random_state=seed, stratify=y_tr)
    else:
        X_va, y_va = X_tr[:0], y_tr[:0]
    shape = (-1, 1, 8, 8) if images else (-1, 64)

    def tx(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype).reshape(shape)

    def ty(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.int64)

    return Split(tx(X_tr), ty(y_tr), tx(X_va), ty(y_va), tx(X_te), ty(y_te))


def two_moons(
    n: int, *, noise: float = 0.1, seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half-moons in 2-D. Shapes: ``X (n, 2)``, ``y (n,)``."""
    X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    return torch.as_tensor(X, dtype=dtype), torch.as_tensor(y)


def spirals(
    n: int, *, classes: int = 2, noise: float = 0.2, turns: float = 1.5,
    seed: int = 0, dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``classes`` interleaved spiral arms in 2-D, ``n`` points in all.

    Shapes: ``X (n, 2)``, ``y (n,)`` with labels ``0..classes-1``.
    """
    if n < classes:
        raise ValueError(f"n must be at least classes={classes}, got {n}")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    r = rng.uniform(0.05, 1.0, size=n)
    theta = 2 * np.pi * (turns * r + y / classes)
    X = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    X += noise * 0.1 * rng.standard_normal(X.shape)
    return torch.as_tensor(X, dtype=dtype), torch.as_tensor(y)


def xor(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The four points of XOR on {0, 1}^2. Shapes: ``X (4, 2)``, ``y (4,)``."""
    X = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    return X, torch.tensor([0, 1, 1, 0])
