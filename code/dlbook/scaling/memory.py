"""Memory of the model states under data, tensor, pipeline and sharded parallelism.

Chapter: scaling. Mixed-precision Adam keeps, per parameter, a 16-bit copy
of the weights (2 bytes) and of the gradient (2 bytes) and 12 bytes of
optimizer state in 32 bits: the master weights, Adam's first and second
moments (Rajbhandari et al. 2020, K = 12). This module counts those 16
bytes per device. ``saved_activation_bytes`` measures the other large term,
the activations autograd keeps for the backward pass, on a real model, and
``transformer_activation_bytes`` extrapolates a per-layer count to large
transformers; buffers and fragmentation come on top.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["MixedPrecisionAdam", "model_state_bytes", "memory_table",
           "saved_activation_bytes", "transformer_activation_bytes"]


@dataclass(frozen=True)
class MixedPrecisionAdam:
    """Bytes per parameter: ``weights`` (fp16/bf16), ``grads`` (fp16/bf16)
    and ``optimizer`` (fp32 master weights, momentum, variance)."""
    weights: int = 2
    grads: int = 2
    optimizer: int = 12

    @property
    def total(self) -> int:
        return self.weights + self.grads + self.optimizer


def model_state_bytes(n_params: float, *, dp: int = 1, tp: int = 1, pp: int = 1,
                      zero: int = 0,
                      states: MixedPrecisionAdam = MixedPrecisionAdam()) -> float:
    """Bytes of model states on one device when ``n_params`` parameters are
    split ``tp`` ways by tensor parallelism and ``pp`` ways by pipeline
    stages (each device holds ``n_params / (tp pp)``), and replicated over
    ``dp`` data-parallel ranks, of which ZeRO stage ``zero`` shards the
    optimizer state (1), also the gradients (2), also the weights (3, what
    FSDP's full sharding does) ``dp`` ways."""
    if n_params <= 0 or min(dp, tp, pp) < 1:
        raise ValueError(f"need n_params > 0 and dp, tp, pp >= 1, got "
                         f"{n_params}, {dp}, {tp}, {pp}")
    if zero not in (0, 1, 2, 3):
        raise ValueError(f"zero must be 0, 1, 2 or 3, got {zero}")
    psi = n_params / (tp * pp)
    w = states.weights / (dp if zero >= 3 else 1)
    g = states.grads / (dp if zero >= 2 else 1)
    o = states.optimizer / (dp if zero >= 1 else 1)
    return psi * (w + g + o)


def memory_table(models: dict[str, float], layouts: dict[str, dict]
                 ) -> dict[str, dict[str, float]]:
    """``table[layout][model]`` = GB (1e9 bytes) of model states per device,
    for each ``layouts[name]`` of keyword arguments of
    :func:`model_state_bytes`."""
    return {lay: {m: model_state_bytes(n, **kw) / 1e9 for m, n in models.items()}
            for lay, kw in layouts.items()}


def saved_activation_bytes(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves for the backward pass in one forward
    of ``model(*inputs)``, counted once per storage (a tensor saved by two
    operations is stored once) and without the parameters, which are model
    states. This is what training keeps in memory between forward and
    backward, the activations."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(*inputs)
    del out
    return sum(seen.values())


def transformer_activation_bytes(seq: int, batch: int, d_model: int, n_head: int,
                                 n_layer: int, c_lin: float, c_att: float,
                                 bytes_per_value: int = 2) -> float:
    """Activation bytes of a transformer whose every layer saves ``c_lin``
    values per token and model dimension and ``c_att`` values per entry of
    each head's ``seq x seq`` attention matrix:
    ``n_layer * batch * seq * d_model * (c_lin + c_att * n_head * seq /
    d_model) * bytes_per_value``."""
    if min(seq, batch, d_model, n_head, n_layer) < 1:
        raise ValueError("seq, batch, d_model, n_head and n_layer must be >= 1")
    per_token = d_model * (c_lin + c_att * n_head * seq / d_model)
    return n_layer * batch * seq * per_token * bytes_per_value
