"""Autoregressive models: masked networks (MADE) and character n-grams with
back-off.

Chapter: generative-basics. ``MADE`` (Germain et al., 2015) is an MLP whose
weight masks make output ``d`` depend only on inputs before ``d`` in a chosen
order, so one forward pass gives every conditional of the chain rule.
``BackoffNGram`` is a sparse character model of any order whose
probabilities are interpolated down to the unigram by absolute discounting.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..transformer.ngram import check_ids

__all__ = ["made_degrees", "made_masks", "MaskedLinear", "MADE", "BackoffNGram"]


def made_degrees(in_features: int, hidden_sizes: list[int], *,
                 order: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """The degree of every unit: inputs get ``1..D`` in ``order``; a hidden
    unit gets a degree in ``[min of the layer below, D - 1]`` at random.
    Returns one int64 tensor per layer, input first."""
    D = in_features
    if D < 2:
        raise ValueError(f"in_features must be >= 2, got {D}")
    if order is None:
        order = torch.arange(D)
    if sorted(order.tolist()) != list(range(D)):
        raise ValueError("order must be a permutation of 0..in_features-1")
    degrees = [torch.empty(D, dtype=torch.int64)]
    degrees[0][order] = torch.arange(1, D + 1)
    for h in hidden_sizes:
        lo = int(degrees[-1].min())
        degrees.append(torch.randint(lo, D, (h,), generator=generator))
    return degrees


def made_masks(degrees: list[torch.Tensor]) -> list[torch.Tensor]:
    """Masks ``(out, in)`` of each layer: hidden ``m(k') >= m(k)``, output
    ``m(d) > m(k)`` (strict, so output ``d`` never sees input ``d``)."""
    masks = [(d_out[:, None] >= d_in[None]).float()
             for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    out = degrees[0]  # the outputs carry the input degrees
    masks.append((out[:, None] > degrees[-1][None]).float())
    return masks


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 ``mask`` of
    shape ``(out_features, in_features)``. Shape: (N, in) -> (N, out)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor,
                 bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        if mask.shape != (out_features, in_features):
            raise ValueError(f"mask must be {(out_features, in_features)}, "
                             f"got {tuple(mask.shape)}")
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (W * mask)^T + b``. Shape: (N, in) -> (N, out)."""
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """A MADE for binary vectors: ``forward(x)`` returns the logits of
    ``p(x_d = 1 | x_<d)`` for every ``d`` in one pass. Shape: (N, D) -> (N, D).
    """

    def __init__(self, in_features: int, hidden_sizes: list[int], *,
                 order: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        degrees = made_degrees(in_features, hidden_sizes, order=order,
                               generator=generator)
        masks = made_masks(degrees)
        sizes = [in_features, *hidden_sizes, in_features]
        layers: list[nn.Module] = []
        for i, mask in enumerate(masks):
            layers.append(MaskedLinear(sizes[i], sizes[i + 1], mask))
            if i < len(masks) - 1:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)
        self.register_buffer("order", degrees[0].argsort())
        if generator is not None:  # reproducible weights as well as degrees
            for m in self.net:
                if isinstance(m, nn.Linear):
                    bound = 1 / math.sqrt(m.in_features)
                    with torch.no_grad():
                        m.weight.uniform_(-bound, bound, generator=generator)
                        m.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``p(x_d = 1 | x_<d)``. Shape: (N, D) -> (N, D)."""
        return self.net(x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x) = sum_d log p(x_d | x_<d)`` in nats. Shape: (N, D) -> (N,)."""
        bce = nn.functional.binary_cross_entropy_with_logits
        return -bce(self(x), x, reduction="none").sum(1)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Ancestral sampling, one dimension per pass, in the model's order.
        Shape: (n, D)."""
        D = len(self.order)
        x = torch.zeros(n, D)
        for d in self.order.tolist():
            p = torch.sigmoid(self(x)[:, d])
            x[:, d] = torch.bernoulli(p, generator=generator)
        return x


class BackoffNGram:
    """A character model of order ``n`` with interpolated absolute discounting.

    With ``N(h, c)`` the count of character ``c`` after history ``h``,
    ``N(h) = sum_c N(h, c)`` and ``U(h)`` the number of distinct ``c`` seen
    after ``h``::

        P_m(c | h) = max(N(h, c) - delta, 0) / N(h)
                     + delta U(h) / N(h) * P_{m-1}(c | h')

    where ``h'`` drops the oldest character, and ``P_m = P_{m-1}`` when ``h``
    was never seen (the back-off). ``P_1`` is add-one smoothed. Counts are
    sparse (sorted integer keys), so orders up to about 8 fit in memory.
    """

    def __init__(self, order: int, vocab_size: int, delta: float = 0.75) -> None:
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if not 0 < delta < 1:
            raise ValueError(f"delta must lie in (0, 1), got {delta}")
        if vocab_size ** order >= 2 ** 62:
            raise ValueError("vocab_size ** order overflows int64 keys")
        self.order, self.V, self.delta = order, vocab_size, delta
        self.tables: list[tuple[np.ndarray, ...]] = []

    def _keys(self, x: np.ndarray, m: int, start: int) -> np.ndarray:
        """Integer key of the m-gram ending at each position ``t >= start``."""
        key = np.zeros(len(x) - start, dtype=np.int64)
        for i in range(m):
            key = key * self.V + x[start - m + 1 + i:len(x) - m + 1 + i]
        return key

    def fit(self, ids: torch.Tensor) -> "BackoffNGram":
        """Count every m-gram, ``m <= order``, of the ids ``(T,)``."""
        x = self._check(ids)
        self.tables = []
        for m in range(1, self.order + 1):
            grams, n_hc = np.unique(self._keys(x, m, m - 1), return_counts=True)
            hist, inv = np.unique(grams // self.V, return_inverse=True)
            n_h = np.bincount(inv, weights=n_hc)
            u_h = np.bincount(inv).astype(float)
            self.tables.append((grams, n_hc.astype(float), hist, n_h, u_h))
        return self

    def _check(self, ids: torch.Tensor) -> np.ndarray:
        return check_ids(ids, self.V)

    @staticmethod
    def _lookup(keys: np.ndarray, table: np.ndarray, values: np.ndarray
                ) -> np.ndarray:
        pos = np.clip(np.searchsorted(table, keys), 0, len(table) - 1)
        return np.where(table[pos] == keys, values[pos], 0.0)

    def probs_by_order(self, ids: torch.Tensor, start: int | None = None
                       ) -> list[np.ndarray]:
        """``P_m(x_t | x_{t-m+1..t-1})`` for ``m = 1..order`` and each
        ``t >= start`` (default ``order - 1``): one pass gives every order.
        Shape: a list of ``order`` arrays of shape (T - start,)."""
        if not self.tables:
            raise RuntimeError("call fit() first")
        x = self._check(ids)
        start = self.order - 1 if start is None else start
        if start < self.order - 1:
            raise ValueError(f"start must be >= order - 1 = {self.order - 1}")
        grams, n_hc, *_ = self.tables[0]
        p = (self._lookup(x[start:], grams, n_hc) + 1) / (n_hc.sum() + self.V)
        out = [p]
        for m in range(2, self.order + 1):
            grams, n_hc, hist, n_h, u_h = self.tables[m - 1]
            key = self._keys(x, m, start)
            c_hc = self._lookup(key, grams, n_hc)
            c_h = self._lookup(key // self.V, hist, n_h)
            k_h = self._lookup(key // self.V, hist, u_h)
            seen = c_h > 0
            c_h = np.where(seen, c_h, 1.0)
            mixed = (np.maximum(c_hc - self.delta, 0) + self.delta * k_h * p) / c_h
            p = np.where(seen, mixed, p)  # eq. (backoff)
            out.append(p)
        return out

    def probs_of(self, ids: torch.Tensor, start: int | None = None) -> np.ndarray:
        """``P(x_t | x_{t-n+1..t-1})`` at the full order. Shape: (T - start,)."""
        return self.probs_by_order(ids, start)[-1]

    def bits_per_char(self, ids: torch.Tensor, start: int | None = None
                      ) -> list[float]:
        """Mean ``-log2 P_m`` of the characters of ``ids`` from ``start`` on,
        for every order ``m = 1..order`` (the last entry is this model's)."""
        return [float(-np.log2(p).mean()) for p in self.probs_by_order(ids, start)]

    def next_char_probs(self, history: list[int]) -> np.ndarray:
        """The whole conditional ``P(. | history)``, shape (V,): the model
        scored on every continuation of the last ``order - 1`` ids."""
        h = list(history)[len(history) - self.order + 1:] if self.order > 1 else []
        if len(h) < self.order - 1:
            raise ValueError(f"history needs >= {self.order - 1} ids")
        seqs = np.array([h + [c] for c in range(self.V)], dtype=np.int64)
        return np.array([self.probs_of(torch.from_numpy(s))[-1] for s in seqs])
