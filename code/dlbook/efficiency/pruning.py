"""Pruning: magnitude and random masks, the lottery ticket, structure.

Chapter: efficiency. Masks are dictionaries from a module's name to a 0/1
tensor of its weight's shape, applied with PyTorch's own
``torch.nn.utils.prune.custom_from_mask`` so that a masked model trains
through ``fit`` with its pruned weights held at zero.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import prune

__all__ = ["prunable", "magnitude_masks", "random_masks", "apply_masks",
           "remove_masks", "weight_sparsity", "iterative_magnitude_pruning",
           "structured_prune"]

Masks = dict[str, torch.Tensor]


def prunable(model: nn.Module) -> dict[str, nn.Module]:
    """The ``nn.Linear`` and ``nn.Conv2d`` modules of ``model`` by name."""
    return {n: m for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))}


def _weight(m: nn.Module) -> torch.Tensor:
    # a masked module keeps its free weights in weight_orig
    return m.weight_orig if hasattr(m, "weight_orig") else m.weight


def _check_sparsity(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")


def magnitude_masks(model: nn.Module, sparsity: float, *,
                    previous: Masks | None = None) -> Masks:
    """Layer-wise magnitude masks: in each prunable layer keep the
    ``1 - sparsity`` fraction of weights of largest magnitude, among those
    that ``previous`` (if given) keeps; ``sparsity`` is the final fraction
    of zeros in each layer."""
    _check_sparsity(sparsity)
    masks = {}
    for name, m in prunable(model).items():
        w = _weight(m).detach().abs()
        alive = previous[name].bool() if previous else torch.ones_like(w, dtype=bool)
        keep = max(1, round((1 - sparsity) * w.numel()))
        keep = min(keep, int(alive.sum()))
        score = torch.where(alive, w, torch.full_like(w, -1.0)).flatten()
        mask = torch.zeros(w.numel())
        mask[torch.topk(score, keep).indices] = 1.0
        masks[name] = mask.reshape(w.shape)
    return masks


def random_masks(model: nn.Module, sparsity: float, *,
                 generator: torch.Generator) -> Masks:
    """Masks keeping, in each prunable layer, as many weights as
    :func:`magnitude_masks` would, chosen uniformly at random."""
    _check_sparsity(sparsity)
    masks = {}
    for name, m in prunable(model).items():
        w = _weight(m)
        keep = max(1, round((1 - sparsity) * w.numel()))
        mask = torch.zeros(w.numel())
        mask[torch.randperm(w.numel(), generator=generator)[:keep]] = 1.0
        masks[name] = mask.reshape(w.shape)
    return masks


def apply_masks(model: nn.Module, masks: Masks) -> nn.Module:
    """Mask ``model`` in place: ``weight = weight_orig * mask`` in every
    forward pass, so pruned weights stay zero and get no gradient. Build
    the optimizer after this call (the parameter is now ``weight_orig``)."""
    mods = prunable(model)
    missing = set(masks) - set(mods)
    if missing:
        raise KeyError(f"masks name modules the model lacks: {sorted(missing)}")
    for name, mask in masks.items():
        if hasattr(mods[name], "weight_orig"):
            prune.remove(mods[name], "weight")
        prune.custom_from_mask(mods[name], "weight", mask)
    return model


def remove_masks(model: nn.Module) -> nn.Module:
    """Make the masks permanent: plain ``weight`` parameters with zeros."""
    for m in prunable(model).values():
        if hasattr(m, "weight_orig"):
            prune.remove(m, "weight")
    return model


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of zeros among the weights of the prunable layers."""
    ws = [m.weight.detach() for m in prunable(model).values()]
    zeros = sum(int((w == 0).sum()) for w in ws)
    return zeros / sum(w.numel() for w in ws)


def iterative_magnitude_pruning(
    init_state: dict[str, torch.Tensor], make_model: Callable[[], nn.Module],
    train: Callable[[nn.Module], None], *, rounds: int, rate: float,
) -> list[tuple[float, Masks | None, nn.Module]]:
    """Iterative magnitude pruning with rewinding (Frankle and Carbin 2019;
    Frankle et al. 2020).

    Round ``i = 0..rounds`` loads ``init_state`` (the weights at
    initialization, or at the rewind point) into ``make_model()`` under the
    current mask, runs ``train(model)``, then prunes the fraction ``rate``
    of each layer's surviving weights by magnitude for the next round.
    Returns ``(sparsity, masks, trained_model)`` per round; round 0 is
    dense (``masks=None``) and the others are the tickets.
    """
    if rounds < 1 or not 0 < rate < 1:
        raise ValueError(f"need rounds >= 1 and 0 < rate < 1, got {rounds}, {rate}")
    masks, out, density = None, [], 1.0
    for i in range(rounds + 1):
        model = make_model()
        model.load_state_dict(init_state)
        if masks is not None:
            apply_masks(model, masks)
        train(model)
        out.append((1 - density, masks, model))
        if i < rounds:
            density *= 1 - rate
            masks = magnitude_masks(model, 1 - density, previous=masks)
    return out


def structured_prune(model: nn.Sequential, keep: float) -> nn.Sequential:
    """Remove hidden units of a Sequential of Linear layers and element-wise
    activations: in each hidden Linear keep the ``keep`` fraction of output
    units whose incoming weight rows have the largest L2 norm, and drop the
    matching columns of the next Linear. The result is a smaller dense
    network (structured pruning)."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    layers = copy.deepcopy(list(model))
    lin = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    if len(lin) < 2:
        raise ValueError("structured_prune needs at least two Linear layers")
    for a, b in zip(lin[:-1], lin[1:]):
        A, B = layers[a], layers[b]
        k = max(1, round(keep * A.out_features))
        idx = torch.topk(A.weight.detach().norm(dim=1), k).indices.sort().values
        newA = nn.Linear(A.in_features, k, A.bias is not None)
        newB = nn.Linear(k, B.out_features, B.bias is not None)
        with torch.no_grad():
            newA.weight.copy_(A.weight[idx])
            if A.bias is not None:
                newA.bias.copy_(A.bias[idx])
            newB.weight.copy_(B.weight[:, idx])
            if B.bias is not None:
                newB.bias.copy_(B.bias)
        layers[a], layers[b] = newA, newB
    return nn.Sequential(*layers)
