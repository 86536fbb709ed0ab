"""Meta-learning (chapter transfer-data): the sinusoid task family of Finn et
al. (2017), MAML and first-order MAML with tasks batched by ``torch.func``
(``functional_call``, ``grad``, ``vmap``), and adaptation by a few gradient
steps, used for MAML and for the pretrained baseline alike."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

__all__ = ["sinusoid_tasks", "MAMLConfig", "adapt", "maml_train",
           "adapted_mse", "pretrain_all_tasks"]


def sinusoid_tasks(n_tasks: int, k: int, *, generator: torch.Generator | None = None,
                   amplitude=(0.1, 5.0), phase=(0.0, math.pi), x_range=(-5.0, 5.0)):
    """Tasks ``y = A sin(x - b)`` with ``A``, ``b`` uniform (Finn et al. 2017)
    and ``k`` support and ``k`` query points each, ``x`` uniform.
    Returns ``(x_s, y_s, x_q, y_q)``, each ``(n_tasks, k, 1)``."""
    if n_tasks < 1 or k < 1:
        raise ValueError(f"n_tasks and k must be >= 1, got {n_tasks}, {k}")
    u = lambda *s: torch.rand(*s, generator=generator)
    A = amplitude[0] + (amplitude[1] - amplitude[0]) * u(n_tasks, 1, 1)
    b = phase[0] + (phase[1] - phase[0]) * u(n_tasks, 1, 1)
    x = x_range[0] + (x_range[1] - x_range[0]) * u(n_tasks, 2 * k, 1)
    y = A * torch.sin(x - b)
    return x[:, :k], y[:, :k], x[:, k:], y[:, k:]


@dataclass(frozen=True)
class MAMLConfig:
    """MAML hyperparameters; ``first_order`` drops the second-order term."""
    inner_lr: float = 0.01
    inner_steps: int = 1
    outer_lr: float = 1e-3
    meta_batch: int = 25
    iterations: int = 1000
    k: int = 10
    first_order: bool = False


def _mse(model: nn.Module, params: dict, x: torch.Tensor, y: torch.Tensor):
    return ((functional_call(model, params, (x,)) - y) ** 2).mean()


def adapt(model: nn.Module, params: dict, x: torch.Tensor, y: torch.Tensor,
          lr: float, steps: int, first_order: bool = False) -> dict:
    """``steps`` gradient steps ``theta <- theta - lr grad L_support(theta)`` on
    one task, differentiable in ``params`` unless ``first_order``.
    Shapes: ``x, y (k, 1)``; ``params`` a dict of the model's tensors."""
    g = grad(lambda p: _mse(model, p, x, y))
    for _ in range(steps):
        step = g(params)
        if first_order:
            step = {n: s.detach() for n, s in step.items()}
        params = {n: p - lr * step[n] for n, p in params.items()}
    return params


def maml_train(model: nn.Module, config: MAMLConfig, *,
               generator: torch.Generator | None = None) -> list[float]:
    """Meta-train ``model`` in place by MAML (Finn et al. 2017): the outer
    loss is the query MSE after ``inner_steps`` adaptation steps, averaged
    over a ``vmap``-ped batch of tasks, minimized by Adam. Written out rather
    than through ``fit`` because the loss is a function of an inner
    optimization. Returns the outer loss per iteration."""
    opt = torch.optim.Adam(model.parameters(), lr=config.outer_lr)
    def task_loss(params, xs, ys, xq, yq):
        fast = adapt(model, params, xs, ys, config.inner_lr, config.inner_steps,
                     config.first_order)
        return _mse(model, fast, xq, yq)
    batched = vmap(task_loss, in_dims=(None, 0, 0, 0, 0))
    hist = []
    for _ in range(config.iterations):
        tasks = sinusoid_tasks(config.meta_batch, config.k, generator=generator)
        params = dict(model.named_parameters())
        loss = batched(params, *tasks).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append(loss.item())
    return hist


def adapted_mse(model: nn.Module, tasks, lr: float, steps: int) -> torch.Tensor:
    """Query MSE per task ``(T,)`` after ``steps`` plain gradient steps of size
    ``lr`` on each task's support set (the test-time procedure of MAML, and
    the finetuning of the pretrained baseline)."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    def one(xs, ys, xq, yq):
        return _mse(model, adapt(model, params, xs, ys, lr, steps), xq, yq)
    return vmap(one)(*tasks).detach()


def pretrain_all_tasks(model: nn.Module, iterations: int, *, meta_batch: int = 25,
                       k: int = 10, lr: float = 1e-3,
                       generator: torch.Generator | None = None) -> list[float]:
    """The baseline of Finn et al.: regress on pooled points from freshly
    drawn tasks (no adaptation during training), Adam, in place."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    hist = []
    for _ in range(iterations):
        xs, ys, _, _ = sinusoid_tasks(meta_batch, k, generator=generator)
        loss = ((model(xs.reshape(-1, 1)) - ys.reshape(-1, 1)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append(loss.item())
    return hist
