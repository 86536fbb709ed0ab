"""k-means from scratch: k-means++ seeding and Lloyd's iterations
(chapter: reconstruction).

Lloyd's algorithm alternates an assignment step (each point to its nearest
centre) and an update step (each centre to the mean of its points); neither
step can increase the objective, and the chapter proves that it terminates.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["KMeansResult", "kmeans_plusplus", "lloyd", "kmeans",
           "kmeans_objective", "assign", "reassign"]


@dataclass(frozen=True)
class KMeansResult:
    """The outcome of k-means.

    ``centers (K, D)``, ``labels (N,)``, ``inertia`` (the objective, the sum
    of squared distances to the assigned centres), ``history`` (the
    objective after each assignment step and after each update step, in
    order) and ``n_iter`` (the number of Lloyd iterations of the best run).
    """

    centers: torch.Tensor
    labels: torch.Tensor
    inertia: float
    history: list[float]
    n_iter: int


def _sq_dists(X: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Squared distances ``(N, K)``, clamped at zero against rounding."""
    d = ((X * X).sum(1, keepdim=True) - 2 * X @ centers.T
         + (centers * centers).sum(1))
    return d.clamp_min(0.0)


def assign(X: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """The index of the nearest centre of each row. Shape: ``(N,)``."""
    return _sq_dists(X, centers).argmin(dim=1)


def reassign(X: torch.Tensor, centers: torch.Tensor,
             labels: torch.Tensor) -> torch.Tensor:
    """The assignment step of Lloyd's algorithm: each point moves to its
    nearest centre, but only if that centre is strictly nearer than its
    current one (the rule under which the chapter proves termination).
    Shape: ``(N,)``.
    """
    d = _sq_dists(X, centers)
    nearest = d.argmin(dim=1)
    rows = torch.arange(len(X))
    stay = d[rows, labels] <= d[rows, nearest]
    return torch.where(stay, labels, nearest)


def kmeans_objective(X: torch.Tensor, centers: torch.Tensor,
                     labels: torch.Tensor) -> float:
    """``sum_i ||x_i - mu_{labels_i}||^2``. Shapes: ``X (N, D)``,
    ``centers (K, D)``, ``labels (N,)``."""
    return float(((X - centers[labels]) ** 2).sum())


def kmeans_plusplus(X: torch.Tensor, n_clusters: int, *,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """k-means++ seeding (Arthur and Vassilvitskii, 2007): the first centre
    uniformly at random, each next one drawn with probability proportional
    to the squared distance to the nearest centre chosen so far.
    Shape: ``X (N, D) -> (n_clusters, D)``.
    """
    n = X.shape[0]
    first = torch.randint(n, (1,), generator=generator)
    centers = [X[first[0]]]
    d2 = ((X - centers[0]) ** 2).sum(1)
    for _ in range(1, n_clusters):
        if float(d2.sum()) <= 0.0:  # fewer distinct points than clusters
            nxt = torch.randint(n, (1,), generator=generator)[0]
        else:
            nxt = torch.multinomial(d2, 1, generator=generator)[0]
        centers.append(X[nxt])
        d2 = torch.minimum(d2, ((X - X[nxt]) ** 2).sum(1))
    return torch.stack(centers)


def lloyd(X: torch.Tensor, centers: torch.Tensor, *, max_iter: int = 300
          ) -> KMeansResult:
    """Lloyd's iterations from ``centers (K, D)`` until the assignment no
    longer changes (or ``max_iter``): an update step (every non-empty
    cluster's centre to its mean; an empty cluster keeps its centre), then
    an assignment step (:func:`reassign`). ``history`` records the objective
    after the first assignment and after every step.
    """
    centers = centers.clone()
    labels = assign(X, centers)
    history = [kmeans_objective(X, centers, labels)]
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        for k in range(len(centers)):  # update step: means of the clusters
            members = labels == k
            if members.any():
                centers[k] = X[members].mean(dim=0)
        history.append(kmeans_objective(X, centers, labels))
        new = reassign(X, centers, labels)  # assignment step
        history.append(kmeans_objective(X, centers, new))
        if torch.equal(new, labels):
            break
        labels = new
    return KMeansResult(centers, labels, history[-1], history, n_iter)


def kmeans(X: torch.Tensor, n_clusters: int, *, n_init: int = 10,
           max_iter: int = 300, generator: torch.Generator | None = None
           ) -> KMeansResult:
    """k-means: ``n_init`` runs of k-means++ seeding followed by Lloyd's
    iterations; the run of lowest objective is returned.
    Shape: ``X (N, D)``, ``1 <= n_clusters <= N``.
    """
    if X.ndim != 2:
        raise ValueError(f"X must be (N, D), got {tuple(X.shape)}")
    if not 1 <= n_clusters <= X.shape[0]:
        raise ValueError(f"n_clusters must lie in [1, {X.shape[0]}], got "
                         f"{n_clusters}")
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")
    best = None
    for _ in range(n_init):
        run = lloyd(X, kmeans_plusplus(X, n_clusters, generator=generator),
                    max_iter=max_iter)
        if best is None or run.inertia < best.inertia:
            best = run
    return best
