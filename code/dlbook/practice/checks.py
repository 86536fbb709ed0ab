"""The checklist of the practice chapter as small, testable functions.

Each function is one item of the workflow: the loss at initialization, the
overfitting of one batch, a gradient check of a module, confidence intervals
over seeds, duplicates across splits, and the size of the updates.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from scipy import stats
from torch import nn

from dlbook.train import History, evaluate, fit

__all__ = ["initial_loss", "predicted_initial_loss", "overfit_batch",
           "module_gradcheck", "t_interval", "cross_split_duplicates",
           "UpdateRatio"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def initial_loss(model: nn.Module, loss_fn: Loss,
                 data: tuple[torch.Tensor, torch.Tensor]) -> float:
    """The loss of the untrained ``model`` on ``data`` (eval mode)."""
    return evaluate(model, loss_fn, data)["loss"]


@torch.no_grad()
def predicted_initial_loss(logits: torch.Tensor) -> float:
    """``ln C + mean_i Var_c(z_i) / 2``: the second-order expansion of the
    cross-entropy at logits ``z`` for labels independent of them.

    ``Var_c`` is the (biased) variance of one row over its ``C`` classes.
    Shape: ``logits (N, C)``.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, C), got {tuple(logits.shape)}")
    c = logits.shape[1]
    return math.log(c) + 0.5 * logits.var(dim=1, unbiased=False).mean().item()


def overfit_batch(model: nn.Module, loss_fn: Loss,
                  batch: tuple[torch.Tensor, torch.Tensor], *, steps: int = 300,
                  lr: float = 1e-2) -> History:
    """Train on one fixed batch with Adam, full batch, ``steps`` steps.

    A correct model and loss drive the training loss towards zero; the
    history's ``train_loss`` is the curve to look at.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return fit(model, loss_fn, opt, batch, epochs=steps)


def module_gradcheck(module: nn.Module, x: torch.Tensor, *, eps: float = 1e-6,
                     atol: float = 1e-5, rtol: float = 1e-3) -> bool:
    """``torch.autograd.gradcheck`` of ``module`` in float64, with respect to
    its input and every parameter. Returns True or raises on a mismatch
    (``GradcheckError`` names the first bad entry)."""
    params = dict(module.named_parameters())
    names = list(params)
    module = module.double()
    inputs = [x.detach().double().requires_grad_()]
    inputs += [params[n].detach().double().requires_grad_() for n in names]

    def f(x_, *ps):
        return torch.func.functional_call(module, dict(zip(names, ps)), (x_,))

    return torch.autograd.gradcheck(f, tuple(inputs), eps=eps, atol=atol,
                                    rtol=rtol)


def t_interval(values: Sequence[float], level: float = 0.95
               ) -> tuple[float, float]:
    """``(mean, half_width)`` of the Student-t confidence interval for the
    mean of independent runs: ``half = t_{(1+level)/2, n-1} s / sqrt(n)``."""
    v = torch.as_tensor(list(values), dtype=torch.float64)
    if len(v) < 2:
        raise ValueError(f"need at least two values, got {len(v)}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    t = stats.t.ppf((1 + level) / 2, df=len(v) - 1)
    return v.mean().item(), float(t * v.std(unbiased=True).item() / math.sqrt(len(v)))


def cross_split_duplicates(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many rows of ``b`` equal some row of ``a`` exactly.
    Shapes: ``a (N, D)``, ``b (M, D)``."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (N, D) and (M, D), got {tuple(a.shape)}, "
                         f"{tuple(b.shape)}")
    seen = {tuple(row) for row in a.tolist()}
    return sum(tuple(row) in seen for row in b.tolist())


class UpdateRatio:
    """A :func:`dlbook.train.fit` callback: the relative change of each
    weight matrix over an epoch, ``||W_t - W_{t-1}|| / ||W_{t-1}||``.

    Adds ``update_ratio`` (the median over layers) to each epoch's record;
    ``self.ratios`` keeps one list per layer.
    """

    def __init__(self, model: nn.Module) -> None:
        self.weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
        if not self.weights:
            raise ValueError("model has no nn.Linear layer")
        self.previous = [w.detach().clone() for w in self.weights]
        self.ratios: list[list[float]] = [[] for _ in self.weights]

    def __call__(self, model: nn.Module, record: dict[str, float]) -> None:
        now = []
        for i, (w, old) in enumerate(zip(self.weights, self.previous)):
            r = ((w.detach() - old).norm() / old.norm().clamp_min(1e-12)).item()
            self.ratios[i].append(r)
            now.append(r)
            self.previous[i] = w.detach().clone()
        record["update_ratio"] = float(torch.tensor(now).median())
