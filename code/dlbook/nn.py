"""The book's building blocks, with PyTorch's signatures (shared machinery).

Every chapter that needs a multilayer perceptron, an initialization scheme, a
residual wrapper or a parameter count takes it from here, so that the book has
one of each. The initialization schemes are explained in the practice chapter
(variance propagation); :func:`mlp` is the network of most small experiments.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["INIT_SCHEMES", "ACTIVATIONS", "activation", "fans", "init_layer_",
           "init_", "mlp", "Residual", "Dropout", "dropout", "count_parameters",
           "linear_layers"]

#: The initialization schemes :func:`init_` knows, by name.
INIT_SCHEMES = ("pytorch", "lecun", "glorot", "he", "orthogonal", "zero-output")

#: Activation functions by name, as modules.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
    "silu": nn.SiLU, "elu": nn.ELU, "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU, "identity": nn.Identity,
}


def activation(name: str | Callable[[], nn.Module]) -> nn.Module:
    """A fresh activation module from its name (``"relu"``, ``"tanh"``, ...)
    or from a zero-argument factory such as ``nn.ReLU``."""
    if callable(name) and not isinstance(name, str):
        return name()
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} "
                         f"or a module factory, got {name!r}")
    return ACTIVATIONS[name]()


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of shape ``(out, in, *kernel)``.

    For a linear layer ``(out, in)`` they are ``in`` and ``out``; for a
    convolution each is multiplied by the kernel's size, as in PyTorch.
    """
    if weight.ndim < 2:
        raise ValueError(f"a weight needs >= 2 dims (out, in, ...), got "
                         f"shape {tuple(weight.shape)}")
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


@torch.no_grad()
def init_layer_(layer: nn.Module, scheme: str = "pytorch", *,
                generator: torch.Generator | None = None, gain: float = 1.0,
                bias_std: float = 0.0) -> nn.Module:
    """Initialize one layer's ``weight`` (and ``bias``) in place; return it.

    Schemes, with ``n_in, n_out`` the fans (:func:`fans`):

    * ``"pytorch"``: ``W, b ~ U(-1/sqrt(n_in), 1/sqrt(n_in))``, the default of
      ``nn.Linear`` and ``nn.Conv2d``;
    * ``"lecun"``: ``W ~ N(0, gain^2 / n_in)`` (LeCun et al., 1998);
    * ``"glorot"``: ``W ~ U(-a, a)`` with ``a = gain sqrt(6 / (n_in + n_out))``,
      variance ``2 gain^2 / (n_in + n_out)`` (Glorot and Bengio, 2010);
    * ``"he"``: ``W ~ N(0, 2 gain^2 / n_in)`` (He et al., 2015);
    * ``"orthogonal"``: ``W`` (flattened to ``(out, rest)``) is ``gain``
      times a matrix with orthonormal rows or columns, Haar-distributed
      (Saxe et al., 2014).

    Except for ``"pytorch"``, biases are drawn ``N(0, bias_std^2)`` (zero by
    default). All randomness comes from ``generator``.
    """
    w = getattr(layer, "weight", None)
    if not isinstance(w, torch.Tensor):
        raise ValueError(f"layer must have a weight tensor, got {type(layer).__name__}")
    b = getattr(layer, "bias", None)
    n_in, n_out = fans(w)
    if scheme == "pytorch":
        bound = 1.0 / math.sqrt(n_in)
        w.uniform_(-bound, bound, generator=generator)
        if b is not None:
            b.uniform_(-bound, bound, generator=generator)
        return layer
    if scheme in ("lecun", "he"):
        w.normal_(0.0, gain * math.sqrt((2.0 if scheme == "he" else 1.0) / n_in),
                  generator=generator)
    elif scheme == "glorot":
        a = gain * math.sqrt(6.0 / (n_in + n_out))
        w.uniform_(-a, a, generator=generator)
    elif scheme == "orthogonal":
        w.copy_(gain * _orthogonal(w.shape[0], w[0].numel(), generator,
                                   w.dtype).reshape(w.shape))
    else:
        raise ValueError(f"scheme must be one of {INIT_SCHEMES[:-1]}, got {scheme!r}")
    if b is not None:
        b.normal_(0.0, bias_std, generator=generator) if bias_std > 0 else b.zero_()
    return layer


def _orthogonal(rows: int, cols: int, generator: torch.Generator | None,
                dtype: torch.dtype) -> torch.Tensor:
    """A Haar-random ``(rows, cols)`` matrix with orthonormal rows or columns:
    QR of a Gaussian matrix, with the signs of R's diagonal moved into Q."""
    a = torch.randn(max(rows, cols), min(rows, cols), generator=generator,
                    dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))
    return (q if rows >= cols else q.T).to(dtype)


def linear_layers(model: nn.Module) -> list[nn.Module]:
    """The layers with a weight matrix (linear and convolutional), in order."""
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return [m for m in model.modules() if isinstance(m, kinds)]


def init_(model: nn.Module, scheme: str = "pytorch", *,
          generator: torch.Generator | None = None, gain: float = 1.0,
          bias_std: float = 0.0) -> nn.Module:
    """Initialize every linear and convolutional layer of ``model`` in place.

    ``scheme`` is one of :data:`INIT_SCHEMES` (see :func:`init_layer_`);
    ``"zero-output"`` is PyTorch's default for every layer but the last,
    whose weight and bias are zero, so that the network starts as the
    constant zero function (used for residual branches and for policy and
    value heads). Layers are visited in the order of ``model.modules()``,
    each drawing from ``generator``. Returns ``model``.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
    layers = linear_layers(model)
    if not layers:
        raise ValueError("model has no linear or convolutional layer")
    base = "pytorch" if scheme == "zero-output" else scheme
    for layer in layers:
        init_layer_(layer, base, generator=generator, gain=gain, bias_std=bias_std)
    if scheme == "zero-output":
        with torch.no_grad():
            layers[-1].weight.zero_()
            if layers[-1].bias is not None:
                layers[-1].bias.zero_()
    return model


def dropout(
    x: torch.Tensor, p: float = 0.5, training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Inverted dropout: zero entries with probability ``p``, scale the rest.

    Survivors are multiplied by ``1 / (1 - p)`` so that ``E[dropout(x)] = x``
    (training chapter); at evaluation time (``training=False``) it is the
    identity. Shape: any; the output has the shape of ``x``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep / (1.0 - p)


class Dropout(nn.Module):
    """Inverted dropout as a layer; same argument as :class:`torch.nn.Dropout`.

    Active in ``model.train()`` mode, the identity in ``model.eval()`` mode.
    Masks are drawn from ``generator`` (global RNG if ``None``). Two layers
    must not share one seed, or they draw identical masks: :func:`mlp` gives
    each layer a generator of its own.
    """

    def __init__(self, p: float = 0.5,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        self.p, self.generator = p, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _child_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """A new generator seeded by a draw from ``generator`` (None stays None)."""
    if generator is None:
        return None
    child = torch.Generator()
    child.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return child


def mlp(sizes: Sequence[int], activation: str | Callable[[], nn.Module] = "relu",
        bias: bool = True, generator: torch.Generator | None = None, *,
        init: str = "pytorch", dropout: float = 0.0, bias_std: float = 0.0,
        dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """A multilayer perceptron ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    ``nn.Linear`` layers with ``activation`` between them (none after the
    last), initialized by :func:`init_` with ``init`` and ``bias_std``, all
    randomness from ``generator``. With ``dropout > 0`` a :class:`Dropout`
    follows every hidden activation; each draws its masks from its own
    generator, seeded from ``generator``, so masks are independent across
    layers. Shapes: ``(N, sizes[0]) -> (N, sizes[-1])``.
    """
    sizes = list(sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must be >= 2 positive ints, got {sizes!r}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out, bias=bias, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(_activation(activation))
            if dropout > 0:
                layers.append(Dropout(dropout))
    model = nn.Sequential(*layers)
    init_(model, init, generator=generator, bias_std=bias_std)
    for m in model:  # after the weights, so that dropout does not shift them
        if isinstance(m, Dropout):
            m.generator = _child_generator(generator)
    return model


_activation = activation  # mlp's argument shadows the function's name


class Residual(nn.Module):
    """``x + alpha * branch(x)``: an identity path around ``branch``.

    ``branch`` must map a shape to itself. Shape: any, ``(N, *) -> (N, *)``.
    """

    def __init__(self, branch: nn.Module, alpha: float = 1.0) -> None:
        super().__init__()
        self.branch, self.alpha = branch, alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if out.shape != x.shape:
            raise ValueError(f"the residual branch changed the shape from "
                             f"{tuple(x.shape)} to {tuple(out.shape)}")
        return x + self.alpha * out

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


def count_parameters(model: nn.Module, trainable: bool = True) -> int:
    """The number of scalar parameters of ``model`` (only those that require
    gradients when ``trainable``); shared tensors are counted once."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total
