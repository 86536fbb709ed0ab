"""Hessian-vector products and sharpness (chapter optimization-theory).

The *sharpness* of a loss at parameters theta is the largest eigenvalue of
its Hessian. It is found here by power iteration, which touches the Hessian
only through Hessian-vector products (two backward passes each), so it works
for networks whose Hessian would not fit in memory.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["hvp", "sharpness", "flat_grad"]

LossFn = Callable[[], torch.Tensor]


def _check_params(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    params = list(params)
    if not params:
        raise ValueError("params must be a non-empty sequence of tensors")
    for p in params:
        if not (isinstance(p, torch.Tensor) and p.requires_grad):
            raise ValueError("every entry of params must be a tensor with "
                             "requires_grad=True")
    return params


def flat_grad(loss_fn: LossFn, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Gradient of ``loss_fn()`` with respect to ``params``, flattened.

    Shape: ``(P,)`` with ``P`` the total number of entries of ``params``.
    """
    params = _check_params(params)
    grads = torch.autograd.grad(loss_fn(), params)
    return torch.cat([g.reshape(-1) for g in grads])


def hvp(loss_fn: LossFn, params: Sequence[torch.Tensor],
        v: torch.Tensor) -> torch.Tensor:
    """Hessian-vector product ``H v`` of ``loss_fn()`` at ``params``.

    ``loss_fn`` takes no argument and returns a scalar computed from
    ``params``; ``v`` is a flat vector of shape ``(P,)``. Uses the identity
    ``H v = grad (grad f . v)`` (Pearlmutter 1994): two backward passes.
    """
    params = _check_params(params)
    P = sum(p.numel() for p in params)
    if v.shape != (P,):
        raise ValueError(f"v must have shape ({P},), got {tuple(v.shape)}")
    grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
    g = torch.cat([gi.reshape(-1) for gi in grads])
    Hv = torch.autograd.grad(g @ v.to(g.dtype), params)
    return torch.cat([h.reshape(-1) for h in Hv]).detach()


def sharpness(loss_fn: LossFn, params: Sequence[torch.Tensor], iters: int = 20,
              *, generator: torch.Generator | None = None,
              v0: torch.Tensor | None = None, return_vector: bool = False
              ) -> float | tuple[float, torch.Tensor]:
    """Top Hessian eigenvalue of ``loss_fn()`` by power iteration on HVPs.

    Runs ``iters`` steps of ``v <- H v / ||H v||`` from a random unit vector
    and returns the Rayleigh quotient ``v^T H v`` of the last iterate: the
    eigenvalue of largest magnitude (near a minimum, the largest one).
    ``v0`` (shape ``(P,)``) replaces the random start, e.g. to warm-start
    from the vector of a previous call.
    With ``return_vector=True`` also returns ``v`` (shape ``(P,)``).
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    params = _check_params(params)
    P = sum(p.numel() for p in params)
    dtype = params[0].dtype
    if v0 is None:
        v = torch.randn(P, generator=generator, dtype=dtype)
    elif v0.shape != (P,) or not v0.norm() > 0:
        raise ValueError(f"v0 must be a nonzero vector of shape ({P},)")
    else:
        v = v0.detach().to(dtype)
    v = v / v.norm()
    lam = 0.0
    for _ in range(iters):
        Hv = hvp(loss_fn, params, v)
        lam = float(v @ Hv)  # Rayleigh quotient of the current unit vector
        norm = Hv.norm()
        if norm == 0:
            break
        v = Hv / norm
    return (lam, v) if return_vector else lam
