"""Positional information: sinusoidal codes, rotary embeddings.

Chapter: transformers. Without positional information self-attention is
permutation-equivariant; these are the three standard ways to break the
symmetry (learned embeddings are a plain ``nn.Embedding``, see
:class:`~dlbook.transformer.gpt.GPT`).
"""
from __future__ import annotations

import torch

__all__ = ["sinusoidal_encoding", "rotary_angles", "apply_rotary",
           "rotation_blocks"]


def sinusoidal_encoding(n_positions: int, d_model: int, base: float = 10000.0,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The code of Vaswani et al. (2017): ``PE[p, 2i] = sin(p / base^(2i/d))``,
    ``PE[p, 2i+1] = cos(p / base^(2i/d))``. Shape: ``(n_positions, d_model)``.
    """
    if d_model % 2 or d_model < 2:
        raise ValueError(f"d_model must be even and >= 2, got {d_model}")
    p = torch.arange(n_positions, dtype=torch.float64).unsqueeze(1)
    freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.empty(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(p * freq)                     # eq. (sinusoid)
    pe[:, 1::2] = torch.cos(p * freq)
    return pe.to(dtype)


def rotary_angles(positions: torch.Tensor, dim: int, base: float = 10000.0
                  ) -> torch.Tensor:
    """Angles ``p * theta_i`` with ``theta_i = base^(-2i/dim)``, ``i < dim/2``.

    Shape: ``positions (T,)`` -> ``(T, dim / 2)`` float64.
    """
    if dim % 2 or dim < 2:
        raise ValueError(f"dim must be even and >= 2, got {dim}")
    theta = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    return positions.to(torch.float64).unsqueeze(-1) * theta


def apply_rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0
                 ) -> torch.Tensor:
    """Rotary position embedding (Su et al., RoFormer): rotate each coordinate
    pair ``(x_{2i}, x_{2i+1})`` of the token at position ``p`` by the angle
    ``p * theta_i``. Applied to queries and keys, it makes their dot product
    a function of the offset only. Shapes: ``x (..., T, d)``, ``positions
    (T,)`` -> ``(..., T, d)``.
    """
    if positions.shape != (x.shape[-2],):
        raise ValueError(f"positions must have shape ({x.shape[-2]},), got "
                         f"{tuple(positions.shape)}")
    ang = rotary_angles(positions, x.shape[-1], base)
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2)                                # eq. (rope)


def rotation_blocks(position: int, dim: int, base: float = 10000.0,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The ``(dim, dim)`` block-diagonal rotation ``R_p`` that
    :func:`apply_rotary` applies at ``position``: ``apply_rotary(x)[p] =
    R_p @ x[p]``."""
    ang = rotary_angles(torch.tensor([position]), dim, base)[0]
    R = torch.zeros(dim, dim, dtype=torch.float64)
    c, s = ang.cos(), ang.sin()
    idx = torch.arange(0, dim, 2)
    R[idx, idx], R[idx, idx + 1] = c, -s
    R[idx + 1, idx], R[idx + 1, idx + 1] = s, c
    return R.to(dtype)
