"""Uniform quantization of weights: post-training, quantization-aware, int8.

Chapter: efficiency. ``quantize`` is the symmetric uniform quantizer with
a scale set by the largest magnitude (per tensor or per output channel);
``QuantLinear`` trains through it with the straight-through estimator;
``dynamic_int8`` wraps PyTorch's own dynamic int8 quantization.
"""
from __future__ import annotations

import copy
import io
import warnings

import torch
from torch import nn

__all__ = ["quantization_step", "quantize", "quantize_weights",
           "fake_quantize_ste", "QuantLinear", "to_qat", "dynamic_int8",
           "serialized_size"]


def quantization_step(x: torch.Tensor, bits: int, *,
                      per_channel: bool = False) -> torch.Tensor:
    """Step ``Delta = max|x| / (2^(bits-1) - 1)`` of the symmetric quantizer.

    Per tensor: a scalar tensor. ``per_channel=True``: one step per row
    (output channel), shape ``(C, 1, ..., 1)`` for ``x`` of shape
    ``(C, ...)``. Zero rows get step 1 (they quantize to zero anyway).
    """
    if not isinstance(bits, int) or bits < 2:
        raise ValueError(f"bits must be an integer >= 2, got {bits!r}")
    q_max = 2 ** (bits - 1) - 1
    if per_channel:
        if x.dim() < 2:
            raise ValueError(f"per_channel needs x.dim() >= 2, got {x.dim()}")
        m = x.detach().abs().flatten(1).amax(1)
        m = m.reshape(-1, *([1] * (x.dim() - 1)))
    else:
        m = x.detach().abs().max()
    return torch.where(m > 0, m / q_max, torch.ones_like(m))


def quantize(x: torch.Tensor, bits: int, *,
             per_channel: bool = False) -> torch.Tensor:
    """Symmetric uniform quantization, returned dequantized (same shape).

    ``Q(x) = Delta * clamp(round(x / Delta), -q_max, q_max)`` with ``q_max =
    2^(bits-1) - 1`` levels on each side of zero and the step of
    :func:`quantization_step`; no value is clipped because the step is set
    by the largest magnitude.
    """
    delta = quantization_step(x, bits, per_channel=per_channel)
    q_max = 2 ** (bits - 1) - 1
    return delta * torch.clamp(torch.round(x / delta), -q_max, q_max)


def _quantizable(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def quantize_weights(model: nn.Module, bits: int, *,
                     per_channel: bool = False) -> nn.Module:
    """A copy of ``model`` whose Linear and Conv2d weights (not biases) are
    replaced by their quantized values: post-training quantization."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for m in _quantizable(model):
            m.weight.copy_(quantize(m.weight, bits, per_channel=per_channel))
    return model


def fake_quantize_ste(x: torch.Tensor, bits: int, *,
                      per_channel: bool = False) -> torch.Tensor:
    """``quantize(x)`` in the forward pass, the identity in the backward pass
    (straight-through estimator, Bengio, Leonard and Courville 2013)."""
    return x + (quantize(x, bits, per_channel=per_channel) - x).detach()


class QuantLinear(nn.Linear):
    """``nn.Linear`` whose weight is quantized to ``bits`` in every forward
    pass, trained with the straight-through estimator. Float weights are
    kept as the master copy. Shape: ``(*, in_features) -> (*, out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 *, bits: int = 4, per_channel: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        quantization_step(torch.ones(1, 1), bits)  # validates bits
        self.bits, self.per_channel = bits, per_channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = fake_quantize_ste(self.weight, self.bits, per_channel=self.per_channel)
        return nn.functional.linear(x, w, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}"


def to_qat(model: nn.Module, bits: int, *, per_channel: bool = True) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` replaced by a
    :class:`QuantLinear` holding the same weights."""
    model = copy.deepcopy(model)
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            q = QuantLinear(child.in_features, child.out_features,
                            child.bias is not None, bits=bits,
                            per_channel=per_channel)
            q.load_state_dict(child.state_dict())
            setattr(model, name, q)
        else:
            setattr(model, name, to_qat(child, bits, per_channel=per_channel))
    return model


def dynamic_int8(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """PyTorch's dynamic int8 quantization of the ``nn.Linear`` layers
    (``torch.ao.quantization.quantize_dynamic``): int8 weights, activations
    quantized on the fly. Returns the quantized copy and the messages of the
    warnings PyTorch raised (the API is deprecated in favour of torchao)."""
    if isinstance(model, nn.Linear):  # quantize_dynamic swaps children only
        raise ValueError("dynamic_int8 quantizes the submodules of model; wrap "
                         "a bare nn.Linear in nn.Sequential")
    from torch.ao.quantization import quantize_dynamic
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return q, messages


def serialized_size(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the size on disk."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes
