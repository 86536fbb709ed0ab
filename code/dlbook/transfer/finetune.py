"""Transfer by reusing a pretrained network (chapter transfer-models): task
families carved out of a labelled set, few-shot subsets, the split of a
network into body and head, and the three adaptations compared in the
chapter: linear probing, full finetuning, and linear probing then finetuning
(LP-FT)."""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from dlbook.train import History, accuracy, fit

__all__ = ["class_subset", "few_shot", "split_head", "features",
           "linear_probe", "full_finetune", "lp_ft", "feature_change",
           "orthogonal_part"]

F = nn.functional


def class_subset(X: torch.Tensor, y: torch.Tensor, classes: Sequence[int]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples whose label is in ``classes``, relabelled ``0..k-1`` in
    the order of ``classes``. Shapes: ``X (N, *)``, ``y (N,)``."""
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} != {len(y)}")
    classes = list(classes)
    if len(set(classes)) != len(classes) or not classes:
        raise ValueError(f"classes must be distinct and non-empty: {classes}")
    lookup = torch.full((int(max(classes)) + 1,), -1, dtype=torch.int64)
    lookup[torch.tensor(classes)] = torch.arange(len(classes))
    keep = (y <= max(classes)) & (lookup[y.clamp(max=max(classes))] >= 0)
    return X[keep], lookup[y[keep]]


def few_shot(X: torch.Tensor, y: torch.Tensor, per_class: int, *,
             generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` examples of every class present in ``y``, drawn without
    replacement with ``generator``. Shapes: ``X (N, *)``, ``y (N,)``."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    picks = []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {int(c)} has {len(idx)} < {per_class}")
        picks.append(idx[torch.randperm(len(idx), generator=generator)
                         [:per_class]])
    idx = torch.cat(picks)
    return X[idx], y[idx]


def split_head(model: nn.Sequential) -> tuple[nn.Sequential, nn.Linear]:
    """``(body, head)``: every module but the last, and the last, which
    must be an ``nn.Linear``. Copies, so the pretrained model is kept."""
    if not isinstance(model, nn.Sequential) or not isinstance(model[-1],
                                                              nn.Linear):
        raise ValueError("model must be an nn.Sequential ending in nn.Linear")
    model = copy.deepcopy(model)
    return model[:-1], model[-1]


@torch.no_grad()
def features(body: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """The representation ``phi(x)`` of each row, in eval mode.
    Shape: ``(N, d) -> (N, k)``."""
    was = body.training
    body.eval()
    out = body(X)
    body.train(was)
    return out


def linear_probe(body: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                 num_classes: int, *, epochs: int = 200, lr: float = 0.05,
                 weight_decay: float = 1e-3,
                 generator: torch.Generator | None = None) -> nn.Linear:
    """A new linear head trained on the frozen features ``phi(X)``:
    multinomial logistic regression, full batch, Adam with L2 penalty.
    Returns the head ``nn.Linear(k, num_classes)``."""
    phi = features(body, train[0])
    head = nn.Linear(phi.shape[1], num_classes, dtype=phi.dtype)
    if generator is not None:
        bound = phi.shape[1] ** -0.5
        with torch.no_grad():
            head.weight.uniform_(-bound, bound, generator=generator)
            head.bias.zero_()
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    fit(head, F.cross_entropy, opt, (phi, train[1]), epochs=epochs)
    return head


def full_finetune(body: nn.Module, head: nn.Module,
                  train: tuple[torch.Tensor, torch.Tensor], *,
                  epochs: int = 100, lr: float = 0.05, momentum: float = 0.9,
                  val: tuple[torch.Tensor, torch.Tensor] | None = None
                  ) -> tuple[nn.Sequential, History]:
    """Train ``Sequential(body, head)`` end to end on ``train``, full batch,
    SGD with momentum and no weight decay (so that the first layer moves
    only in the span of the training inputs, thm-transfer-models-span).
    Copies its arguments. Returns the model and its history."""
    model = nn.Sequential(copy.deepcopy(body), copy.deepcopy(head))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    hist = fit(model, F.cross_entropy, opt, train, epochs=epochs, val=val,
               metrics={"acc": accuracy})
    return model, hist


def lp_ft(body: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
          num_classes: int, *, probe_epochs: int = 200, epochs: int = 100,
          lr: float = 0.05, generator: torch.Generator | None = None
          ) -> tuple[nn.Sequential, History]:
    """Linear probing, then finetuning from the probed head (LP-FT):
    :func:`linear_probe` followed by :func:`full_finetune` from its head.
    Returns the model and the finetuning history."""
    head = linear_probe(body, train, num_classes, epochs=probe_epochs,
                        generator=generator)
    return full_finetune(body, head, train, epochs=epochs, lr=lr)


@torch.no_grad()
def feature_change(body0: nn.Module, body1: nn.Module,
                   X: torch.Tensor) -> float:
    """``mean_i ||phi_1(x_i) - phi_0(x_i)|| / mean_i ||phi_0(x_i)||``: how far
    adaptation moved the representation of the inputs ``X (N, d)``."""
    a, b = features(body0, X), features(body1, X)
    return ((b - a).norm(dim=1).mean() / a.norm(dim=1).mean()).item()


def orthogonal_part(X: torch.Tensor, span: torch.Tensor,
                    rtol: float = 1e-6) -> torch.Tensor:
    """The component of each row of ``X`` orthogonal to the row space of
    ``span``: ``X (I - P)`` with ``P`` the projector onto that space.
    Shapes: ``X (N, d)``, ``span (n, d)`` -> ``(N, d)``."""
    if X.shape[1] != span.shape[1]:
        raise ValueError(f"X has {X.shape[1]} columns, span {span.shape[1]}")
    _, s, vh = torch.linalg.svd(span, full_matrices=False)
    basis = vh[s > rtol * s.max()]
    return X - (X @ basis.T) @ basis
