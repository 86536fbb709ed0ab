"""How generative models are judged: the maximum mean discrepancy, the
Frechet distance and mode coverage.

Chapter: generative-basics. ``mmd2`` is the unbiased estimator of the squared
MMD with a Gaussian kernel (Gretton et al., 2012); ``mmd2_gaussians`` its
closed form between two isotropic Gaussians, the oracle of the tests;
``frechet_distance`` the distance between the Gaussians fitted to two samples
(the FID of Heusel et al., 2017, when the features are Inception features);
``mode_coverage`` counts the modes of a known mixture that a sample reaches.
"""
from __future__ import annotations

import math

import torch

__all__ = ["gaussian_kernel", "mmd2", "mmd2_gaussians", "mmd_permutation_test",
           "frechet_distance", "mode_coverage"]


def _check_points(name: str, x: torch.Tensor) -> None:
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"{name} must have shape (N, D) with N >= 2, got "
                         f"{tuple(x.shape)}")


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor, bandwidth: float
                    ) -> torch.Tensor:
    """``k(x_i, y_j) = exp(-|x_i - y_j|^2 / (2 h^2))``. Shape: (N, D), (M, D)
    -> (N, M)."""
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    return torch.exp(-torch.cdist(x, y).pow(2) / (2 * bandwidth ** 2))


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float = 1.0,
         unbiased: bool = True) -> torch.Tensor:
    """Squared MMD between samples ``x (N, D)`` and ``y (M, D)``.

    ``unbiased=True`` is the U-statistic (diagonal terms dropped), whose
    expectation is exactly ``MMD^2``; it can be negative. ``False`` gives the
    V-statistic, the squared RKHS distance of the two empirical mean
    embeddings, which is >= 0 and biased upwards. Returns a 0-d tensor.
    """
    _check_points("x", x), _check_points("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y need the same D, got {x.shape[1]} and "
                         f"{y.shape[1]}")
    kxx, kyy = gaussian_kernel(x, x, bandwidth), gaussian_kernel(y, y, bandwidth)
    kxy = gaussian_kernel(x, y, bandwidth)
    n, m = len(x), len(y)
    if not unbiased:
        return kxx.mean() + kyy.mean() - 2 * kxy.mean()
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2 * kxy.mean()  # eq. (mmd-unbiased)


def _gauss_expected_kernel(mu_a, std_a, mu_b, std_b, h, d):
    s2 = h ** 2 + std_a ** 2 + std_b ** 2
    return (h ** 2 / s2) ** (d / 2) * math.exp(-sum((a - b) ** 2 for a, b in
                                                    zip(mu_a, mu_b)) / (2 * s2))


def mmd2_gaussians(mean_p: list[float], std_p: float, mean_q: list[float],
                   std_q: float, bandwidth: float = 1.0) -> float:
    """Exact ``MMD^2`` between ``N(mean_p, std_p^2 I)`` and
    ``N(mean_q, std_q^2 I)`` under the Gaussian kernel of ``bandwidth``.

    Uses ``E k(x, x') = (h^2/s^2)^{D/2} exp(-|m - m'|^2 / (2 s^2))`` with
    ``s^2 = h^2 + std^2 + std'^2`` for independent Gaussian ``x, x'``.
    """
    d = len(mean_p)
    if len(mean_q) != d:
        raise ValueError("mean_p and mean_q must have the same length")
    e = _gauss_expected_kernel
    return (e(mean_p, std_p, mean_p, std_p, bandwidth, d)
            + e(mean_q, std_q, mean_q, std_q, bandwidth, d)
            - 2 * e(mean_p, std_p, mean_q, std_q, bandwidth, d))


def mmd_permutation_test(x: torch.Tensor, y: torch.Tensor, bandwidth: float,
                         n_permutations: int = 200, *,
                         generator: torch.Generator | None = None) -> float:
    """p-value of the two-sample test ``P = Q`` with statistic ``mmd2``: the
    fraction of random relabellings of the pooled sample whose statistic is at
    least the observed one (the observed labelling counted once)."""
    _check_points("x", x), _check_points("y", y)
    pooled, n = torch.cat([x, y]), len(x)
    k = gaussian_kernel(pooled, pooled, bandwidth)

    def stat(idx: torch.Tensor) -> torch.Tensor:
        a, b = idx[:n], idx[n:]
        kaa, kbb = k[a][:, a], k[b][:, b]
        na, nb = len(a), len(b)
        return ((kaa.sum() - kaa.diagonal().sum()) / (na * (na - 1))
                + (kbb.sum() - kbb.diagonal().sum()) / (nb * (nb - 1))
                - 2 * k[a][:, b].mean())

    observed = stat(torch.arange(len(pooled)))
    hits = sum(int(stat(torch.randperm(len(pooled), generator=generator))
                   >= observed) for _ in range(n_permutations))
    return (1 + hits) / (1 + n_permutations)


def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a positive semi-definite matrix ``(D, D)``."""
    w, v = torch.linalg.eigh((a + a.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Squared Frechet (2-Wasserstein) distance between the Gaussians fitted
    to ``x (N, D)`` and ``y (M, D)``:
    ``|mu_x - mu_y|^2 + tr(S_x + S_y - 2 (S_x^{1/2} S_y S_x^{1/2})^{1/2})``.

    Computed in float64; the trace term uses the symmetric form, equal to
    ``tr((S_x S_y)^{1/2})``. With Inception features this is the FID.
    """
    _check_points("x", x), _check_points("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y need the same D, got {x.shape[1]} and "
                         f"{y.shape[1]}")
    x, y = x.double(), y.double()
    mx, my = x.mean(0), y.mean(0)
    sx, sy = torch.cov(x.T).reshape(x.shape[1], -1), torch.cov(y.T).reshape(
        y.shape[1], -1)
    rx = _sqrtm_psd(sx)
    cross = _sqrtm_psd(rx @ sy @ rx)
    return float((mx - my).pow(2).sum() + sx.trace() + sy.trace()
                 - 2 * cross.trace())


def mode_coverage(samples: torch.Tensor, centres: torch.Tensor, std: float,
                  radius: float = 3.0, min_count: int = 1
                  ) -> tuple[int, float, torch.Tensor]:
    """How well ``samples (N, D)`` cover a mixture with ``centres (K, D)``.

    A sample is *high quality* if it lies within ``radius * std`` of its
    nearest centre (the criterion of Srivastava et al., 2017). Returns the
    number of modes that receive at least ``min_count`` high-quality samples,
    the fraction of high-quality samples, and the share of the high-quality
    samples per mode, shape (K,).
    """
    _check_points("samples", samples)
    dist = torch.cdist(samples, centres)
    nearest_d, nearest = dist.min(1)
    good = nearest_d <= radius * std
    counts = torch.bincount(nearest[good], minlength=len(centres))
    share = counts.double() / max(int(good.sum()), 1)
    return int((counts >= min_count).sum()), good.double().mean().item(), share
