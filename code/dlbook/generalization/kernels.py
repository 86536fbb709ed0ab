"""The kernel regime and the Bayesian view of wide networks.

Chapter: generalization. The empirical neural tangent kernel (NTK) of a
two-layer ReLU network in NTK parametrization (Jacot et al., 2018), the
linearized predictions it gives (Lee et al., 2019), the arc-cosine NNGP
kernel of a deep ReLU network (Cho and Saul, 2009; Lee et al., 2018), and GP
regression with its evidence.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["TwoLayerNTK", "empirical_ntk", "train_gd", "linearized_predict",
           "arccos_step", "nngp_relu_kernel", "random_relu_net_outputs",
           "gp_posterior", "gp_log_evidence"]


class TwoLayerNTK(nn.Module):
    """``f(x) = a^T relu(W x) / sqrt(m)`` with standard normal ``W, a``.

    NTK parametrization: the ``1/sqrt(m)`` sits in the forward pass, so the
    tangent kernel stays of order one as the width ``m`` grows.
    Shapes: ``W (m, d)``, ``a (m,)``; input ``(N, d)`` -> output ``(N,)``.
    """

    def __init__(self, d: int, m: int, *, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        self.W = nn.Parameter(torch.randn(m, d, generator=generator, dtype=dtype))
        self.a = nn.Parameter(torch.randn(m, generator=generator, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W.T) @ self.a / self.a.shape[0] ** 0.5


@torch.no_grad()
def empirical_ntk(net: TwoLayerNTK, X1: torch.Tensor,
                  X2: torch.Tensor) -> torch.Tensor:
    """Tangent kernel ``Theta(x, x') = <df(x)/dtheta, df(x')/dtheta>`` in closed form.

    Shapes: ``X1 (N1, d)``, ``X2 (N2, d)`` -> ``(N1, N2)``. The ``a``-part is
    ``relu(W x) . relu(W x') / m``; the ``W``-part is
    ``(x . x') sum_j a_j^2 1[w_j x > 0] 1[w_j x' > 0] / m``.
    """
    m = net.a.shape[0]
    Z1, Z2 = X1 @ net.W.T, X2 @ net.W.T
    k_a = torch.relu(Z1) @ torch.relu(Z2).T
    k_w = ((Z1 > 0) * net.a ** 2).to(X1.dtype) @ (Z2 > 0).to(X1.dtype).T
    return (k_a + (X1 @ X2.T) * k_w) / m


def train_gd(net: nn.Module, X: torch.Tensor, y: torch.Tensor, *, lr: float,
             steps: int) -> list[float]:
    """Full-batch gradient descent on ``L = 1/2 sum_i (f(x_i) - y_i)^2``.

    Returns the loss before each step. Shapes: ``X (N, d)``, ``y (N,)``.
    """
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * ((net(X) - y) ** 2).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def linearized_predict(theta_train: torch.Tensor, theta_test: torch.Tensor,
                       f0_train: torch.Tensor, f0_test: torch.Tensor,
                       y: torch.Tensor, *, lr: float, steps: int) -> torch.Tensor:
    """Outputs of the network linearized at initialization after ``steps`` of GD.

    Kernel gradient descent with the NTK ``Theta`` (eq. ntk-dynamics):
    ``f_t(x) = f_0(x) - Theta(x, X) Theta^{-1} (I - (I - lr Theta)^t) (f_0(X) - y)``.
    Shapes: ``theta_train (N, N)``, ``theta_test (M, N)``, ``f0_* (N,)/(M,)``.
    """
    evals, V = torch.linalg.eigh(theta_train)
    # Theta^{-1}(I - (I - lr Theta)^t) is (1 - (1 - lr l)^t) / l on eigenvalue l
    gain = (1 - (1 - lr * evals) ** steps) / evals
    coef = V @ (gain * (V.T @ (f0_train - y)))
    return f0_test - theta_test @ coef


def arccos_step(K12: torch.Tensor, K11: torch.Tensor,
                K22: torch.Tensor) -> torch.Tensor:
    """``E[relu(u) relu(v)]`` for centred Gaussians with covariances ``K``.

    The degree-one arc-cosine kernel of Cho and Saul (2009):
    ``sqrt(K11 K22) (sin t + (pi - t) cos t) / (2 pi)``, with
    ``cos t = K12 / sqrt(K11 K22)``. ``K11`` has shape ``(N1, 1)`` and ``K22``
    shape ``(1, N2)`` so that the result broadcasts to ``K12 (N1, N2)``.
    """
    norm = torch.sqrt(K11 * K22)
    cos = (K12 / norm).clamp(-1.0, 1.0)
    t = torch.arccos(cos)
    return norm * (torch.sin(t) + (math.pi - t) * cos) / (2 * math.pi)


def nngp_relu_kernel(X1: torch.Tensor, X2: torch.Tensor, depth: int, *,
                     sigma_w2: float = 2.0, sigma_b2: float = 0.0) -> torch.Tensor:
    """NNGP kernel of a ReLU network with ``depth`` hidden layers (infinite width).

    Weights ``N(0, sigma_w2 / fan_in)``, biases ``N(0, sigma_b2)``; recursion
    ``K^{l+1} = sigma_b2 + sigma_w2 E[relu(u) relu(v)]`` from
    ``K^1 = sigma_b2 + sigma_w2 x . x' / d``. Shapes ``(N1, d), (N2, d) -> (N1, N2)``.
    """
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    d = X1.shape[1]
    K12 = sigma_b2 + sigma_w2 * (X1 @ X2.T) / d
    K11 = sigma_b2 + sigma_w2 * (X1 * X1).sum(1, keepdim=True) / d
    K22 = sigma_b2 + sigma_w2 * (X2 * X2).sum(1, keepdim=True).T / d
    for _ in range(depth):
        K12 = sigma_b2 + sigma_w2 * arccos_step(K12, K11, K22)
        K11 = sigma_b2 + sigma_w2 * K11 / 2  # E[relu(u)^2] = K / 2
        K22 = sigma_b2 + sigma_w2 * K22 / 2
    return K12


@torch.no_grad()
def random_relu_net_outputs(X: torch.Tensor, *, width: int, depth: int, nets: int,
                            sigma_w2: float = 2.0, sigma_b2: float = 0.0,
                            generator: torch.Generator | None = None,
                            chunk: int = 500) -> torch.Tensor:
    """Outputs of ``nets`` independently drawn random ReLU networks.

    Same prior as :func:`nngp_relu_kernel`, with ``depth`` hidden layers of
    ``width`` units and a scalar output. Shape: ``X (N, d)`` -> ``(nets, N)``.
    """
    outs = []
    for start in range(0, nets, chunk):
        k = min(chunk, nets - start)
        h, fan_in = X.expand(k, *X.shape), X.shape[1]
        for layer in range(depth + 1):
            fan_out = 1 if layer == depth else width
            W = torch.randn(k, fan_in, fan_out, generator=generator, dtype=X.dtype)
            b = torch.randn(k, 1, fan_out, generator=generator, dtype=X.dtype)
            z = h @ W * math.sqrt(sigma_w2 / fan_in) + b * math.sqrt(sigma_b2)
            h, fan_in = torch.relu(z), fan_out
        outs.append(z[..., 0])
    return torch.cat(outs)


def gp_posterior(K: torch.Tensor, K_star: torch.Tensor, k_star_diag: torch.Tensor,
                 y: torch.Tensor, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and variance of GP regression with Gaussian noise.

    Shapes: ``K (N, N)`` train kernel, ``K_star (M, N)``, ``k_star_diag (M,)``,
    ``y (N,)``. Uses a Cholesky factor of ``K + noise I``.
    """
    L = torch.linalg.cholesky(K + noise * torch.eye(len(K), dtype=K.dtype))
    alpha = torch.cholesky_solve(y[:, None], L)[:, 0]
    v = torch.linalg.solve_triangular(L, K_star.T, upper=False)
    return K_star @ alpha, k_star_diag - (v * v).sum(0)


def gp_log_evidence(K: torch.Tensor, y: torch.Tensor, noise: float) -> float:
    """Log marginal likelihood ``log N(y; 0, K + noise I)`` (the evidence)."""
    n = len(y)
    L = torch.linalg.cholesky(K + noise * torch.eye(n, dtype=K.dtype))
    alpha = torch.cholesky_solve(y[:, None], L)[:, 0]
    return float(-0.5 * y @ alpha - torch.log(torch.diagonal(L)).sum()
                 - 0.5 * n * math.log(2 * math.pi))
