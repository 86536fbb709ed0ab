"""Character n-gram language models: the baselines of the chapter's GPT.

Chapter: transformers (and, later, language models). An order-``n`` model
predicts a character from the ``n - 1`` before it, with counts smoothed
either by adding ``k`` to every count (``"add-k"``) or by interpolating
with the order below, with Witten-Bell weights (``"interpolated"``).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["NGramLM"]

SMOOTHINGS = ("add-k", "interpolated")


def check_ids(ids: torch.Tensor, vocab_size: int) -> np.ndarray:
    """The token ids ``ids`` (any shape) as a flat int64 array, checked to lie
    in ``[0, vocab_size)``."""
    x = np.asarray(ids, dtype=np.int64).reshape(-1)
    if x.size and (x.min() < 0 or x.max() >= vocab_size):
        raise ValueError(f"ids must lie in [0, {vocab_size}), got range "
                         f"[{x.min()}, {x.max()}]")
    return x


class NGramLM:
    """An order-``order`` character model over ``vocab_size`` symbols.

    ``add-k``: ``P(c | h) = (N(h, c) + k) / (N(h) + k V)``.
    ``interpolated`` (Witten-Bell): ``P_n(c | h) = lam(h) N(h, c) / N(h) +
    (1 - lam(h)) P_{n-1}(c | h')`` with ``lam(h) = N(h) / (N(h) + U(h))``,
    ``U(h)`` the number of distinct characters seen after ``h`` and ``h'``
    the history without its oldest character; the unigram level is add-k.
    Counts are dense arrays of shape ``(V,) * order``.
    """

    def __init__(self, order: int, vocab_size: int, smoothing: str = "add-k",
                 k: float = 1.0) -> None:
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing must be one of {SMOOTHINGS}, got "
                             f"{smoothing!r}")
        if k <= 0:
            raise ValueError(f"k must be > 0, got {k}")
        if vocab_size ** order > 5e7:
            raise ValueError(f"vocab_size ** order = {vocab_size ** order} is "
                             f"too large for dense counts")
        self.order, self.V, self.smoothing, self.k = order, vocab_size, smoothing, k
        self.counts: list[np.ndarray] = []     # counts[m]: (V,) * (m + 1)

    def fit(self, ids: torch.Tensor) -> "NGramLM":
        """Count every m-gram, ``m <= order``, of the id sequence ``(T,)``."""
        x = self._check(ids)
        self.counts = []
        for m in range(1, self.order + 1):
            c = np.zeros((self.V,) * m)
            cols = tuple(x[i:len(x) - m + 1 + i] for i in range(m))
            np.add.at(c, cols, 1.0)
            self.counts.append(c)
        return self

    def _check(self, ids: torch.Tensor) -> np.ndarray:
        return check_ids(ids, self.V)

    def _table(self, m: int) -> np.ndarray:
        """``P(c | h)`` for histories of length ``m - 1``: shape ``(V,) * m``."""
        c = self.counts[m - 1]
        if self.smoothing == "add-k" or m == 1:
            return (c + self.k) / (c.sum(-1, keepdims=True) + self.k * self.V)
        lower = self._table(m - 1)              # P_{m-1}(c | h'), broadcast over
        n_h = c.sum(-1, keepdims=True)          # the oldest history character
        u_h = (c > 0).sum(-1, keepdims=True)
        lam = np.where(n_h > 0, n_h / np.maximum(n_h + u_h, 1), 0.0)
        ml = np.where(n_h > 0, c / np.maximum(n_h, 1), 0.0)
        return lam * ml + (1 - lam) * lower[None]   # eq. (witten-bell)

    def probabilities(self) -> np.ndarray:
        """The full conditional table ``P(c | h)``, shape ``(V,) * order``."""
        if not self.counts:
            raise RuntimeError("call fit() first")
        return self._table(self.order)

    def log2_probs(self, ids: torch.Tensor, start: int | None = None) -> np.ndarray:
        """``log2 P(x_t | x_{t-n+1..t-1})`` for ``t >= start`` (default
        ``order - 1``, the first position with a full history). Shape
        ``(T - start,)``."""
        x = self._check(ids)
        start = self.order - 1 if start is None else start
        if start < self.order - 1:
            raise ValueError(f"start must be >= order - 1 = {self.order - 1}")
        P = self.probabilities()
        n = len(x) - start
        cols = tuple(x[start - self.order + 1 + i:start - self.order + 1 + i + n]
                     for i in range(self.order))
        return np.log2(P[cols])

    def bits_per_char(self, ids: torch.Tensor, start: int | None = None) -> float:
        """Mean negative ``log2`` probability of the characters of ``ids``."""
        return float(-self.log2_probs(ids, start).mean())

    def sample(self, n: int, history: list[int], generator: np.random.Generator
               ) -> list[int]:
        """Sample ``n`` ids after ``history`` (at least ``order - 1`` ids)."""
        if len(history) < self.order - 1:
            raise ValueError(f"history needs >= {self.order - 1} ids")
        P, out = self.probabilities(), list(history)
        for _ in range(n):
            p = P[tuple(out[len(out) - self.order + 1:])] if self.order > 1 else P
            out.append(int(generator.choice(self.V, p=p / p.sum())))
        return out[len(history):]

    def __repr__(self) -> str:
        return (f"NGramLM(order={self.order}, vocab_size={self.V}, "
                f"smoothing={self.smoothing!r}, k={self.k})")

