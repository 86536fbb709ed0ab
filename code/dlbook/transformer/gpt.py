"""A small GPT: pre-norm transformer blocks, a KV cache, sampling.

Chapter: transformers (and, later, language models). Code in the spirit of
nanoGPT: a frozen :class:`GPTConfig`, a :class:`Block` (pre-norm, residual
attention and MLP), :class:`GPT` (token and position embeddings, blocks,
final norm, tied read-out) and :func:`generate` with or without a KV cache.
The same blocks without the causal mask make :class:`Encoder`, the
bidirectional model of the chapter's algorithmic task.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention_weights, causal_mask
from .positions import apply_rotary, sinusoidal_encoding

__all__ = ["GPTConfig", "KVCache", "SelfAttention", "Block", "GPT", "Encoder",
           "generate"]

POSITIONS = ("learned", "sinusoidal", "rotary", "none")


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of :class:`GPT` (and :class:`Encoder`).

    ``context`` is the longest sequence the model reads; ``positions`` is
    ``"learned"`` (an embedding table), ``"sinusoidal"``, ``"rotary"``
    (rotated queries and keys) or ``"none"``; ``d_ff = mlp_ratio * d_model``.
    """

    vocab_size: int
    context: int
    n_layer: int
    n_head: int
    d_model: int
    dropout: float = 0.0
    positions: str = "learned"
    bias: bool = True
    tie_weights: bool = True
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "n_layer", "n_head", "d_model"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by "
                             f"n_head ({self.n_head})")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got "
                             f"{self.positions!r}")
        if self.positions == "rotary" and (self.d_model // self.n_head) % 2:
            raise ValueError("rotary positions need an even head dimension")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, one ``(k, v)`` per layer,
    each of shape ``(B, n_head, t, head_dim)``; ``length`` is ``t``."""

    layers: list = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.layers[0][0].shape[-2] if self.layers else 0


class SelfAttention(nn.Module):
    """Multi-head self-attention, causal or not, with an optional KV cache.

    Parameters as in :class:`~dlbook.transformer.MultiheadAttention`, as two
    linear maps: ``in_proj (d, 3d)`` and ``out_proj (d, d)``. Shapes: ``x
    (B, T, d)`` -> ``(B, T, d)`` and, on request, weights ``(B, h, T, S)``.
    """

    def __init__(self, config: GPTConfig, causal: bool = True) -> None:
        super().__init__()
        d = config.d_model
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.causal, self.rotary = causal, config.positions == "rotary"
        self.in_proj = nn.Linear(d, 3 * d, bias=config.bias)
        self.out_proj = nn.Linear(d, d, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None,
                layer: int = 0, need_weights: bool = False):
        B, T, _ = x.shape
        q, k, v = (t.unflatten(-1, (self.n_head, self.head_dim)).transpose(1, 2)
                   for t in self.in_proj(x).chunk(3, dim=-1))
        has_past = cache is not None and len(cache.layers) > layer
        past = cache.layers[layer][0].shape[-2] if has_past else 0
        if self.rotary:
            pos = torch.arange(past, past + T, device=x.device)
            q, k = apply_rotary(q, pos), apply_rotary(k, pos)
        if cache is not None:
            if has_past:
                k_old, v_old = cache.layers[layer]
                k, v = torch.cat([k_old, k], -2), torch.cat([v_old, v], -2)
                cache.layers[layer] = (k, v)
            else:
                cache.layers.append((k, v))
        mask = (causal_mask(T, k.shape[-2], offset=past, device=x.device)
                if self.causal else None)
        w = attention_weights(q, k, mask)                  # (B, h, T, S)
        y = (self.drop(w) @ v).transpose(1, 2).flatten(-2)
        return self.drop(self.out_proj(y)), (w if need_weights else None)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``.

    The MLP is ``Linear(d, 4d) -> GELU -> Linear(4d, d)``. Shapes: ``(B, T,
    d)`` -> ``(B, T, d)``.
    """

    def __init__(self, config: GPTConfig, causal: bool = True) -> None:
        super().__init__()
        d, d_ff = config.d_model, config.mlp_ratio * config.d_model
        self.ln_1 = nn.LayerNorm(d)
        self.attn = SelfAttention(config, causal)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, d_ff, bias=config.bias), nn.GELU(),
                                 nn.Linear(d_ff, d, bias=config.bias),
                                 nn.Dropout(config.dropout))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None,
                layer: int = 0, need_weights: bool = False):
        a, w = self.attn(self.ln_1(x), cache, layer, need_weights)
        x = x + a                                          # eq. (block)
        return x + self.mlp(self.ln_2(x)), w


class _Backbone(nn.Module):
    """Embeddings, blocks and the final norm shared by GPT and Encoder."""

    def __init__(self, config: GPTConfig, causal: bool,
                 generator: torch.Generator | None) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.wte = nn.Embedding(config.vocab_size, d)
        if config.positions == "learned":
            self.wpe = nn.Embedding(config.context, d)
        elif config.positions == "sinusoidal":
            self.register_buffer("pe", sinusoidal_encoding(config.context, d),
                                 persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, causal)
                                    for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight
        self._init_weights(generator)

    def _init_weights(self, generator: torch.Generator | None) -> None:
        """GPT-2's scheme: N(0, 0.02) weights, zero biases, and residual output
        projections scaled by ``1 / sqrt(2 n_layer)``."""
        proj_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() < 2:
                    p.zero_() if name.endswith("bias") else p.fill_(1.0)
                    continue
                std = proj_std if name.endswith(("out_proj.weight", "mlp.2.weight")) \
                    else 0.02
                p.normal_(0.0, std, generator=generator)

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None,
               need_weights: bool = False):
        """Final hidden states ``(B, T, d)`` and per-layer attention weights."""
        if idx.dim() != 2 or idx.dtype != torch.int64:
            raise ValueError(f"idx must be int64 of shape (B, T), got "
                             f"{idx.dtype} {tuple(idx.shape)}")
        past = 0 if cache is None else cache.length
        T = idx.shape[1]
        if past + T > self.config.context:
            raise ValueError(f"sequence of length {past + T} exceeds the context "
                             f"{self.config.context}")
        x = self.wte(idx)
        pos = torch.arange(past, past + T, device=idx.device)
        if self.config.positions == "learned":
            x = x + self.wpe(pos)
        elif self.config.positions == "sinusoidal":
            x = x + self.pe[pos]
        x = self.drop(x)
        maps = []
        for i, block in enumerate(self.blocks):
            x, w = block(x, cache, i, need_weights)
            maps.append(w)
        return self.ln_f(x), maps

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None,
                return_attention: bool = False):
        h, maps = self.hidden(idx, cache, return_attention)
        logits = self.lm_head(h)
        return (logits, maps) if return_attention else logits


class GPT(_Backbone):
    """A decoder-only (causal) transformer language model.

    ``GPT(config, generator=...)``; ``model(idx)`` returns next-token logits
    ``(B, T, vocab_size)`` for ``idx (B, T)`` int64; with a :class:`KVCache`
    the new tokens attend to the cached ones as well, and the cache grows.
    ``return_attention=True`` also returns the weights ``(B, h, T, S)`` of
    every layer.
    """

    def __init__(self, config: GPTConfig, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(config, causal=True, generator=generator)


class Encoder(_Backbone):
    """The same stack without the causal mask: every token sees every token.

    ``model(idx)`` returns per-position logits ``(B, T, vocab_size)``: a
    sequence tagger, used for the algorithmic tasks (copy, reverse).
    """

    def __init__(self, config: GPTConfig, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(config, causal=False, generator=generator)


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None,
            generator: torch.Generator | None) -> torch.Tensor:
    """One token per row from ``logits (B, V)``; temperature 0 is arg-max."""
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


@torch.no_grad()
def generate(model: GPT, idx: torch.Tensor, max_new_tokens: int,
             temperature: float = 1.0, top_k: int | None = None,
             generator: torch.Generator | None = None, use_cache: bool = True
             ) -> torch.Tensor:
    """Extend ``idx (B, T0)`` by ``max_new_tokens`` sampled tokens.

    Each step samples from ``softmax(logits / temperature)`` of the last
    position (restricted to the ``top_k`` largest logits if given;
    ``temperature=0`` takes the arg-max), the model reading at most its last
    ``context`` tokens. With ``use_cache`` the keys and values of past tokens
    are kept (:class:`KVCache`), so each step processes one new token; when
    the sequence outgrows the context the window slides and the cache is
    rebuilt, so the outputs equal the uncached ones. Returns ``(B, T0 +
    max_new_tokens)``.
    """
    if temperature < 0 or max_new_tokens < 0:
        raise ValueError(f"need temperature >= 0 and max_new_tokens >= 0, got "
                         f"{temperature}, {max_new_tokens}")
    if idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"idx must have shape (B, T0) with T0 >= 1, got "
                         f"{tuple(idx.shape)}")
    was_training = model.training
    model.eval()
    n_ctx, cache = model.config.context, None
    for _ in range(max_new_tokens):
        if not use_cache:
            logits = model(idx[:, -n_ctx:])
        elif cache is not None and cache.length < n_ctx:
            logits = model(idx[:, -1:], cache)             # one new token
        else:                                              # (re)fill the cache
            cache = KVCache()
            logits = model(idx[:, -n_ctx:], cache)
        nxt = _sample(logits[:, -1], temperature, top_k, generator)
        idx = torch.cat([idx, nxt], dim=1)
    model.train(was_training)
    return idx
