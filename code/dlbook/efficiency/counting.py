"""Counting the cost of a model: FLOPs, parameters, activations, memory, time.

Chapter: efficiency. ``count_flops`` walks a model with forward hooks and
counts the multiply-adds of its linear and convolutional layers, in the
convention of :class:`torch.utils.flop_counter.FlopCounterMode` (one
multiply-add is two FLOPs, bias additions are not counted). The roofline
helpers time matrix products and a memory copy on this machine.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

__all__ = ["FlopCount", "count_flops", "count_activations", "memory_footprint",
           "ENERGY_45NM_PJ", "median_time", "matmul_throughput",
           "copy_bandwidth", "roofline"]

_COUNTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


@dataclass(frozen=True)
class FlopCount:
    """Result of :func:`count_flops`: ``total`` FLOPs of one forward pass,
    ``by_layer`` (module name to FLOPs) and ``uncounted``, the names of
    modules with parameters of their own that no rule covers, and of counted
    modules whose forward was never called (both counted as zero)."""

    total: int
    by_layer: dict[str, int] = field(default_factory=dict)
    uncounted: tuple[str, ...] = ()


def _layer_flops(m: nn.Module, out: torch.Tensor) -> int:
    """FLOPs of one counted module whose output is ``out``."""
    if isinstance(m, nn.Linear):
        # every output element is a dot product of length in_features
        return 2 * out.numel() * m.in_features
    # Conv: every output element sums (C_in / groups) * prod(kernel) products
    fan_in = m.weight[0].numel()
    return 2 * out.numel() * fan_in


def _run_hooked(model: nn.Module, example: torch.Tensor, hook,
                modules: list[nn.Module]) -> None:
    """Run ``model(example)`` without gradients with the forward ``hook`` on
    each of ``modules``, removing the hooks afterwards even on error."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()


def count_flops(model: nn.Module, example: torch.Tensor) -> FlopCount:
    """Forward FLOPs of ``model`` on the batch ``example``, by forward hooks.

    Counts ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` (2 FLOPs per
    multiply-add, biases and element-wise layers not counted), which is what
    ``FlopCounterMode`` counts for these layers. Shape: ``example`` is a full
    batch, e.g. ``(N, C, H, W)``; the count is for the whole batch.
    """
    if not isinstance(example, torch.Tensor):
        raise TypeError(f"example must be a tensor, got {type(example).__name__}")
    names = {m: n for n, m in model.named_modules()}
    by_layer: dict[str, int] = {}

    def hook(m, _inp, out):
        by_layer[names[m]] = by_layer.get(names[m], 0) + _layer_flops(m, out)

    _run_hooked(model, example, hook,
                [m for m in model.modules() if isinstance(m, _COUNTED)])
    # a module with parameters of its own that no rule covers (leaf or not,
    # e.g. the in-projection of nn.MultiheadAttention), or a counted module
    # whose forward never ran (its weight was used functionally)
    uncounted = tuple(
        n for n, m in model.named_modules()
        if (not isinstance(m, _COUNTED)
            and any(True for _ in m.parameters(recurse=False)))
        or (isinstance(m, _COUNTED) and n not in by_layer))
    return FlopCount(sum(by_layer.values()), by_layer, uncounted)


def count_activations(model: nn.Module, example: torch.Tensor) -> int:
    """Number of values output by the leaf modules of ``model`` on
    ``example``: roughly what training keeps in memory for the backward
    pass (an upper bound when in-place activations share storage)."""
    total = 0

    def hook(_m, _inp, out):
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel()

    _run_hooked(model, example, hook,
                [m for m in model.modules() if not list(m.children())])
    return total


def memory_footprint(model: nn.Module, example: torch.Tensor, *,
                     bytes_per_value: int = 4,
                     optimizer_states: int = 2) -> dict[str, int]:
    """Bytes needed to train ``model`` on the batch ``example``.

    ``weights``, ``gradients`` (one per weight), ``optimizer`` state
    (``optimizer_states`` values per weight: 2 for Adam, 1 for SGD with
    momentum, 0 for plain SGD) and ``activations`` (from
    :func:`count_activations`), all at ``bytes_per_value``; and ``total``.
    """
    if bytes_per_value < 1 or optimizer_states < 0:
        raise ValueError("bytes_per_value must be >= 1 and optimizer_states "
                         f">= 0, got {bytes_per_value}, {optimizer_states}")
    n = sum(p.numel() for p in model.parameters())
    out = {"weights": n * bytes_per_value, "gradients": n * bytes_per_value,
           "optimizer": optimizer_states * n * bytes_per_value,
           "activations": count_activations(model, example) * bytes_per_value}
    out["total"] = sum(out.values())
    return out


#: Energy per operation in picojoules at 45 nm and 0.9 V (Horowitz 2014).
#: DRAM is given there as a range, 1.3-2.6 nJ per 64 bits; this is its low end.
ENERGY_45NM_PJ: dict[str, float] = {
    "int8 add": 0.03, "int32 add": 0.1, "fp16 add": 0.4, "fp32 add": 0.9,
    "int8 mult": 0.2, "int32 mult": 3.1, "fp16 mult": 1.1, "fp32 mult": 3.7,
    "SRAM 8KB read (64 bit)": 10.0, "DRAM read (64 bit)": 1300.0,
}


def median_time(fn: Callable[[], object], repeats: int = 5,
                min_time: float = 2e-3) -> float:
    """Median over ``repeats`` trials of the seconds one call of ``fn``
    takes; each trial repeats ``fn`` until ``min_time`` seconds pass."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    fn()  # warm-up: allocation, caches
    trials = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        trials.append(elapsed / calls)
    trials.sort()
    return trials[len(trials) // 2]


def matmul_throughput(n: int, k: int, m: int, *, repeats: int = 5,
                      dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Measured FLOP/s of an ``(n, k) @ (k, m)`` product and its arithmetic
    intensity, ``2 n k m`` FLOPs over the ``(n k + k m + n m)`` values read
    and written once (the best case, in FLOPs per byte)."""
    if min(n, k, m) < 1:
        raise ValueError(f"sizes must be >= 1, got {(n, k, m)}")
    g = torch.Generator().manual_seed(0)
    A = torch.randn(n, k, generator=g, dtype=dtype)
    B = torch.randn(k, m, generator=g, dtype=dtype)
    C = torch.empty(n, m, dtype=dtype)
    seconds = median_time(lambda: torch.mm(A, B, out=C), repeats)
    flops = 2 * n * k * m
    nbytes = (n * k + k * m + n * m) * A.element_size()
    return {"flops": flops, "seconds": seconds, "flop_per_s": flops / seconds,
            "intensity": flops / nbytes}


def copy_bandwidth(n_bytes: int = 1 << 26, *, repeats: int = 5) -> float:
    """Measured memory bandwidth in bytes/s: a copy of ``n_bytes`` reads and
    writes ``2 n_bytes``. Use a size well beyond the last-level cache."""
    n = n_bytes // 4
    if n < 1:
        raise ValueError(f"n_bytes must be >= 4, got {n_bytes}")
    src, dst = torch.ones(n), torch.empty(n)
    seconds = median_time(lambda: dst.copy_(src), repeats)
    return 2 * n * 4 / seconds


def roofline(intensity, peak: float, bandwidth: float):
    """Attainable FLOP/s ``min(peak, intensity * bandwidth)`` (Williams,
    Waterman and Patterson 2009); ``intensity`` in FLOPs per byte, a float
    or a tensor."""
    if peak <= 0 or bandwidth <= 0:
        raise ValueError(f"peak and bandwidth must be > 0, got {peak}, {bandwidth}")
    if isinstance(intensity, torch.Tensor):
        return torch.clamp(intensity * bandwidth, max=peak)
    return min(peak, intensity * bandwidth)

