"""In-context learning (chapter transfer-data): linear regression tasks as
token sequences, linear self-attention (LSA) with the weights that make each
layer one step of gradient descent on the in-context least-squares loss
(von Oswald et al. 2023), and a small softmax transformer that learns to
regress in context (Garg et al. 2022)."""
from __future__ import annotations

import torch
from torch import nn

from dlbook.transformer import MultiheadAttention

__all__ = ["regression_tasks", "gd_predictions", "lsa_layer", "lsa_gd_weights",
           "lsa_predict", "ridge_predictions", "InContextRegressor"]


def regression_tasks(n_tasks: int, n_context: int, d: int, *, noise: float = 0.0,
                     generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float32):
    """``w ~ N(0, I_d)``, ``x ~ N(0, I_d)``, ``y = w^T x + noise * eps``: the
    first ``n_context`` pairs are the prompt, the last is the query.
    Returns ``X (T, n+1, d)`` and ``y (T, n+1)``."""
    if n_context < 1 or d < 1:
        raise ValueError(f"n_context and d must be >= 1, got {n_context}, {d}")
    w = torch.randn(n_tasks, d, generator=generator, dtype=dtype)
    X = torch.randn(n_tasks, n_context + 1, d, generator=generator, dtype=dtype)
    eps = torch.randn(n_tasks, n_context + 1, generator=generator, dtype=dtype)
    return X, torch.einsum("tnd,td->tn", X, w) + noise * eps


def gd_predictions(X: torch.Tensor, y: torch.Tensor, eta: float,
                   steps: int = 1) -> torch.Tensor:
    """Predictions ``W_k x_q`` of ``steps`` gradient steps, from ``W_0 = 0``,
    on ``L(W) = (1 / 2n) sum_i (W x_i - y_i)^2`` over the context.
    Shapes: ``X (T, n+1, d)``, ``y (T, n+1)`` (the query's y unused) -> ``(T,)``."""
    Xc, yc = X[:, :-1], y[:, :-1]
    W = torch.zeros(X.shape[0], X.shape[2], dtype=X.dtype)
    n = Xc.shape[1]
    for _ in range(steps):
        resid = torch.einsum("tnd,td->tn", Xc, W) - yc
        W = W - eta / n * torch.einsum("tn,tnd->td", resid, Xc)
    return torch.einsum("td,td->t", X[:, -1], W)


def ridge_predictions(X: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """Ridge (``lam > 0``) or minimum-norm least squares (``lam = 0``) fitted on
    the context, evaluated at the query. Shapes as :func:`gd_predictions`."""
    Xc, yc = X[:, :-1], y[:, :-1]
    if lam > 0:
        A = Xc.transpose(1, 2) @ Xc + lam * torch.eye(X.shape[2], dtype=X.dtype)
        w = torch.linalg.solve(A, (Xc.transpose(1, 2) @ yc[..., None]))[..., 0]
    else:
        w = (torch.linalg.pinv(Xc) @ yc[..., None])[..., 0]
    return torch.einsum("td,td->t", X[:, -1], w)


def lsa_layer(E: torch.Tensor, W_KQ: torch.Tensor, W_PV: torch.Tensor,
              n_context: int) -> torch.Tensor:
    """One linear self-attention layer with a residual connection,
    ``e_j + (1/n) sum_{i <= n} W_PV e_i e_i^T W_KQ e_j``, every token attending
    to the ``n`` context tokens (not to the query). ``W_KQ = W_K^T W_Q`` and
    ``W_PV = P W_V`` merge the products. Shape: ``E (T, N, D)`` kept."""
    if W_KQ.shape != (E.shape[2],) * 2 or W_PV.shape != W_KQ.shape:
        raise ValueError(f"W_KQ and W_PV must be ({E.shape[2]}, {E.shape[2]})")
    C = E[:, :n_context]
    scores = torch.einsum("tid,de,tje->tij", C, W_KQ, E)  # e_i^T W_KQ e_j
    return E + torch.einsum("de,tie,tij->tjd", W_PV, C, scores) / n_context


def lsa_gd_weights(d: int, eta: float, dtype: torch.dtype = torch.float32):
    """The construction of thm-transfer-data-lsa: with tokens ``(x, y)`` in
    ``R^{d+1}``, ``W_KQ = [[I, 0], [0, 0]]`` and ``W_PV = [[0, 0], [0, -eta]]``.
    Returns ``(W_KQ, W_PV)``, each ``(d+1, d+1)``."""
    W_KQ = torch.zeros(d + 1, d + 1, dtype=dtype)
    W_KQ[:d, :d] = torch.eye(d, dtype=dtype)
    W_PV = torch.zeros(d + 1, d + 1, dtype=dtype)
    W_PV[d, d] = -eta
    return W_KQ, W_PV


def lsa_predict(X: torch.Tensor, y: torch.Tensor, W_KQ: torch.Tensor,
                W_PV: torch.Tensor, layers: int = 1) -> torch.Tensor:
    """Stack ``layers`` LSA layers (shared weights) on the tokens ``(x_i, y_i)``
    and ``(x_q, 0)``; the prediction is minus the query's last coordinate.
    Shapes as :func:`gd_predictions`."""
    E = torch.cat([X, y[..., None]], dim=2).clone()
    E[:, -1, -1] = 0.0  # the query's label is unknown
    for _ in range(layers):
        E = lsa_layer(E, W_KQ, W_PV, X.shape[1] - 1)
    return -E[:, -1, -1]


class InContextRegressor(nn.Module):
    """A small pre-norm softmax transformer on the tokens ``(x_i, y_i)`` and
    ``(x_q, 0)`` (plus a flag marking the query), without positional encoding
    since the context is a set; reads the prediction off the query token.
    ``forward(X (T, n+1, d), y (T, n+1)) -> (T,)``."""

    def __init__(self, d: int, d_model: int = 32, n_layer: int = 2,
                 n_head: int = 2, *, generator: torch.Generator | None = None
                 ) -> None:
        super().__init__()
        self.embed = nn.Linear(d + 2, d_model)
        self.attn = nn.ModuleList(MultiheadAttention(d_model, n_head)
                                  for _ in range(n_layer))
        self.ln1 = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layer))
        self.ln2 = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layer))
        self.ff = nn.ModuleList(
            nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(),
                          nn.Linear(4 * d_model, d_model)) for _ in range(n_layer))
        self.readout = nn.Linear(d_model, 1)
        if generator is not None:  # GPT-style init, reproducible from generator
            for name, p in self.named_parameters():
                if p.ndim == 2:
                    nn.init.normal_(p, 0.0, 0.02 * 5 ** 0.5, generator=generator)
                elif name.endswith("bias"):
                    nn.init.zeros_(p)

    def forward(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        flag = torch.zeros_like(y)
        flag[:, -1] = 1.0
        yin = y * (1 - flag)
        h = self.embed(torch.cat([X, yin[..., None], flag[..., None]], dim=2))
        for attn, ln1, ln2, ff in zip(self.attn, self.ln1, self.ln2, self.ff):
            a = ln1(h)
            h = h + attn(a, a, a)[0]
            h = h + ff(ln2(h))
        return self.readout(h[:, -1])[:, 0]
