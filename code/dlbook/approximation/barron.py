"""Barron's theorem: the random network of its Monte Carlo proof.

Chapter: approximation (Barron's theorem).
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "Step",
    "gaussian_barron_norm",
    "sample_ball",
    "barron_sample_net",
    "fit_outer_layer",
]


class Step(nn.Module):
    """The unit step ``1{z > 0}``, a sigmoidal function in Barron's sense."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z > 0).to(z.dtype)


def gaussian_barron_norm(d: int, a: float) -> float:
    """``C_f = int |w| |f_hat(w)| dw`` for ``f(x) = exp(-a |x|^2 / 2)`` on R^d.

    ``f_hat`` is the ``N(0, a I_d)`` density, so ``C_f = sqrt(a) E|Z|``
    ``= sqrt(2a) Gamma((d+1)/2) / Gamma(d/2)``.
    """
    if d < 1 or a <= 0:
        raise ValueError(f"need d >= 1 and a > 0, got d={d}, a={a}")
    return math.sqrt(2 * a) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


def sample_ball(n: int, d: int, r: float = 1.0, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points uniform in the ball of radius ``r`` in R^d. Shape ``(n, d)``."""
    u = torch.randn(n, d, generator=generator, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    rad = r * torch.rand(n, 1, generator=generator, dtype=torch.float64) ** (1 / d)
    return u * rad


def _abs_sin_quantile(q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Inverse of ``T -> int_0^T |sin(s t)| dt``, evaluated at ``q`` (closed form)."""
    m = torch.floor(q * s / 2)  # completed half-periods, each of mass 2/s
    rho = (q * s - 2 * m).clamp(0.0, 2.0)
    return (m * math.pi + torch.arccos(1 - rho)) / s


def _abs_sin_mass(T: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``int_0^T |sin(s t)| dt`` (closed form)."""
    m = torch.floor(s * T / math.pi)
    return (2 * m + 1 - torch.cos(s * T - m * math.pi)) / s


def barron_sample_net(d: int, width: int, *, a: float = 1.0, r: float = 1.0,
                      generator: torch.Generator | None = None) -> nn.Sequential:
    """The random step network of Barron's proof for ``f(x) = exp(-a|x|^2/2)``.

    With ``Lambda(dw) = |w| f_hat(w) dw / C_f`` and ``g_w(z) = (cos(|w| z)-1)/|w|``,
    ``f(x) - f(0) = C_f E_{w~Lambda} g_w(u.x)`` (``u = w/|w|``), and on
    ``[-r, r]`` each ``g_w`` is an average of steps ``V 1{+-(z - t) > 0}``
    with threshold density ``|g_w'(t)| / V``, ``V <= 2r``. Sampling ``width``
    pairs ``(w, t)`` and averaging gives ``f_n`` with
    ``E ||f - f_n||^2_{L2(mu)} <= (2 r C_f)^2 / width`` for any ``mu`` on the
    ball. Model: ``Linear(d, width) -> Step -> Linear(width, 1)``, float64.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    g = generator
    # |w| ~ sqrt(a) chi_{d+1}: the density |w| N(0, aI)(w) in polar coordinates
    s = math.sqrt(a) * torch.randn(width, d + 1, generator=g,
                                   dtype=torch.float64).norm(dim=1)
    u = torch.randn(width, d, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    half = _abs_sin_mass(torch.full_like(s, r), s)  # mass of |g'| on [0, r]
    q = torch.rand(width, generator=g, dtype=torch.float64) * half
    side = torch.where(torch.rand(width, generator=g, dtype=torch.float64) < 0.5,
                       -1.0, 1.0)
    t = side * _abs_sin_quantile(q, s)
    V = 2 * half  # total variation of g_w on [-r, r]
    sign_g = -torch.sign(torch.sin(s * t))  # sign of g_w'(t)
    # t > 0: +V sgn 1{u.x > t};  t < 0: -V sgn 1{u.x < t} = -V sgn 1{-u.x > -t}
    hidden = nn.Linear(d, width, dtype=torch.float64)
    out = nn.Linear(width, 1, dtype=torch.float64)
    C_f = gaussian_barron_norm(d, a)
    with torch.no_grad():
        hidden.weight.copy_(side[:, None] * u)
        hidden.bias.copy_(-side * t)
        out.weight.copy_((C_f / width * side * V * sign_g)[None, :])
        out.bias.fill_(1.0)  # f(0)
    return nn.Sequential(hidden, Step(), out)


def fit_outer_layer(model: nn.Sequential, X: torch.Tensor, y: torch.Tensor,
                    ridge: float = 1e-8) -> nn.Sequential:
    """Refit the last ``nn.Linear`` of ``model`` by (ridge) least squares.

    Keeps every earlier layer; solves for the output weights and bias that
    minimise the mean squared error on ``(X, y)``. Shapes ``X (N, d)``,
    ``y (N,)`` or ``(N, 1)``. Modifies and returns ``model``.
    """
    *body, out = list(model)
    if not isinstance(out, nn.Linear) or out.out_features != 1:
        raise ValueError("the last layer must be nn.Linear with out_features=1")
    with torch.no_grad():
        H = nn.Sequential(*body)(X.to(out.weight.dtype))
        H1 = torch.cat([H, torch.ones(len(H), 1, dtype=H.dtype)], dim=1)
        A = H1.T @ H1 / len(H1)
        A = A + ridge * torch.eye(len(A), dtype=A.dtype) * A.diagonal().mean()
        coef = torch.linalg.solve(A, H1.T @ y.reshape(-1, 1).to(H.dtype) / len(H1))
        out.weight.copy_(coef[:-1].T)
        out.bias.copy_(coef[-1])
    return model
