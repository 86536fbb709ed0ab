"""Linear recurrences: sequential, by a parallel (associative) scan, and
causal linear attention as one of them.

Chapter: memory and recurrent networks. The diagonal recurrence
``h_t = a_t * h_{t-1} + b_t`` is the core of linear RNNs and state-space
layers; the pairs ``(a, b)`` compose associatively, so all prefixes can be
computed in ``ceil(log2 L)`` vectorized steps instead of ``L`` sequential ones.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["linear_recurrence", "linear_recurrence_scan", "elu_feature_map",
           "causal_linear_attention"]


def _prepare(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    if b.ndim < 2:
        raise ValueError(f"b must have shape (..., L, D), got {tuple(b.shape)}")
    try:
        a = a.expand_as(b)
    except RuntimeError:
        raise ValueError(f"a {tuple(a.shape)} must broadcast to "
                         f"b {tuple(b.shape)}") from None
    if h0 is not None:  # fold the initial state into the first input
        b = torch.cat([b[..., :1, :] + a[..., :1, :] * h0.unsqueeze(-2),
                       b[..., 1:, :]], dim=-2)
    return a, b


def linear_recurrence(a: torch.Tensor, b: torch.Tensor,
                      h0: torch.Tensor | None = None) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` one step after the other (``h_0`` zero
    unless given). Shapes: ``b (..., L, D)``, ``a`` broadcastable to ``b``
    (e.g. ``(D,)`` for a time-invariant decay), ``h0 (..., D)``; returns all
    ``h_t``, shaped like ``b``."""
    a, b = _prepare(a, b, h0)
    h, out = torch.zeros_like(b[..., 0, :]), []
    for t in range(b.shape[-2]):
        h = a[..., t, :] * h + b[..., t, :]
        out.append(h)
    return torch.stack(out, dim=-2)


def linear_recurrence_scan(a: torch.Tensor, b: torch.Tensor,
                           h0: torch.Tensor | None = None) -> torch.Tensor:
    """The same as :func:`linear_recurrence` by a Hillis-Steele inclusive
    scan with the associative operator
    ``(a1, b1) . (a2, b2) = (a2 a1, a2 b1 + b2)``:
    ``ceil(log2 L)`` vectorized rounds, ``O(L log L)`` work."""
    A, B = _prepare(a, b, h0)
    L, d = B.shape[-2], 1
    while d < L:  # after this round, (A_t, B_t) composes steps t-2d+1 .. t
        A_prev = torch.cat([torch.ones_like(A[..., :d, :]), A[..., :-d, :]], dim=-2)
        B_prev = torch.cat([torch.zeros_like(B[..., :d, :]), B[..., :-d, :]], dim=-2)
        A, B = A * A_prev, A * B_prev + B
        d *= 2
    return B


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """``elu(x) + 1``, the positive feature map of Katharopoulos et al. (2020)."""
    return F.elu(x) + 1


def causal_linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
    feature_map: Callable[[torch.Tensor], torch.Tensor] = elu_feature_map,
    method: str = "parallel", eps: float = 1e-6,
) -> torch.Tensor:
    """Causal linear attention ``y_t = phi(q_t)^T S_t / (phi(q_t)^T z_t)``
    with ``S_t = sum_{s<=t} phi(k_s) v_s^T`` and ``z_t = sum_{s<=t} phi(k_s)``.

    ``method``: ``"parallel"`` (the masked ``L x L`` matrix, as attention),
    ``"recurrent"`` (the state ``S_t`` updated step by step, as an RNN) or
    ``"scan"`` (the recurrence ``S_t = S_{t-1} + phi(k_t) v_t^T`` by
    :func:`linear_recurrence_scan`). Shapes: ``q, k (N, L, d_k)``,
    ``v (N, L, d_v)`` -> ``(N, L, d_v)``.
    """
    if q.shape != k.shape or q.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"need q, k (N, L, d_k) and v (N, L, d_v), got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    fq, fk = feature_map(q), feature_map(k)
    if method == "parallel":
        scores = (fq @ fk.transpose(-1, -2)).tril()  # causal mask
        return (scores @ v) / (scores.sum(-1, keepdim=True) + eps)
    if method == "recurrent":
        S = q.new_zeros(q.shape[0], q.shape[-1], v.shape[-1])
        z, out = q.new_zeros(q.shape[0], q.shape[-1]), []
        for t in range(q.shape[1]):
            S = S + fk[:, t, :, None] * v[:, t, None, :]
            z = z + fk[:, t]
            num = (fq[:, t, None, :] @ S).squeeze(1)
            out.append(num / ((fq[:, t] * z).sum(-1, keepdim=True) + eps))
        return torch.stack(out, dim=1)
    if method == "scan":
        N, L, d_k = fk.shape
        outer = (fk[..., :, None] * v[..., None, :]).reshape(N, L, -1)
        S = linear_recurrence_scan(outer.new_ones(()), outer).reshape(N, L, d_k, -1)
        z = linear_recurrence_scan(fk.new_ones(()), fk)
        num = (fq[..., None, :] @ S).squeeze(-2)
        return num / ((fq * z).sum(-1, keepdim=True) + eps)
    raise ValueError("method must be 'parallel', 'recurrent' or 'scan', "
                     f"got {method!r}")
