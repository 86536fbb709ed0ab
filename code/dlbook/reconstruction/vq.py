"""Vector quantization and the VQ-VAE (van den Oord et al., 2017)
(chapter: reconstruction).

The quantizer replaces each encoder vector by its nearest codeword. The
forward pass is exactly that codeword; the backward pass copies the gradient
to the encoder unchanged (the straight-through estimator). The codebook and
commitment losses pull codewords and encoder outputs towards each other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from dlbook.nn import mlp

__all__ = ["straight_through", "VectorQuantizer", "VQAutoencoder",
           "codebook_usage", "train_vq", "VQHistory"]


class _StraightThrough(torch.autograd.Function):
    """Forward: ``z_q`` exactly. Backward: the incoming gradient to ``z_e``
    unchanged, and nothing to ``z_q``."""

    @staticmethod
    def forward(ctx, z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        return z_q.detach().clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """The straight-through estimator: the value of ``z_q`` (bit for bit)
    with the gradient of the identity in ``z_e``, as ``z_e + sg(z_q - z_e)``
    would give up to rounding. Shapes equal, any."""
    if z_e.shape != z_q.shape:
        raise ValueError(f"z_e and z_q must have one shape, got "
                         f"{tuple(z_e.shape)} and {tuple(z_q.shape)}")
    return _StraightThrough.apply(z_e, z_q)


class VectorQuantizer(nn.Module):
    """Nearest-codeword quantization of vectors of size ``embedding_dim``
    with a codebook ``weight (num_embeddings, embedding_dim)`` (the layout of
    ``nn.Embedding``).

    ``forward(z_e)`` with ``z_e (N, L, d)`` returns ``(z_st, indices, codebook
    loss, commitment loss)``: ``z_st`` equals the chosen codewords and passes
    gradients straight through to ``z_e``; ``indices (N, L)``; the losses are
    ``mean ||sg(z_e) - e||^2`` and ``mean ||z_e - sg(e)||^2`` (squared norms
    averaged over the ``N * L`` vectors, so over the ``L`` positions too).
    Distances are computed without the matrix-product shortcut of
    ``torch.cdist``, so that near-ties are resolved as a direct search would.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *,
                 init_std: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        w = init_std * torch.randn(num_embeddings, embedding_dim,
                                   generator=generator)
        self.weight = nn.Parameter(w)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Indices of the nearest codewords. Shape: ``(..., d) -> (...)``."""
        if z.shape[-1] != self.weight.shape[1]:
            raise ValueError(f"last dimension must be {self.weight.shape[1]}, "
                             f"got {tuple(z.shape)}")
        flat = z.reshape(-1, z.shape[-1])
        d = torch.cdist(flat, self.weight.to(flat.dtype),
                        compute_mode="donot_use_mm_for_euclid_dist")
        return d.argmin(dim=1).reshape(z.shape[:-1])

    def forward(self, z_e: torch.Tensor):
        """Quantize ``z_e (N, L, d)``; see the class docstring."""
        idx = self.nearest(z_e.detach())
        e = self.weight[idx]
        codebook = ((z_e.detach() - e) ** 2).sum(-1).mean()
        commitment = ((z_e - e.detach()) ** 2).sum(-1).mean()
        return straight_through(z_e, e), idx, codebook, commitment


class VQAutoencoder(nn.Module):
    """An MLP encoder to ``n_latents`` vectors of size ``embedding_dim``,
    each quantized by one shared :class:`VectorQuantizer`, and an MLP
    decoder back to the input. ``forward`` returns ``(x_hat, indices,
    codebook loss, commitment loss)``. Shape: ``(N, D) -> (N, D)``.
    """

    def __init__(self, in_features: int, hidden: int, n_latents: int,
                 embedding_dim: int, num_embeddings: int, *,
                 init_std: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.shape = (n_latents, embedding_dim)
        width = n_latents * embedding_dim
        self.encoder = mlp([in_features, hidden, width], generator=generator)
        self.quantizer = VectorQuantizer(
            num_embeddings, embedding_dim, init_std=init_std,
            generator=generator)
        self.decoder = mlp([width, hidden, in_features], generator=generator)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous encoder outputs. Shape: ``(N, D) -> (N, L, d)``."""
        return self.encoder(x).reshape(len(x), *self.shape)

    def forward(self, x: torch.Tensor):
        """``(x_hat (N, D), indices (N, L), codebook, commitment loss)``."""
        z_st, idx, cb, commit = self.quantizer(self.encode(x))
        return self.decoder(z_st.reshape(len(x), -1)), idx, cb, commit


def codebook_usage(indices: torch.Tensor, num_embeddings: int
                   ) -> tuple[float, float]:
    """``(fraction of codewords used, perplexity)`` of a batch of indices;
    the perplexity ``exp(H)`` of the empirical code distribution lies
    between 1 (one code) and ``num_embeddings`` (uniform use)."""
    counts = torch.bincount(indices.reshape(-1), minlength=num_embeddings)
    p = counts.double() / counts.sum()
    nz = p[p > 0]
    entropy = float(-(nz * nz.log()).sum())
    return float((counts > 0).double().mean()), math.exp(entropy)


@dataclass
class VQHistory:
    """Per-epoch training records of :func:`train_vq` (whole training set)."""

    recon: list[float] = field(default_factory=list)
    used: list[float] = field(default_factory=list)
    perplexity: list[float] = field(default_factory=list)


def train_vq(model: VQAutoencoder, X: torch.Tensor, *, epochs: int,
             lr: float = 1e-3, beta: float = 0.25, batch_size: int = 128,
             generator: torch.Generator | None = None) -> VQHistory:
    """Adam on ``||x - x_hat||^2 + codebook + beta * commitment`` (eq. (3)
    of van den Oord et al., 2017, with a squared-error reconstruction).

    A loop of its own, not ``fit``: the loss has terms from inside the
    model, and the codebook usage is recorded after each epoch.
    """
    if epochs < 0 or beta < 0:
        raise ValueError(f"epochs and beta must be >= 0, got {epochs}, {beta}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    hist = VQHistory()
    K = model.quantizer.weight.shape[0]
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(X), generator=generator)
        for idx in order.split(batch_size):
            x = X[idx]
            x_hat, _, cb, commit = model(x)
            loss = ((x_hat - x) ** 2).sum(1).mean() + cb + beta * commit
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            model.eval()
            x_hat, codes, _, _ = model(X)
            hist.recon.append(float(((x_hat - X) ** 2).sum(1).mean()))
            used, ppl = codebook_usage(codes, K)
            hist.used.append(used)
            hist.perplexity.append(ppl)
    return hist
