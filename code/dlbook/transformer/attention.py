"""Scaled dot-product and multi-head attention, from scratch.

Chapter: transformers. :func:`scaled_dot_product_attention` has the signature
and semantics of :func:`torch.nn.functional.scaled_dot_product_attention`
(a boolean mask marks the pairs that *take part*; a float mask is added to
the scores; ``is_causal`` is top-left aligned), and
:class:`MultiheadAttention` the parameter layout of
:class:`torch.nn.MultiheadAttention` (``in_proj_weight``, ``in_proj_bias``,
``out_proj``), so that a ``state_dict`` loads across in either direction.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["causal_mask", "mask_to_bias", "attention_weights",
           "scaled_dot_product_attention", "MultiheadAttention"]


def causal_mask(n_query: int, n_key: int | None = None, offset: int = 0,
                device: torch.device | None = None) -> torch.Tensor:
    """Boolean mask ``(n_query, n_key)``: True where key ``j <= i + offset``.

    ``offset=0`` is torch's ``is_causal`` (top-left aligned); for ``n_query``
    new tokens appended to ``n_key - n_query`` cached ones use
    ``offset = n_key - n_query``. It is the adjacency (row receives) of the
    directed graph in which every token hears itself and its past.
    """
    n_key = n_query if n_key is None else n_key
    if n_query < 0 or n_key < 0:
        raise ValueError(f"sizes must be >= 0, got {n_query}, {n_key}")
    i = torch.arange(n_query, device=device).unsqueeze(1)
    j = torch.arange(n_key, device=device).unsqueeze(0)
    return j <= i + offset


def mask_to_bias(attn_mask: torch.Tensor | None, dtype: torch.dtype
                 ) -> torch.Tensor | None:
    """An additive mask: 0 where a boolean mask is True, ``-inf`` elsewhere;
    float masks are returned as they are (cast to ``dtype``)."""
    if attn_mask is None:
        return None
    if attn_mask.dtype == torch.bool:
        zero = torch.zeros((), dtype=dtype, device=attn_mask.device)
        return zero.masked_fill(~attn_mask, float("-inf"))
    return attn_mask.to(dtype)


def _check_qkv(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
    if query.dim() < 2 or key.dim() < 2 or value.dim() < 2:
        raise ValueError("query, key and value need shape (..., L, E), got "
                         f"{tuple(query.shape)}, {tuple(key.shape)}, "
                         f"{tuple(value.shape)}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"query and key must share the last dimension E, got "
                         f"{query.shape[-1]} and {key.shape[-1]}")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"key and value must have the same length S, got "
                         f"{key.shape[-2]} and {value.shape[-2]}")


def attention_weights(query: torch.Tensor, key: torch.Tensor,
                      attn_mask: torch.Tensor | None = None,
                      is_causal: bool = False, scale: float | None = None
                      ) -> torch.Tensor:
    """``softmax(Q K^T / sqrt(d_k) + M)``, each row a distribution over keys.

    Rows whose keys are all masked are zero (as in torch). Shapes:
    ``query (..., L, E)``, ``key (..., S, E)``, ``attn_mask`` broadcastable
    to ``(..., L, S)`` -> ``(..., L, S)``.
    """
    if attn_mask is not None and is_causal:
        raise ValueError("pass either attn_mask or is_causal=True, not both")
    L, S = query.shape[-2], key.shape[-2]
    if is_causal:
        attn_mask = causal_mask(L, S, device=query.device)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale       # eq. (attention)
    bias = mask_to_bias(attn_mask, scores.dtype)
    if bias is not None:
        scores = scores + bias
    # a row with every key masked is all -inf: give it zero weights, not NaN
    dead = torch.isneginf(scores).all(-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(dead, 0.0), dim=-1)
    return weights.masked_fill(dead, 0.0)


def scaled_dot_product_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
    attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
    is_causal: bool = False, scale: float | None = None, *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Attention ``softmax(Q K^T / sqrt(d_k) + M) V`` (Vaswani et al., 2017).

    Same arguments as :func:`torch.nn.functional.scaled_dot_product_attention`:
    a boolean ``attn_mask`` is True where a query may attend to a key, a
    float one is added to the scores; ``is_causal`` uses
    :func:`causal_mask`; ``dropout_p`` drops attention weights (masks drawn
    from ``generator``). Shapes: ``query (..., L, E)``, ``key (..., S, E)``,
    ``value (..., S, Ev)`` -> ``(..., L, Ev)``.
    """
    _check_qkv(query, key, value)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must lie in [0, 1), got {dropout_p}")
    w = attention_weights(query, key, attn_mask, is_causal, scale)
    if dropout_p > 0.0:
        keep = torch.rand(w.shape, generator=generator, device=w.device) >= dropout_p
        w = w * keep / (1.0 - dropout_p)
    return w @ value


class MultiheadAttention(nn.Module):
    """Multi-head attention with the parameters of ``torch.nn.MultiheadAttention``.

    ``in_proj_weight (3E, E)`` stacks ``W_q, W_k, W_v``; ``in_proj_bias
    (3E,)``; ``out_proj`` is ``Linear(E, E)``. Each of the ``num_heads``
    heads attends in its own slice of ``E / num_heads`` coordinates, and the
    heads are concatenated and mixed by ``out_proj``. As in torch,
    ``key_padding_mask (N, S)`` and a boolean ``attn_mask (L, S)`` or
    ``(N * num_heads, L, S)`` are True where attention is *not* allowed (the
    opposite of :func:`scaled_dot_product_attention`); float masks are added.
    Shapes (``batch_first=True``): ``query (N, L, E)``, ``key, value (N, S,
    E)`` -> ``(N, L, E)`` and weights ``(N, L, S)`` (head average) or ``(N,
    num_heads, L, S)``; unbatched ``(L, E)`` inputs are accepted.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0,
                 bias: bool = True, batch_first: bool = True, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by "
                             f"num_heads ({num_heads})")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = (nn.Parameter(torch.zeros(3 * embed_dim)) if bias
                             else None)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Torch's initialization: Glorot-uniform ``in_proj_weight``, zero
        biases, ``out_proj.weight`` uniform in ``±1/sqrt(E)``."""
        e = self.embed_dim
        bound_in = math.sqrt(6.0 / (e + 3 * e))   # xavier_uniform_ on (3E, E)
        bound_out = 1.0 / math.sqrt(e)            # kaiming_uniform_(a=sqrt(5))
        with torch.no_grad():
            self.in_proj_weight.uniform_(-bound_in, bound_in, generator=generator)
            self.out_proj.weight.uniform_(-bound_out, bound_out, generator=generator)
            for b in (self.in_proj_bias, self.out_proj.bias):
                if b is not None:
                    b.zero_()

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, L, E) -> (N, h, L, E / h)``."""
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def _bias(self, attn_mask, key_padding_mask, n: int, L: int, S: int,
              dtype: torch.dtype) -> torch.Tensor | None:
        """Torch's two masks (True = blocked) as one additive ``(N, h, L, S)``."""
        bias = None
        if attn_mask is not None:
            blocked = attn_mask if attn_mask.dtype != torch.bool else ~attn_mask
            bias = mask_to_bias(blocked, dtype)
            if bias.dim() == 3:
                if bias.shape[0] != n * self.num_heads:
                    raise ValueError(f"3-D attn_mask must have shape ({n} * "
                                     f"{self.num_heads}, {L}, {S}), got "
                                     f"{tuple(bias.shape)}")
                bias = bias.view(n, self.num_heads, L, S)
        if key_padding_mask is not None:
            if key_padding_mask.shape != (n, S):
                raise ValueError(f"key_padding_mask must have shape ({n}, {S}), "
                                 f"got {tuple(key_padding_mask.shape)}")
            pad = mask_to_bias(~key_padding_mask if key_padding_mask.dtype
                               == torch.bool else key_padding_mask, dtype)
            pad = pad.view(n, 1, 1, S)
            bias = pad if bias is None else bias + pad
        return bias

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None,
                need_weights: bool = True, attn_mask: torch.Tensor | None = None,
                average_attn_weights: bool = True, is_causal: bool = False):
        """Returns ``(output, weights)``; ``weights`` is None unless
        ``need_weights``."""
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query[None], key[None], value[None]
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask[None]
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if query.shape[-1] != self.embed_dim:
            raise ValueError(f"query must have last dimension {self.embed_dim}, "
                             f"got {tuple(query.shape)}")
        n, L, S = query.shape[0], query.shape[1], key.shape[1]
        if is_causal and attn_mask is None:
            attn_mask = ~causal_mask(L, S, device=query.device)
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = (self.in_proj_bias.chunk(3) if self.in_proj_bias is not None
                         else (None, None, None))
        q = self._heads(F.linear(query, w_q, b_q))
        k = self._heads(F.linear(key, w_k, b_k))
        v = self._heads(F.linear(value, w_v, b_v))
        bias = self._bias(attn_mask, key_padding_mask, n, L, S, q.dtype)
        w = attention_weights(q, k, bias)                  # (N, h, L, S)
        if self.training and self.dropout > 0:
            w = F.dropout(w, self.dropout)
        out = self.out_proj((w @ v).transpose(1, 2).flatten(-2))
        if not need_weights:
            weights = None
        else:
            weights = w.mean(1) if average_attn_weights else w
        if unbatched:
            out = out[0]
            weights = None if weights is None else weights[0]
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights
