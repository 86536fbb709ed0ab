"""First-order optimizers with the interface of :mod:`torch.optim` (chapter 3).

Each class here takes the same arguments as its :mod:`torch.optim` namesake
and, in float64, produces the same iterates to rounding error, so a reader can
swap one for the other. The update rules are written one parameter at a time,
in the notation of the chapter (``m`` first moment, ``v`` second moment,
``t`` step count); speed is not the point.

The module also holds the two measurements the chapter makes on stochastic
gradients: per-example gradients of a model and the variance of a
mini-batch gradient estimate.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW",
           "per_example_gradients", "minibatch_gradient_variance",
           "RegressionObjective", "sgd_paths"]

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad``.

    ``params`` is an iterable of tensors or of dicts ``{"params": [...],
    **overrides}`` (parameter groups, as in :mod:`torch.optim`). A subclass
    passes its hyper-parameters as ``defaults`` and implements
    :meth:`update`, which changes one parameter in place given its gradient.
    """

    def __init__(self, params: Params, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[torch.Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("params must not be empty")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group; hyper-parameters it leaves out take the defaults."""
        ps = group["params"]
        ps = [ps] if isinstance(ps, torch.Tensor) else list(ps)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in ps:
            if not isinstance(p, torch.Tensor) or not p.is_leaf:
                raise ValueError("params must be leaf tensors, got "
                                 f"{type(p).__name__}")
            if id(p) in seen:
                raise ValueError("a parameter appears in two parameter groups")
        self.param_groups.append({**self.defaults, **group, "params": ps})

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (``None``, or zero tensors if asked)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        """Update each parameter that has a gradient; return closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group.get("maximize", False) else p.grad
                self.update(p, grad, self.state.setdefault(p, {}), group)
        return loss

    def update(self, p: torch.Tensor, grad: torch.Tensor,
               state: dict[str, Any], group: dict[str, Any]) -> None:
        """Change ``p`` in place; ``grad`` is already negated if maximizing."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """State and groups, parameters replaced by their index (as torch)."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            ids = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append({**group, "params": ids})
        state = {index[id(p)]: {k: (v.clone() if torch.is_tensor(v) else v)
                                for k, v in s.items()}
                 for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, onto this optimizer's params."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"])
                for s, g in zip(saved, self.param_groups)):
            raise ValueError("state_dict has a different parameter-group layout")
        params = [p for g in self.param_groups for p in g["params"]]
        for s, g in zip(saved, self.param_groups):
            g.update({k: v for k, v in s.items() if k != "params"})
        self.state = {params[i]: {k: (v.clone() if torch.is_tensor(v) else v)
                                  for k, v in s.items()}
                      for i, s in state_dict["state"].items()}

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({hyper})"


def _check(name: str, value: float, low: float = 0.0, high: float = math.inf,
           closed_high: bool = False) -> None:
    ok = low <= value <= high if closed_high else low <= value < high
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ValueError(f"{name} must lie in [{low}, {high}{bracket}, got {value}")


class SGD(Optimizer):
    """Stochastic gradient descent with heavy-ball or Nesterov momentum.

    Same arguments and iterates as :class:`torch.optim.SGD`: with ``g`` the
    gradient plus ``weight_decay * p``, the buffer is ``b = momentum * b +
    (1 - dampening) * g`` (``b = g`` at the first step) and the step is
    ``p -= lr * b`` (heavy ball) or ``p -= lr * (g + momentum * b)``
    (Nesterov).
    """

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0,
                 dampening: float = 0, weight_decay: float = 0,
                 nesterov: bool = False, *, maximize: bool = False) -> None:
        _check("lr", lr)
        _check("momentum", momentum)
        _check("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening = 0, got "
                             f"momentum={momentum}, dampening={dampening}")
        super().__init__(params, dict(
            lr=lr, momentum=momentum, dampening=dampening,
            weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def update(self, p, grad, state, group) -> None:
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p  # L2 penalty's gradient
        mu = group["momentum"]
        if mu != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.clone()
            else:
                b = state["momentum_buffer"]
                b.mul_(mu).add_(grad, alpha=1 - group["dampening"])
            b = state["momentum_buffer"]
            grad = grad + mu * b if group["nesterov"] else b
        p.add_(grad, alpha=-group["lr"])


class Adagrad(Optimizer):
    """Adagrad: per-coordinate steps ``lr / sqrt(sum of squared gradients)``.

    Same arguments and iterates as :class:`torch.optim.Adagrad`; ``lr_decay``
    divides the step size by ``1 + (t - 1) * lr_decay`` at step ``t``.
    """

    def __init__(self, params: Params, lr: float = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10, *, maximize: bool = False) -> None:
        for name, value in [("lr", lr), ("lr_decay", lr_decay), ("eps", eps),
                            ("weight_decay", weight_decay),
                            ("initial_accumulator_value",
                             initial_accumulator_value)]:
            _check(name, value)
        super().__init__(params, dict(
            lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps,
            maximize=maximize))

    def update(self, p, grad, state, group) -> None:
        if not state:
            state["step"] = 0
            state["sum"] = torch.full_like(p, group["initial_accumulator_value"])
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p
        lr_t = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"].addcmul_(grad, grad)
        p.addcdiv_(grad, state["sum"].sqrt().add_(group["eps"]), value=-lr_t)


class RMSprop(Optimizer):
    """RMSProp: divide by a running root-mean-square of the gradient.

    Same arguments and iterates as :class:`torch.optim.RMSprop`:
    ``v = alpha * v + (1 - alpha) * g**2``; with ``centered`` the running
    mean ``gbar`` of ``g`` is subtracted (``v - gbar**2``); the step divides
    ``g`` by ``sqrt(v) + eps``, through a momentum buffer if ``momentum > 0``.
    """

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
                 centered: bool = False, *, maximize: bool = False) -> None:
        _check("lr", lr)
        _check("alpha", alpha, 0.0, 1.0, closed_high=True)
        _check("eps", eps)
        _check("weight_decay", weight_decay)
        _check("momentum", momentum)
        super().__init__(params, dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
            momentum=momentum, centered=centered, maximize=maximize))

    def update(self, p, grad, state, group) -> None:
        if not state:
            state["step"] = 0
            state["square_avg"] = torch.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = torch.zeros_like(p)
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p
        alpha, v = group["alpha"], state["square_avg"]
        v.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        if group["centered"]:
            gbar = state["grad_avg"].mul_(alpha).add_(grad, alpha=1 - alpha)
            denom = (v - gbar * gbar).sqrt_().add_(group["eps"])
        else:
            denom = v.sqrt().add_(group["eps"])
        if group["momentum"] > 0:
            b = state["momentum_buffer"]
            b.mul_(group["momentum"]).addcdiv_(grad, denom)
            p.add_(b, alpha=-group["lr"])
        else:
            p.addcdiv_(grad, denom, value=-group["lr"])


class Adam(Optimizer):
    """Adam with bias correction, optional AMSGrad and L2 weight decay.

    Same arguments and iterates as :class:`torch.optim.Adam`. The update is
    the chapter's Adam algorithm: moving averages ``m`` and ``v`` of ``g``
    and ``g**2``, divided by ``1 - beta**t`` to remove their bias towards
    zero. ``weight_decay`` adds ``weight_decay * p`` to the gradient
    (an L2 penalty, which then passes through the preconditioner).
    """

    decoupled = False  # AdamW overrides: decay the weights, not the gradient

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        _check("lr", lr)
        _check("betas[0]", betas[0], 0.0, 1.0)
        _check("betas[1]", betas[1], 0.0, 1.0)
        _check("eps", eps)
        _check("weight_decay", weight_decay)
        super().__init__(params, dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
            amsgrad=amsgrad, maximize=maximize))

    def update(self, p, grad, state, group) -> None:
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        lr, wd = group["lr"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if wd != 0 and self.decoupled:
            p.mul_(1 - lr * wd)  # AdamW: shrink the weights directly
        elif wd != 0:
            grad = grad + wd * p  # Adam: L2 penalty's gradient
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        if group["amsgrad"]:
            v = torch.maximum(state["max_exp_avg_sq"], v,
                              out=state["max_exp_avg_sq"])
        # bias corrections (chapter 3): m_hat = m / (1 - beta1^t), same for v
        v_hat = v / (1 - beta2**t)
        denom = v_hat.sqrt_().add_(group["eps"])
        p.addcdiv_(m, denom, value=-lr / (1 - beta1**t))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter).

    Same arguments and iterates as :class:`torch.optim.AdamW`: before the Adam
    step the weights are multiplied by ``1 - lr * weight_decay``; the decay
    never enters the moment estimates.
    """

    decoupled = True

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad,
                         maximize=maximize)


def per_example_gradients(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    X: torch.Tensor, y: torch.Tensor,
) -> torch.Tensor:
    """Gradient of the loss on each example, flattened over all parameters.

    ``loss_fn`` must average over its batch (the default reduction), and the
    model must treat rows independently (no batch norm). Shapes: ``X (N,
    ...)``, ``y (N, ...)`` -> ``(N, P)`` with ``P`` the number of parameters.
    """
    from torch.func import functional_call, grad, vmap

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters() if n in names}

    def loss_one(ps: dict[str, torch.Tensor], x, t) -> torch.Tensor:
        out = functional_call(model, ps, (x.unsqueeze(0),))
        return loss_fn(out, t.unsqueeze(0))

    grads = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, X, y)
    return torch.cat([grads[n].reshape(len(X), -1) for n in names], dim=1)


def minibatch_gradient_variance(
    G: torch.Tensor, batch_size: int, n_batches: int,
    generator: torch.Generator | None = None, replace: bool = False,
) -> float:
    """Monte Carlo estimate of ``E ||g_B - g||^2`` for mini-batches of size B.

    ``G (N, P)`` holds per-example gradients, ``g`` is their mean and
    ``g_B`` the mean over ``batch_size`` rows drawn uniformly, without
    replacement (a shuffled epoch's batch) or with it (``replace=True``).
    """
    N = G.shape[0]
    if not 1 <= batch_size <= N:
        raise ValueError(f"batch_size must lie in [1, {N}], got {batch_size}")
    if replace:
        idx = torch.randint(N, (n_batches, batch_size), generator=generator)
    else:  # the first B entries of random permutations
        idx = torch.rand(n_batches, N, generator=generator).argsort(dim=1)
        idx = idx[:, :batch_size]
    # row b of W averages batch b (counting repeats), so W @ G holds all g_B
    W = torch.zeros(n_batches, N, dtype=G.dtype)
    W.scatter_add_(1, idx, torch.full(idx.shape, 1 / batch_size, dtype=G.dtype))
    errors = W @ (G - G.mean(dim=0))
    return errors.pow(2).sum(dim=1).mean().item()


_LOSSES = ("squared", "geman-mcclure")


class RegressionObjective:
    """``f(w) = (1/n) sum_i phi(x_i.w - y_i) + (ridge/2) |w|^2``, for R runs at once.

    The test problem of the chapter's SGD theorems. ``loss="squared"`` is
    ``phi(r) = r^2 / 2`` (convex; strongly convex with ``ridge > 0``);
    ``loss="geman-mcclure"`` is ``phi(r) = r^2 / (2 (1 + r^2))``, a robust
    loss that is smooth but not convex. Both have ``|phi''| <= 1``, so ``f`` is
    ``L``-smooth with ``L = lambda_max(X^T X / n) + ridge``. Every method takes
    the weights of ``R`` independent runs as rows: ``W (R, P)``.
    Shapes: ``X (n, P)``, ``y (n,)``.
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, loss: str = "squared",
                 ridge: float = 0.0) -> None:
        if X.ndim != 2 or y.shape != (X.shape[0],):
            raise ValueError(f"need X (n, P) and y (n,), got {tuple(X.shape)} "
                             f"and {tuple(y.shape)}")
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
        _check("ridge", ridge)
        self.X, self.y = X.double(), y.double()
        self.loss, self.ridge = loss, ridge

    def _phi(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``phi(r)`` and ``phi'(r)``, elementwise."""
        if self.loss == "squared":
            return 0.5 * r * r, r
        return 0.5 * r * r / (1 + r * r), r / (1 + r * r) ** 2

    def value(self, W: torch.Tensor) -> torch.Tensor:
        """``f`` at each row of ``W``. Shape ``(R, P) -> (R,)``."""
        phi, _ = self._phi(W @ self.X.T - self.y)
        return phi.mean(1) + 0.5 * self.ridge * W.pow(2).sum(1)

    def gradient(self, W: torch.Tensor,
                 idx: torch.Tensor | None = None) -> torch.Tensor:
        """Full gradient (``idx=None``) or the mean over the batch ``idx (R, B)``
        of per-example gradients ``phi'(r_i) x_i + ridge w``. ``(R, P)``."""
        if idx is None:
            _, dphi = self._phi(W @ self.X.T - self.y)
            return dphi @ self.X / len(self.y) + self.ridge * W
        Xb = self.X[idx]                                  # (R, B, P)
        r = torch.einsum("rbp,rp->rb", Xb, W) - self.y[idx]
        _, dphi = self._phi(r)
        return torch.einsum("rb,rbp->rp", dphi, Xb) / idx.shape[1] + self.ridge * W

    def gradient_variance(self, W: torch.Tensor) -> torch.Tensor:
        """``sigma^2(w) = (1/n) sum_i |grad l_i(w) - grad f(w)|^2``. ``(R,)``."""
        _, dphi = self._phi(W @ self.X.T - self.y)        # (R, n)
        mean = dphi @ self.X / len(self.y)
        sq = (dphi.pow(2) @ self.X.pow(2).sum(1)) / len(self.y)
        return sq - mean.pow(2).sum(1)

    def smoothness(self) -> float:
        """``L = lambda_max(X^T X / n) + ridge``, valid because ``|phi''| <= 1``."""
        H = self.X.T @ self.X / len(self.y)
        return torch.linalg.eigvalsh(H)[-1].item() + self.ridge


def sgd_paths(objective: RegressionObjective, w0: torch.Tensor, *, lr: float,
              batch_size: int, steps: int, runs: int,
              generator: torch.Generator | None = None,
              every: int = 1) -> dict[str, torch.Tensor]:
    """``runs`` independent SGD runs from ``w0``, batches drawn with replacement.

    ``w_{t+1} = w_t - lr * g_{S_t}(w_t)``, ``|S_t| = batch_size``. Every
    ``every`` steps (and at step 0) records, per run, ``f(w_t)``,
    ``|grad f(w_t)|^2`` and the per-example variance ``sigma^2(w_t)``.
    Returns a dict of ``(K, runs)`` tensors and the recorded steps ``(K,)``.
    """
    n = len(objective.y)
    if not 1 <= batch_size <= n or steps < 1 or runs < 1 or every < 1:
        raise ValueError(f"need 1 <= batch_size <= {n}, steps, runs, every >= 1; "
                         f"got {batch_size}, {steps}, {runs}, {every}")
    W = w0.double().expand(runs, -1).clone()
    rec: dict[str, list] = {"step": [], "value": [], "grad_sq": [], "variance": []}
    for t in range(steps + 1):
        if t % every == 0 or t == steps:
            rec["step"].append(t)
            rec["value"].append(objective.value(W))
            rec["grad_sq"].append(objective.gradient(W).pow(2).sum(1))
            rec["variance"].append(objective.gradient_variance(W))
        if t == steps:
            break
        idx = torch.randint(n, (runs, batch_size), generator=generator)
        W = W - lr * objective.gradient(W, idx)
    out = {k: torch.stack(v) for k, v in rec.items() if k != "step"}
    out["step"] = torch.tensor(rec["step"])
    return out
