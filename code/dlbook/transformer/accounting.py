"""Parameter and FLOP accounting for transformers.

Chapter: transformers. Closed-form counts for :class:`GPT` and for the
encoder-decoder of Vaswani et al. (2017), and a measured count of the
matrix-multiply FLOPs of a training step with
:class:`torch.utils.flop_counter.FlopCounterMode`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .gpt import GPT, GPTConfig

__all__ = ["gpt_parameter_counts", "training_flops_per_token",
           "measured_training_flops", "encoder_decoder_parameters"]


def gpt_parameter_counts(config: GPTConfig) -> dict[str, int]:
    """Parameters of ``GPT(config)`` by group, in closed form.

    ``blocks``: per layer ``12 d^2`` weights (``3d^2`` in, ``d^2`` out,
    ``8d^2`` MLP at ``mlp_ratio=4``) plus ``13 d`` biases and norm
    parameters; ``embedding``: ``V d`` tokens (+ ``T d`` learned positions);
    ``head``: ``V d`` unless tied; ``final_norm``: ``2 d``. ``matmul`` is
    the number of weights that multiply activations (blocks' matrices and
    the read-out), the ``N`` of the ``6 N`` rule.
    """
    d, L, V, r = config.d_model, config.n_layer, config.vocab_size, config.mlp_ratio
    b = 1 if config.bias else 0
    per_layer = (4 + 2 * r) * d * d + b * (4 + r) * d + b * d + 4 * d
    counts = {
        "embedding": V * d + (config.context * d
                              if config.positions == "learned" else 0),
        "blocks": L * per_layer,
        "final_norm": 2 * d,
        "head": 0 if config.tie_weights else V * d,
    }
    counts["total"] = sum(counts.values())
    counts["non_embedding"] = counts["blocks"] + counts["final_norm"]
    counts["matmul"] = L * (4 + 2 * r) * d * d + V * d
    return counts


def training_flops_per_token(config: GPTConfig, seq_len: int | None = None) -> int:
    """Matrix-multiply FLOPs of one training step, per token.

    Forward: ``2 N`` for the weight matrices (one multiply and one add per
    weight, ``N`` = ``gpt_parameter_counts(config)["matmul"]``) and ``4 L T
    d`` for the scores ``Q K^T`` and the mix ``A V`` over a sequence of
    ``T = seq_len`` tokens; backward: twice the forward. Total ``6 N + 12 L T
    d``. Norms, activations and the softmax are not matrix multiplies and
    are not counted.
    """
    T = config.context if seq_len is None else seq_len
    n = gpt_parameter_counts(config)["matmul"]
    return 6 * n + 12 * config.n_layer * T * config.d_model


def measured_training_flops(model: GPT, idx: torch.Tensor,
                            targets: torch.Tensor) -> dict[str, int]:
    """FLOPs that ``FlopCounterMode`` counts in one forward and backward pass
    of the cross-entropy loss. Returns ``{"forward", "total"}``."""
    with FlopCounterMode(display=False) as fwd:
        logits = model(idx)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    with FlopCounterMode(display=False) as bwd:
        loss.backward()
    f, b = fwd.get_total_flops(), bwd.get_total_flops()
    return {"forward": int(f), "total": int(f + b)}


def encoder_decoder_parameters(n_layer: int, d_model: int, d_ff: int,
                               vocab_size: int) -> dict[str, int]:
    """Parameters of the post-norm encoder-decoder transformer of Vaswani et
    al. (2017), with one embedding matrix shared by source, target and
    read-out. Encoder layer: self-attention (``4 d^2 + 4 d``), MLP (``2 d
    d_ff + d_ff + d``), two norms (``4 d``); decoder layer: two attentions,
    the MLP and three norms."""
    d = d_model
    attn, ffn, norm = 4 * d * d + 4 * d, 2 * d * d_ff + d_ff + d, 2 * d
    enc = n_layer * (attn + ffn + 2 * norm)
    dec = n_layer * (2 * attn + ffn + 3 * norm)
    emb = vocab_size * d
    return {"encoder": enc, "decoder": dec, "embedding": emb,
            "total": enc + dec + emb}
