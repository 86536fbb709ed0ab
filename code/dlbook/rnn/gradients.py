"""Backpropagation through time by hand, and the Jacobian products behind
vanishing and exploding gradients.

Chapter: memory and recurrent networks. :func:`rnn_bptt` is the backward
pass of an Elman network written out step by step (checked against autograd
in the tests); :func:`jacobian_norms` measures the spectral norm of
``dh_T / dh_{T-k}`` against the lag ``k``, the quantity the vanishing and
exploding gradient theorem bounds.
"""
from __future__ import annotations

import torch

__all__ = ["scaled_orthogonal", "rnn_bptt", "jacobian_norms"]


def scaled_orthogonal(n: int, scale: float, *,
                      generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``scale * Q`` with ``Q`` a random orthogonal ``(n, n)`` matrix, so that
    every singular value and the spectral radius equal ``scale``."""
    if n < 1 or scale < 0:
        raise ValueError(f"need n >= 1 and scale >= 0, got n={n}, scale={scale}")
    A = torch.randn(n, n, generator=generator, dtype=dtype)
    Q, R = torch.linalg.qr(A)
    return scale * Q * torch.sign(torch.diagonal(R))  # Haar-distributed Q


def rnn_bptt(x: torch.Tensor, h0: torch.Tensor, weight_ih: torch.Tensor,
             weight_hh: torch.Tensor, bias: torch.Tensor,
             grad_output: torch.Tensor
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward and hand-written backward pass of a tanh RNN over time.

    ``h_t = tanh(x_t W_ih^T + h_{t-1} W_hh^T + b)``; ``grad_output[:, t]`` is
    ``dL/dh_t`` from the loss terms at step t. Returns the states
    ``(N, L, H)`` and the gradients of ``weight_ih``, ``weight_hh``, ``bias``
    and ``h0``. Shapes: ``x (N, L, H_in)``, ``h0 (N, H)``.
    """
    if grad_output.shape != (*x.shape[:2], h0.shape[-1]):
        expected = (*x.shape[:2], h0.shape[-1])
        raise ValueError(f"grad_output must have shape {expected}, "
                         f"got {tuple(grad_output.shape)}")
    hs = [h0]
    for t in range(x.shape[1]):
        hs.append(torch.tanh(x[:, t] @ weight_ih.T + hs[-1] @ weight_hh.T + bias))
    g_ih, g_hh = torch.zeros_like(weight_ih), torch.zeros_like(weight_hh)
    g_b, carry = torch.zeros_like(bias), torch.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        delta = (grad_output[:, t] + carry) * (1 - hs[t + 1] ** 2)  # through tanh
        g_ih += delta.T @ x[:, t]
        g_hh += delta.T @ hs[t]
        g_b += delta.sum(0)
        carry = delta @ weight_hh  # dL/dh_{t-1} through the recurrence
    grads = {"weight_ih": g_ih, "weight_hh": g_hh, "bias": g_b, "h0": carry}
    return torch.stack(hs[1:], dim=1), grads


def jacobian_norms(weight_hh: torch.Tensor, length: int, *,
                   nonlinearity: str = "tanh", input_std: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Spectral norms of ``dh_T/dh_{T-k}`` for ``k = 1..length``.

    Runs ``h_t = phi(W h_{t-1} + u_t)`` from ``h_0 = 0`` for ``length`` steps
    with i.i.d. ``u_t ~ N(0, input_std^2 I)`` (the projected inputs), ``phi``
    tanh or the identity (``"linear"``), and multiplies the step Jacobians
    ``J_t = diag(phi'(a_t)) W`` backwards from ``T = length``. Returns
    shape ``(length,)``.
    """
    if nonlinearity not in ("tanh", "linear"):
        raise ValueError("nonlinearity must be 'tanh' or 'linear', "
                         f"got {nonlinearity!r}")
    n = weight_hh.shape[0]
    u = input_std * torch.randn(length, n, generator=generator,
                                dtype=weight_hh.dtype)
    h, jacobians = torch.zeros(n, dtype=weight_hh.dtype), []
    for t in range(length):
        a = weight_hh @ h + u[t]
        h = torch.tanh(a) if nonlinearity == "tanh" else a
        slope = 1 - h ** 2 if nonlinearity == "tanh" else torch.ones_like(h)
        jacobians.append(slope[:, None] * weight_hh)
    P, norms = torch.eye(n, dtype=weight_hh.dtype), []
    for J in reversed(jacobians):
        P = P @ J
        norms.append(torch.linalg.matrix_norm(P, ord=2))
    return torch.stack(norms)
