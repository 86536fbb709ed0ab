"""Seeding by an explicit call (shared machinery, used by every chapter).

Importing :mod:`dlbook` never seeds anything. A chapter or test that wants
reproducible results calls :func:`seed_everything` once and passes the
returned generators on explicitly.
"""
from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["seed_everything", "torch_generator", "numpy_generator"]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch's global generators; return a torch one.

    The global seeds only make stray library randomness reproducible; the
    book's own code takes its randomness from the returned generator (or a
    ``seed=`` argument), never from global state.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch_generator(seed)


def torch_generator(seed: int) -> torch.Generator:
    """A fresh CPU :class:`torch.Generator` seeded with ``seed``."""
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def numpy_generator(seed: int) -> np.random.Generator:
    """A fresh NumPy :class:`~numpy.random.Generator` seeded with ``seed``."""
    return np.random.default_rng(seed)
