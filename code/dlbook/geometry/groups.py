"""Groups, representations, symmetrization (chapter: geometric deep learning).

The finite groups of the chapter act on tensors through explicit matrices or
index maps, so that every claim about invariance can be measured:

* :func:`cyclic_representation`, :func:`permutation_matrix` and
  :func:`random_orthogonal` -- representations of C_4, S_n and O(n);
* :func:`symmetrize` -- the group average of a function (invariant or
  equivariant), the orthogonal projection onto invariant functions;
* :func:`invariance_error` and :func:`equivariance_error` -- the largest
  deviation from exact symmetry over a list of group elements.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch

__all__ = ["cyclic_representation", "permutation_matrix", "all_permutations",
           "random_permutations", "random_orthogonal", "symmetrize",
           "invariance_error", "equivariance_error"]

Transform = Callable[[torch.Tensor], torch.Tensor]


def cyclic_representation(k: int, order: int = 4, kind: str = "regular",
                          dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The matrix of the rotation r^k in a representation of C_order.

    ``kind="regular"``: the (order, order) cyclic shift e_s -> e_{s+k}, the
    representation by which C_4 acts on the rotation axis of a p4 feature map.
    ``kind="rotation"``: the (2, 2) rotation of the plane by 2 pi k / order.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    if kind == "regular":
        return torch.roll(torch.eye(order, dtype=dtype), k % order, dims=0)
    if kind == "rotation":
        a = 2 * math.pi * k / order
        c, s = math.cos(a), math.sin(a)
        return torch.tensor([[c, -s], [s, c]], dtype=dtype)
    raise ValueError(f"kind must be 'regular' or 'rotation', got {kind!r}")


def permutation_matrix(perm: Sequence[int] | torch.Tensor,
                       dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The (n, n) matrix P with (P x)_i = x_{perm[i]}.

    With this convention ``P @ x == x[perm]``, and P_{perm o sigma} =
    P_sigma P_perm (a right action; see the chapter).
    """
    perm = torch.as_tensor(perm, dtype=torch.long)
    n = len(perm)
    if sorted(perm.tolist()) != list(range(n)):
        raise ValueError(f"perm must be a permutation of 0..{n - 1}, "
                         f"got {perm.tolist()}")
    return torch.eye(n, dtype=dtype)[perm]


def all_permutations(n: int) -> torch.Tensor:
    """All n! permutations of 0..n-1 as rows of a LongTensor (n!, n)."""
    if not 1 <= n <= 8:
        raise ValueError(f"n must lie in 1..8 (n! rows), got {n}")
    return torch.tensor(list(itertools.permutations(range(n))), dtype=torch.long)


def random_permutations(count: int, n: int, *,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` independent uniform permutations of 0..n-1: (count, n)."""
    return torch.stack([torch.randperm(n, generator=generator)
                        for _ in range(count)])


def random_orthogonal(n: int, *, generator: torch.Generator | None = None,
                      det: int | None = None,
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A Haar-random (n, n) orthogonal matrix, from the QR decomposition of a
    Gaussian matrix with the signs of R's diagonal fixed (Mezzadri, 2007).

    ``det=+1`` or ``-1`` forces a rotation or a reflection by flipping the
    first column; ``None`` leaves the sign random.
    """
    if det not in (None, 1, -1):
        raise ValueError(f"det must be None, 1 or -1, got {det!r}")
    A = torch.randn(n, n, generator=generator, dtype=dtype)
    Q, R = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(R))
    if det is not None and torch.det(Q).sign().item() != det:
        Q[:, 0] = -Q[:, 0]
    return Q


def symmetrize(f: Transform, transforms: Sequence[Transform],
               inverse_out: Sequence[Transform] | None = None) -> Transform:
    """The group average of ``f`` over a finite group given by its action.

    ``transforms[g]`` maps an input x to g.x. Without ``inverse_out`` the
    result is the invariant average x -> mean_g f(g.x); with it,
    ``inverse_out[g]`` applies g^{-1} on the output and the result is the
    equivariant average x -> mean_g g^{-1}.f(g.x). The transforms must list
    every element of the group exactly once.
    """
    if len(transforms) == 0:
        raise ValueError("transforms must list at least one group element")
    if inverse_out is not None and len(inverse_out) != len(transforms):
        raise ValueError(f"inverse_out has {len(inverse_out)} maps, "
                         f"transforms {len(transforms)}")

    def averaged(x: torch.Tensor) -> torch.Tensor:
        total = 0
        for i, g in enumerate(transforms):
            y = f(g(x))
            total = total + (y if inverse_out is None else inverse_out[i](y))
        return total / len(transforms)

    return averaged


def invariance_error(f: Transform, x: torch.Tensor,
                     transforms: Sequence[Transform]) -> float:
    """``max_g max |f(g.x) - f(x)|``: zero for an invariant f."""
    fx = f(x)
    return max((f(g(x)) - fx).abs().max().item() for g in transforms)


def equivariance_error(f: Transform, x: torch.Tensor,
                       transforms_in: Sequence[Transform],
                       transforms_out: Sequence[Transform]) -> float:
    """``max_g max |f(g.x) - g.f(x)|``: zero for an equivariant f."""
    if len(transforms_in) != len(transforms_out):
        raise ValueError("transforms_in and transforms_out differ in length")
    fx = f(x)
    return max((f(gi(x)) - go(fx)).abs().max().item()
               for gi, go in zip(transforms_in, transforms_out))
