"""A world model of a small generated environment (chapter: conditional
generative models).

The environment is a damped, driven pendulum with state ``s = (theta,
omega)`` and action ``u`` (a torque), stepped by semi-implicit Euler. A world
model is a network ``f_hat(s, u)`` trained on observed transitions; rolled out
on its own predictions ("in imagination") its error compounds with the horizon
as :func:`compounding_bound` says.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Pendulum", "transitions", "rollout", "rollout_errors",
           "compounding_bound"]


@dataclass(frozen=True)
class Pendulum:
    """``omega' = omega + dt (-(g / l) sin theta - damping * omega + u)``,
    ``theta' = theta + dt * omega'``."""

    dt: float = 0.1
    g_over_l: float = 4.0
    damping: float = 0.2

    def step(self, s: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Next state. Shapes: ``s (N, 2)``, ``u (N, 1)`` -> ``(N, 2)``."""
        if s.ndim != 2 or s.shape[1] != 2 or u.shape != (len(s), 1):
            raise ValueError(f"need s (N, 2) and u (N, 1), got {tuple(s.shape)}, "
                             f"{tuple(u.shape)}")
        theta, omega = s[:, :1], s[:, 1:]
        omega = omega + self.dt * (-self.g_over_l * torch.sin(theta)
                                   - self.damping * omega + u)
        return torch.cat([theta + self.dt * omega, omega], 1)

    def lipschitz(self) -> float:
        """A Lipschitz constant of ``s -> step(s, u)`` (Euclidean norm), the
        largest spectral norm of the Jacobian over ``cos theta in [-1, 1]``."""
        dt, k, c = self.dt, self.g_over_l, self.damping
        best = 0.0
        for cos in torch.linspace(-1, 1, 201, dtype=torch.float64):
            d_omega = torch.stack([-dt * k * cos, 1 - dt * c + 0 * cos])
            J = torch.stack([torch.tensor([1.0, 0.0], dtype=torch.float64)
                             + dt * d_omega, d_omega])
            best = max(best, torch.linalg.matrix_norm(J, 2).item())
        return best


def transitions(env: Pendulum, n_traj: int, length: int, *, seed: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Trajectories under random actions ``u ~ U[-1, 1]``, from random starts.

    Returns states ``S (n_traj, length + 1, 2)`` and actions
    ``U (n_traj, length, 1)``, and the packed training pairs are
    ``[s_t, u_t] -> s_{t+1}`` (see the chapter).
    """
    g = torch.Generator().manual_seed(seed)
    s = torch.stack([(2 * torch.rand(n_traj, generator=g) - 1) * math.pi,
                     2 * torch.rand(n_traj, generator=g) - 1], 1)
    U = 2 * torch.rand(n_traj, length, 1, generator=g) - 1
    states = [s]
    for t in range(length):
        states.append(env.step(states[-1], U[:, t]))
    return torch.stack(states, 1), U


@torch.no_grad()
def rollout(model: nn.Module, s0: torch.Tensor, U: torch.Tensor,
            residual: bool = True) -> torch.Tensor:
    """Open-loop imagination: feed the model its own predictions.

    ``model([s, u])`` predicts ``s_{t+1} - s_t`` when ``residual`` (else
    ``s_{t+1}``). Shapes: ``s0 (N, 2)``, ``U (N, H, 1)`` -> ``(N, H + 1, 2)``.
    """
    states = [s0]
    for t in range(U.shape[1]):
        out = model(torch.cat([states[-1], U[:, t]], 1))
        states.append(states[-1] + out if residual else out)
    return torch.stack(states, 1)


def rollout_errors(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean error per horizon. Shapes: ``(N, H + 1, 2)`` -> ``(H + 1,)``."""
    if pred.shape != true.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(true.shape)}")
    return (pred - true).norm(dim=-1).mean(0)


def compounding_bound(eps: float | torch.Tensor, L: float, H: int | None = None
                      ) -> torch.Tensor:
    """The bound of the chapter's proposition, by its recursion
    ``e_0 = 0``, ``e_{k+1} = eps_k + L e_k``.

    ``eps`` a float (one worst one-step error for every step; then ``H`` is
    required) gives ``eps (L^k - 1) / (L - 1)`` for ``k = 0..H`` (``eps k``
    when ``L = 1``), shape ``(H + 1,)``. ``eps`` a tensor ``(..., H)`` of
    per-step errors (one row per trajectory, say) gives the bound per row,
    shape ``(..., H + 1)``: the same proof, applied step by step.
    """
    if L < 0:
        raise ValueError(f"L must be non-negative, got {L}")
    if not torch.is_tensor(eps):
        if H is None:
            raise ValueError("a scalar eps needs the horizon H")
        h = torch.arange(H + 1, dtype=torch.float64)
        if abs(L - 1) < 1e-12:
            return eps * h
        return eps * (L ** h - 1) / (L - 1)
    eps = eps.double()
    if H is not None and eps.shape[-1] != H:
        raise ValueError(f"eps has {eps.shape[-1]} steps, H = {H}")
    out = [torch.zeros(eps.shape[:-1], dtype=torch.float64)]
    for k in range(eps.shape[-1]):
        out.append(eps[..., k] + L * out[-1])
    return torch.stack(out, -1)
