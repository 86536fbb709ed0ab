"""Decoding a language model and measuring what it produced (chapter
language-models): temperature, top-k and nucleus (top-p) filtering, a
sampler built on them, and distinct-n diversity.
"""
from __future__ import annotations

import torch

from dlbook.transformer import GPT, KVCache

__all__ = ["top_k_filter", "top_p_filter", "decode", "distinct_n"]


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set all but the ``k`` largest logits of each row to ``-inf``.
    Shape: ``(B, V) -> (B, V)``; ties at the ``k``-th value are kept."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    kth = torch.topk(logits, min(k, logits.shape[-1])).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al., 2020): keep the smallest set of
    most probable tokens whose probability reaches ``p``; the rest get
    ``-inf``. The most probable token is always kept. Shape: ``(B, V)``."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must lie in (0, 1], got {p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    before = probs.cumsum(-1) - probs         # mass of the tokens ranked above
    drop_sorted = before >= p                 # already reached p without it
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def _next_token(logits: torch.Tensor, temperature: float, top_k: int | None,
                top_p: float | None, generator: torch.Generator | None
                ) -> torch.Tensor:
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)          # greedy
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)


@torch.no_grad()
def decode(model: GPT, idx: torch.Tensor, max_new_tokens: int, *,
           temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend ``idx (B, T0)`` by ``max_new_tokens`` tokens; ``temperature=0``
    is greedy decoding, otherwise the next token is drawn from the softmax
    of ``logits / temperature`` after the optional top-k, then top-p,
    filter. Uses a :class:`~dlbook.transformer.KVCache` and slides the
    window when the context is full. Returns ``(B, T0 + max_new_tokens)``.
    """
    if temperature < 0 or max_new_tokens < 0:
        raise ValueError(f"need temperature >= 0 and max_new_tokens >= 0, got "
                         f"{temperature}, {max_new_tokens}")
    if idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"idx must have shape (B, T0), got {tuple(idx.shape)}")
    was = model.training
    model.eval()
    n_ctx, cache = model.config.context, None
    for _ in range(max_new_tokens):
        if cache is not None and cache.length < n_ctx:
            logits = model(idx[:, -1:], cache)
        else:
            cache = KVCache()
            logits = model(idx[:, -n_ctx:], cache)
        nxt = _next_token(logits[:, -1], temperature, top_k, top_p, generator)
        idx = torch.cat([idx, nxt], dim=1)
    model.train(was)
    return idx


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): distinct character n-grams over all
    n-grams in ``texts``; 1 means no n-gram repeats."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams = [t[i:i + n] for t in texts for i in range(len(t) - n + 1)]
    if not grams:
        raise ValueError(f"texts contain no {n}-gram")
    return len(set(grams)) / len(grams)
