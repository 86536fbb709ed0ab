"""Chapter 1 (history): backpropagation networks, the XOR MLP and a small
LeNet for scikit-learn's 8x8 digits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .perceptron import Perceptron, train_perceptron

# --------------------------------------------------------------------------
# Backpropagation networks: the XOR MLP and a small LeNet
# --------------------------------------------------------------------------
@torch.no_grad()
def init_uniform_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Redraw every Linear/Conv2d parameter from ``U(-1/sqrt(fan_in), ...)``.

    The same distribution as PyTorch's default initialisation, but drawn
    from ``generator`` so a model is a pure function of its seed.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            bound = 1 / math.sqrt(m.weight[0].numel())
            m.weight.uniform_(-bound, bound, generator=generator)
            if m.bias is not None:
                m.bias.uniform_(-bound, bound, generator=generator)
    return module


def xor_mlp(hidden: int = 2, *, generator: torch.Generator) -> nn.Sequential:
    """The network of the PDP era: ``Linear(2, hidden) -> tanh -> Linear(hidden, 1)``.

    Outputs one logit per row. Shape: ``(N, 2) -> (N, 1)``.
    """
    model = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1))
    return init_uniform_(model, generator)


@torch.no_grad()
def hidden_features(model: nn.Sequential, X: torch.Tensor) -> torch.Tensor:
    """The hidden layer ``tanh(W_1 x + b_1)`` of :func:`xor_mlp`. ``(N, hidden)``."""
    return model[1](model[0](X))


@dataclass(frozen=True)
class LeNetConfig:
    """Sizes of :class:`LeNet`. LeNet-5 used 6 and 16 maps, 120 and 84 units."""

    channels: tuple[int, int] = (6, 16)
    hidden: tuple[int, int] = (120, 84)
    classes: int = 10
    image_size: int = 8
    activation: str = "tanh"
    pool: str = "avg"


class LeNet(nn.Module):
    """LeNet-5 in small: (conv-tanh-avgpool) x 2, then three linear layers.

    3x3 convolutions with padding keep the map size; each 2x2 average pool
    (LeNet's "subsampling") halves it, so 8x8 inputs end as 2x2 maps.
    Shape: ``(N, 1, 8, 8) -> (N, classes)`` logits.
    """

    def __init__(self, config: LeNetConfig = LeNetConfig(), *,
                 generator: torch.Generator) -> None:
        super().__init__()
        c1, c2 = config.channels
        h1, h2 = config.hidden
        if config.image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, "
                             f"got {config.image_size}")
        act = {"tanh": nn.Tanh, "relu": nn.ReLU}.get(config.activation)
        pool = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}.get(config.pool)
        if act is None or pool is None:
            raise ValueError("activation must be 'tanh' or 'relu' and pool 'avg' "
                             f"or 'max', got {config.activation!r}, {config.pool!r}")
        side = config.image_size // 4
        self.config = config
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), act(), pool(2),
            nn.Conv2d(c1, c2, 3, padding=1), act(), pool(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * side * side, h1), act(),
            nn.Linear(h1, h2), act(), nn.Linear(h2, config.classes))
        init_uniform_(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"x must have shape (N, 1, H, W), got {tuple(x.shape)}")
        return self.classifier(self.features(x))


#: The LeNet variant the chapter trains: wider maps, ReLU and max pooling.
DIGITS_LENET = LeNetConfig(channels=(16, 32), activation="relu", pool="max")


def compare_on_digits(
    seed: int = 0, *, epochs: int = 30, config: LeNetConfig = DIGITS_LENET,
) -> dict[str, float]:
    """Test accuracy of a perceptron, logistic regression and a LeNet on digits.

    All three see the same stratified split ``digits(seed=seed)``. The
    multiclass perceptron makes ``epochs`` shuffled passes; scikit-learn's
    :class:`~sklearn.linear_model.LogisticRegression` (L2, ``C=1``) is the
    independent linear baseline; the LeNet is trained by
    :func:`dlbook.train.fit` with Adam. Returns ``{"perceptron": ..,
    "logistic": .., "lenet": .., "lenet_params": ..}``.
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from dlbook.data import digits
    from dlbook.train import accuracy, fit

    S = digits(seed=seed, images=True)
    flat_tr, flat_te = S.X_train.flatten(1), S.X_test.flatten(1)
    perc = Perceptron(64, 10)
    train_perceptron(perc, flat_tr.double(), S.y_train, max_epochs=epochs,
                     generator=torch.Generator().manual_seed(seed))
    out = {"perceptron": float((perc.predict(flat_te.double()) == S.y_test)
                               .double().mean())}
    with threadpool_limits(1):  # BLAS threads only slow a problem this small
        logreg = LogisticRegression(C=1.0, max_iter=1000)
        logreg.fit(flat_tr.numpy(), S.y_train.numpy())
    out["logistic"] = float(logreg.score(flat_te.numpy(), S.y_test.numpy()))
    g = torch.Generator().manual_seed(seed)
    net = LeNet(config, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    fit(net, nn.functional.cross_entropy, opt, S.train, epochs=epochs,
        batch_size=32, generator=g, scheduler=sched)
    net.eval()
    with torch.no_grad():
        out["lenet"] = accuracy(net(S.X_test), S.y_test)
    out["lenet_params"] = float(sum(p.numel() for p in net.parameters()))
    return out


