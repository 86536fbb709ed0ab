"""Chapter 6 (cnn): LeNet-5 (1998) and AlexNet (2012) as published, for
counting, and the small networks the chapter trains.

All convolutions and poolings are this package's own (:mod:`.layers`).
The small LeNet that chapter 1 trains on 8x8 digits is
:class:`dlbook.history.LeNet`; :class:`LeNet5` is the 1998 architecture.
"""
from __future__ import annotations

import torch
from torch import nn

from dlbook.nn import init_layer_

from .functional import avg_pool2d, conv2d
from .layers import Conv1d, Conv2d, GlobalAvgPool2d, MaxPool2d

__all__ = ["ScaledTanh", "Subsampling", "SparseConv2d", "EuclideanRBF",
           "LENET5_C3_TABLE", "LeNet5", "LocalResponseNorm", "AlexNet",
           "DigitsCNN", "DeepConvNet", "MotifNet"]


class ScaledTanh(nn.Module):
    """LeCun's squashing function ``f(a) = A tanh(S a)``, ``A = 1.7159``,
    ``S = 2/3``, so that ``f(1) = 1`` and ``f(-1) = -1`` (LeCun et al., 1998)."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(2.0 * a / 3.0)


class Subsampling(nn.Module):
    """LeNet-5's S-layers: each unit sums a 2x2 block, multiplies by one
    trainable coefficient per map and adds one trainable bias per map.

    Shape: ``(N, C, H, W) -> (N, C, H / 2, W / 2)``; ``2 C`` parameters.
    """

    def __init__(self, channels: int, *, generator: torch.Generator | None = None
                 ) -> None:
        super().__init__()
        self.kernel_size = 2
        bound = 0.5  # fan-in 4: U(-1/sqrt(4), 1/sqrt(4)), as PyTorch would draw
        self.weight = nn.Parameter(torch.empty(channels).uniform_(
            -bound, bound, generator=generator))
        self.bias = nn.Parameter(torch.empty(channels).uniform_(
            -bound, bound, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = 4.0 * avg_pool2d(x, 2)
        return total * self.weight[:, None, None] + self.bias[:, None, None]


#: Table I of LeCun et al. (1998): the S2 maps each C3 map reads.
LENET5_C3_TABLE: tuple[tuple[int, ...], ...] = (
    *[tuple((i + j) % 6 for j in range(3)) for i in range(6)],
    *[tuple((i + j) % 6 for j in range(4)) for i in range(6)],
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5), (0, 1, 2, 3, 4, 5),
)


class SparseConv2d(nn.Module):
    """A convolution in which output map ``o`` reads only the input maps
    ``table[o]`` (LeNet-5's C3). Only the connected kernels are parameters:
    ``weight`` has shape ``(sum_o len(table[o]), k, k)``.

    Shape: ``(N, C_in, H, W) -> (N, len(table), H - k + 1, W - k + 1)``.
    """

    def __init__(self, in_channels: int, table: tuple[tuple[int, ...], ...],
                 kernel_size: int, *, generator: torch.Generator | None = None
                 ) -> None:
        super().__init__()
        if any(not t or max(t) >= in_channels or min(t) < 0 for t in table):
            raise ValueError(f"every table row must list input maps in "
                             f"[0, {in_channels}), got {table}")
        self.in_channels, self.table = in_channels, table
        self.kernel_size = kernel_size
        out_idx = [o for o, t in enumerate(table) for _ in t]
        in_idx = [c for t in table for c in t]
        self.register_buffer("out_idx", torch.tensor(out_idx), persistent=False)
        self.register_buffer("in_idx", torch.tensor(in_idx), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(in_idx), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(len(table)))
        with torch.no_grad():  # each map's fan-in is its own number of inputs
            for o, t in enumerate(table):
                b = (len(t) * kernel_size ** 2) ** -0.5
                rows = (self.out_idx == o).nonzero().flatten()
                self.weight[rows] = torch.empty(len(rows), kernel_size, kernel_size
                                                ).uniform_(-b, b, generator=generator)
                self.bias[o] = torch.empty(()).uniform_(-b, b, generator=generator)

    def dense_weight(self) -> torch.Tensor:
        """The ``(C_out, C_in, k, k)`` weight with zeros for absent connections."""
        k = self.kernel_size
        w = self.weight.new_zeros(len(self.table), self.in_channels, k, k)
        return w.index_put((self.out_idx, self.in_idx), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d(x, self.dense_weight(), self.bias)


class EuclideanRBF(nn.Module):
    """LeNet-5's output layer: ``y_i = sum_j (x_j - w_ij)^2``, with fixed
    (non-trainable) centres ``w_i`` in ``{-1, +1}^84``. Returns ``-y`` so that
    the largest output is the predicted class. Shape: ``(N, in) -> (N, out)``.

    The paper drew its centres as stylized 7x12 bitmaps of the characters;
    we draw random signs from ``generator`` instead.
    """

    def __init__(self, in_features: int, out_features: int, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        signs = torch.randint(0, 2, (out_features, in_features), generator=generator)
        self.register_buffer("centers", 2.0 * signs.float() - 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x[:, None, :] - self.centers) ** 2).sum(-1)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998): C1-S2-C3-S4-C5-F6-RBF on 32x32 inputs.

    Every C, S and F layer is followed by :class:`ScaledTanh`. C3 is
    partially connected (``LENET5_C3_TABLE``). Shape:
    ``(N, 1, 32, 32) -> (N, 10)`` scores.
    """

    def __init__(self, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        g = generator
        self.C1, self.S2 = Conv2d(1, 6, 5, generator=g), Subsampling(6, generator=g)
        self.C3 = SparseConv2d(6, LENET5_C3_TABLE, 5, generator=g)
        self.S4 = Subsampling(16, generator=g)
        self.C5 = Conv2d(16, 120, 5, generator=g)
        self.F6 = init_layer_(nn.Linear(120, 84), generator=g)
        self.output = EuclideanRBF(84, 10, generator=g)
        self.act = ScaledTanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 32, 32):
            raise ValueError(f"x must have shape (N, 1, 32, 32), got {tuple(x.shape)}")
        f = self.act
        x = f(self.S4(f(self.C3(f(self.S2(f(self.C1(x))))))))
        return self.output(f(self.F6(f(self.C5(x)).flatten(1))))


class LocalResponseNorm(nn.Module):
    """AlexNet's normalization across channels, in the paper's form:
    ``b_c = a_c / (k + alpha sum_{|c' - c| <= n/2} a_{c'}^2)^beta``.

    (``torch.nn.LocalResponseNorm`` divides ``alpha`` by ``n``.) Shape kept.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                 k: float = 2.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        h = self.size // 2
        sq = nn.functional.pad(a * a, (0, 0, 0, 0, h, h))
        C = a.shape[1]
        s = sum(sq[:, i:i + C] for i in range(self.size))
        return a / (self.k + self.alpha * s) ** self.beta


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al., 2012) with its two-GPU split as
    ``groups=2``: conv2, conv4 and conv5 see only their own half of the maps.

    The paper quotes 224x224 inputs, but its 11x11 stride-4 first layer
    gives 55x55 maps only from 227x227. Shape: ``(N, 3, 227, 227) -> (N, 1000)``.
    Build it under ``torch.device("meta")`` to count without allocating.
    """

    def __init__(self, num_classes: int = 1000, *, dropout: float = 0.5,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        g = generator
        self.features = nn.Sequential(
            Conv2d(3, 96, 11, stride=4, generator=g), nn.ReLU(), LocalResponseNorm(),
            MaxPool2d(3, 2),
            Conv2d(96, 256, 5, padding=2, groups=2, generator=g), nn.ReLU(),
            LocalResponseNorm(), MaxPool2d(3, 2),
            Conv2d(256, 384, 3, padding=1, generator=g), nn.ReLU(),
            Conv2d(384, 384, 3, padding=1, groups=2, generator=g), nn.ReLU(),
            Conv2d(384, 256, 3, padding=1, groups=2, generator=g), nn.ReLU(),
            MaxPool2d(3, 2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 227, 227):
            raise ValueError(f"x must have shape (N, 3, 227, 227), got "
                             f"{tuple(x.shape)}")
        return self.classifier(self.features(x))


class DigitsCNN(nn.Module):
    """A small CNN for 8x8 digits: a 3x3 convolution, ReLU, a 3x3 convolution
    with dilation 2, ReLU (receptive field 7x7, no subsampling), then a linear
    classifier on either all positions (``head="flatten"``) or their average
    (``head="gap"``, global average pooling).

    With ``padding_mode="circular"`` and ``head="gap"`` the network is exactly
    invariant to cyclic shifts. Shape: ``(N, 1, 8, 8)`` or ``(N, 64)`` ``-> (N, 10)``.
    """

    def __init__(self, channels: tuple[int, int] = (8, 16), head: str = "gap",
                 padding_mode: str = "zeros", *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if head not in ("gap", "flatten"):
            raise ValueError(f"head must be 'gap' or 'flatten', got {head!r}")
        c1, c2 = channels
        g, pm = generator, padding_mode
        self.features = nn.Sequential(
            Conv2d(1, c1, 3, padding=1, padding_mode=pm, generator=g), nn.ReLU(),
            Conv2d(c1, c2, 3, padding=2, dilation=2, padding_mode=pm, generator=g),
            nn.ReLU())
        pool = GlobalAvgPool2d() if head == "gap" else nn.Flatten()
        width = c2 if head == "gap" else c2 * 64
        self.head = nn.Sequential(pool, init_layer_(nn.Linear(width, 10), generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2 and x.shape[1] == 64:
            x = x.reshape(-1, 1, 8, 8)
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise ValueError(f"x must have shape (N, 1, 8, 8) or (N, 64), got "
                             f"{tuple(x.shape)}")
        return self.head(self.features(x))


class _PreActLayer(nn.Module):
    """``conv(relu(x))``, or ``x + alpha conv(relu(x))`` when residual."""

    def __init__(self, width: int, residual: bool, alpha: float,
                 generator: torch.Generator | None) -> None:
        super().__init__()
        self.conv = Conv2d(width, width, 3, padding=1, generator=generator)
        self.residual, self.alpha = residual, alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.conv(torch.relu(x))
        return x + self.alpha * branch if self.residual else branch


class DeepConvNet(nn.Module):
    """A stem convolution, ``depth`` pre-activation 3x3 layers of ``width``
    channels, global average pooling and a linear classifier.

    With ``residual=True`` each layer is ``x + alpha conv(relu(x))``
    (the pre-activation block of He et al., 2016, with one convolution);
    otherwise ``conv(relu(x))``: the plain twin has exactly the same
    parameters. Shape: ``(N, 1, 8, 8) -> (N, 10)``.
    """

    def __init__(self, depth: int, width: int = 8, residual: bool = True,
                 alpha: float = 1.0, *, generator: torch.Generator | None = None
                 ) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got {depth}, {width}")
        g = generator
        self.stem = Conv2d(1, width, 3, padding=1, generator=g)
        self.body = nn.Sequential(*[_PreActLayer(width, residual, alpha, g)
                                    for _ in range(depth)])
        self.head = nn.Sequential(nn.ReLU(), GlobalAvgPool2d(),
                                  init_layer_(nn.Linear(width, 10), generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2 and x.shape[1] == 64:
            x = x.reshape(-1, 1, 8, 8)
        return self.head(self.body(self.stem(x)))


class MotifNet(nn.Module):
    """DeepBind in miniature (Alipanahi et al., 2015): ``filters`` 1-D
    convolutions of ``width`` over one-hot DNA, ReLU, a max over positions,
    and a linear read-out. Shape: ``(N, 4, L) -> (N,)`` logits.
    """

    def __init__(self, filters: int = 4, width: int = 12, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.conv = Conv1d(4, filters, width, generator=generator)
        self.out = init_layer_(nn.Linear(filters, 1), generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != 4:
            raise ValueError(f"x must be one-hot DNA (N, 4, L), got {tuple(x.shape)}")
        h = torch.relu(self.conv(x)).amax(dim=-1)  # global max pooling
        return self.out(h).squeeze(-1)
