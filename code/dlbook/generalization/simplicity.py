"""The simplicity bias of random networks on Boolean functions.

Chapter: generalization. Sample the parameters of a small ReLU network at
random, read off the Boolean function it computes on all ``2^n`` inputs, and
compare how often each function appears with its Lempel-Ziv complexity
(Valle-Perez, Camargo and Louis, 2019).
"""
from __future__ import annotations

import math
from collections import Counter

import torch

__all__ = ["all_bit_strings", "random_net_truth_tables", "lz76_phrases",
           "lz_complexity", "function_frequencies"]


def all_bit_strings(n_bits: int) -> torch.Tensor:
    """All ``2^n`` inputs in {0, 1}^n in lexicographic order. Shape: ``(2^n, n)``."""
    if not 1 <= n_bits <= 16:
        raise ValueError(f"n_bits must lie in 1..16, got {n_bits}")
    idx = torch.arange(2 ** n_bits)
    return ((idx[:, None] >> torch.arange(n_bits - 1, -1, -1)) & 1).float()


@torch.no_grad()
def random_net_truth_tables(n_bits: int, samples: int, *,
                            hidden: tuple[int, ...] = (40, 40),
                            sigma_w: float = 2.0, sigma_b: float = 0.3,
                            generator: torch.Generator | None = None,
                            chunk: int = 2000) -> list[str]:
    """Truth tables of ``samples`` ReLU networks with i.i.d. Gaussian parameters.

    Weights ``N(0, sigma_w^2 / fan_in)``, biases ``N(0, sigma_b^2)``; the
    output bit is ``1[f(x) > 0]``. Each table is a string of ``2^n`` bits.
    """
    X = all_bit_strings(n_bits)
    sizes = [n_bits, *hidden, 1]
    tables: list[str] = []
    for start in range(0, samples, chunk):
        k = min(chunk, samples - start)
        h = X.expand(k, *X.shape)
        for a, b in zip(sizes[:-1], sizes[1:]):
            W = torch.randn(k, a, b, generator=generator) * (sigma_w / math.sqrt(a))
            bias = torch.randn(k, 1, b, generator=generator) * sigma_b
            z = h @ W + bias
            h = torch.relu(z)
        bits = (z[..., 0] > 0).to(torch.uint8)
        tables += ["".join(map(str, row)) for row in bits.tolist()]
    return tables


def lz76_phrases(s: str) -> int:
    """Number of phrases in the Lempel-Ziv (1976) parsing of ``s``.

    The Kaspar-Schuster algorithm: each new phrase is the shortest
    substring not seen as a substring of what precedes it (overlap allowed).
    """
    n = len(s)
    if n == 0:
        return 0
    c, i = 1, 1          # phrases so far; start of the current phrase
    while i < n:
        k = 1
        # grow the phrase while it can be copied from earlier text
        while i + k <= n and s[i:i + k] in s[:i + k - 1]:
            k += 1
        c += 1
        i += k
    return c


def lz_complexity(s: str) -> float:
    """Valle-Perez et al.'s complexity ``log2(n) (N(s) + N(reverse s)) / 2``.

    ``N`` counts LZ76 phrases; constant strings get ``log2(n)``.
    """
    n = len(s)
    if set(s) <= {"0"} or set(s) <= {"1"}:
        return math.log2(n)
    return math.log2(n) * (lz76_phrases(s) + lz76_phrases(s[::-1])) / 2


def function_frequencies(tables: list[str]) -> list[tuple[str, float]]:
    """Empirical probability of each distinct function, most frequent first."""
    counts = Counter(tables)
    total = len(tables)
    return [(f, c / total) for f, c in counts.most_common()]
