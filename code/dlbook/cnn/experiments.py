"""Chapter 6 (cnn): the chapter's experiments, small enough to run in seconds.

- :func:`residual_experiment`: a deep plain network against its residual twin;
- :func:`augmentation_experiment`: built-in versus learned translation
  invariance on shifted digits;
- :func:`train_motif_net`, :func:`filter_consensus`, :func:`motif_match`:
  a DeepBind-style motif finder and reading its filters;
- :func:`denoising_filter`: the least-squares optimal linear filter for
  denoising a photograph.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.data import digits, motif_sequences, shift_images
from dlbook.nn import Residual, init_layer_
from dlbook.train import accuracy, fit

from .functional import conv2d, extract_patches
from .models import DigitsCNN, MotifNet

__all__ = ["deep_mlp", "TWIN_VARIANTS", "residual_experiment", "random_shifts",
           "augmentation_experiment", "train_motif_net", "filter_consensus",
           "motif_match", "denoising_filter"]


def deep_mlp(depth: int, width: int = 32, residual: bool = True,
             alpha: float = 1.0, *, init: str = "pytorch",
             generator: torch.Generator | None = None) -> nn.Sequential:
    """``Linear(64, width)``, ``depth`` layers ``h -> W relu(h)`` (plain) or
    ``h -> h + alpha W relu(h)`` (residual), then ``relu``, ``Linear(width, 10)``.

    Every ``Linear`` is initialized by ``init`` (a scheme of
    :func:`dlbook.nn.init_layer_`). The plain and residual variants have
    identical parameters, drawn in the same order. Shape: ``(N, 64) -> (N, 10)``.
    """
    def lin(i: int, o: int) -> nn.Linear:
        return init_layer_(nn.Linear(i, o), init, generator=generator)

    layers: list[nn.Module] = [lin(64, width)]
    for _ in range(depth):
        branch = nn.Sequential(nn.ReLU(), lin(width, width))
        layers.append(Residual(branch, alpha) if residual else branch)
    return nn.Sequential(*layers, nn.ReLU(), lin(width, 10))


#: The variants of :func:`residual_experiment`: ``(depth, residual, init)``,
#: with ``depth=None`` for the experiment's ``depth``.
TWIN_VARIANTS: dict[str, tuple[int | None, bool, str]] = {
    "plain": (None, False, "pytorch"),
    "plain, He init": (None, False, "he"),
    "residual": (None, True, "pytorch"),
    "shallow (2 layers)": (2, False, "pytorch"),
}


def residual_experiment(depth: int = 30, width: int = 32, *, epochs: int = 20,
                        lr: float = 1e-3, seed: int = 0,
                        variants: dict[str, tuple[int | None, bool, str]]
                        | None = None) -> dict[str, dict]:
    """Train :func:`deep_mlp` variants (default ``TWIN_VARIANTS``: the
    plain network with PyTorch's and with He's initialization, its residual
    twin, and a shallow plain network) on the digits with Adam, each from
    the same seed (so the plain and residual twins start from the same
    weights); return, per variant, the per-epoch training loss and the final
    test accuracy."""
    S = digits(seed=seed)
    out = {}
    for name, (d, residual, init) in (variants or TWIN_VARIANTS).items():
        g = torch.Generator().manual_seed(seed)
        net = deep_mlp(depth if d is None else d, width, residual, init=init,
                       generator=g)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        h = fit(net, F.cross_entropy, opt, S.train, epochs=epochs, batch_size=64,
                generator=g, val=S.test, metrics={"acc": accuracy})
        out[name] = {"train_loss": h["train_loss"], "test_acc": h.final["val_acc"]}
    return out


def random_shifts(X: torch.Tensor, max_shift: int, *, generator: torch.Generator,
                  cyclic: bool = False) -> torch.Tensor:
    """Shift each image by its own ``(dx, dy)``, uniform in
    ``{-max_shift..max_shift}^2``, with zero fill (:func:`dlbook.data.shift_images`)
    or cyclically (``torch.roll``). Shape: ``(N, 1, H, W)``, kept."""
    if X.ndim != 4:
        raise ValueError(f"X must have shape (N, C, H, W), got {tuple(X.shape)}")
    d = torch.randint(-max_shift, max_shift + 1, (len(X), 2), generator=generator)
    out = torch.empty_like(X)
    for (dx, dy) in d.unique(dim=0).tolist():
        rows = ((d[:, 0] == dx) & (d[:, 1] == dy)).nonzero().flatten()
        out[rows] = (torch.roll(X[rows], (dy, dx), dims=(-2, -1)) if cyclic
                     else shift_images(X[rows], dx, dy))
    return out


def _mlp(generator: torch.Generator) -> nn.Sequential:
    g = generator
    return nn.Sequential(nn.Flatten(), init_layer_(nn.Linear(64, 128), generator=g),
                         nn.ReLU(), init_layer_(nn.Linear(128, 10), generator=g))


def augmentation_experiment(*, seed: int = 0, epochs: int = 4, max_shift: int = 1,
                            copies: int = 1, lr: float = 1e-2
                            ) -> dict[str, dict[str, float]]:
    """Built-in versus learned translation invariance on the digits.

    Models: logistic regression on raw pixels, an MLP and a
    :class:`DigitsCNN` with a flattening head, each trained with and without
    augmentation (``copies`` randomly shifted copies of the training set
    added, shifts up to ``max_shift`` pixels, zero fill), and a circular
    :class:`DigitsCNN` with global average pooling trained without it. Returns
    per model the test accuracy on clean images, on randomly shifted ones
    (zero fill) and on randomly cyclically shifted ones, the parameter count
    and the final cross-entropy on the clean training set (``train_loss``).
    Every network takes the same number of Adam steps (learning rate ``lr``,
    batches of 64); ``epochs`` must be a multiple of ``copies + 1``.
    """
    if epochs % (copies + 1):
        raise ValueError(f"epochs ({epochs}) must be a multiple of copies + 1 "
                         f"({copies + 1}) for equal numbers of steps")
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    S = digits(seed=seed, images=True)
    g = torch.Generator().manual_seed(seed)
    tests = {"clean": S.X_test,
             "shifted": random_shifts(S.X_test, max_shift, generator=g),
             "cyclic": random_shifts(S.X_test, max_shift, generator=g, cyclic=True)}
    Xa = torch.cat([S.X_train] + [random_shifts(S.X_train, max_shift, generator=g)
                                  for _ in range(copies)])
    ya = S.y_train.repeat(copies + 1)
    with threadpool_limits(1):
        logreg = LogisticRegression(C=1.0, max_iter=2000).fit(
            S.X_train.flatten(1).numpy(), S.y_train.numpy())
    res = {"logistic": {k: logreg.score(X.flatten(1).numpy(), S.y_test.numpy())
                        for k, X in tests.items()} | {"params": 650.0}}
    makers = {
        "MLP": (_mlp, (False, True)),
        "CNN, flatten": (lambda gg: DigitsCNN(head="flatten", generator=gg),
                         (False, True)),
        "CNN, global pool": (lambda gg: DigitsCNN(head="gap", padding_mode="circular",
                                                  generator=gg), (False,))}
    for name, (make, augs) in makers.items():
        for aug in augs:
            gg = torch.Generator().manual_seed(seed)
            net = make(gg)
            opt = torch.optim.Adam(net.parameters(), lr=lr)
            # the same number of gradient steps with and without augmentation
            fit(net, F.cross_entropy, opt, (Xa, ya) if aug else S.train,
                epochs=epochs // (copies + 1) if aug else epochs,
                batch_size=64, generator=gg)
            net.eval()
            with torch.no_grad():
                r = {k: accuracy(net(X), S.y_test) for k, X in tests.items()}
                r["train_loss"] = F.cross_entropy(net(S.X_train), S.y_train).item()
            r["params"] = float(sum(p.numel() for p in net.parameters()))
            res[name + (" + augmentation" if aug else "")] = r
    return res


def train_motif_net(*, n_train: int = 2000, n_test: int = 1000, length: int = 50,
                    motif: str = "ACGTAGCA", filters: int = 4, width: int = 12,
                    epochs: int = 15, seed: int = 0) -> tuple[MotifNet, dict]:
    """Train :class:`MotifNet` on :func:`dlbook.data.motif_sequences`; return
    the network and ``{"test_acc", "logistic_acc", "scan_acc"}``: the test
    accuracy of the network, of logistic regression on the flattened one-hot
    sequence, and of the oracle that scans for the exact motif."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    X, y, _ = motif_sequences(n_train, length, motif, seed=seed)
    Xt, yt, _ = motif_sequences(n_test, length, motif, seed=seed + 1)
    g = torch.Generator().manual_seed(seed)
    net = MotifNet(filters, width, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    fit(net, lambda z, t: F.binary_cross_entropy_with_logits(z, t.float()), opt,
        (X, y), epochs=epochs, batch_size=64, generator=g)
    with torch.no_grad():
        acc = ((net(Xt) > 0).long() == yt).double().mean().item()
    with threadpool_limits(1):
        lr = LogisticRegression(C=1.0, max_iter=2000).fit(X.flatten(1).numpy(),
                                                          y.numpy())
    code = torch.tensor(["ACGT".index(c) for c in motif])
    onehot = F.one_hot(code, 4).T.float()[None]                   # (1, 4, m)
    hits = conv2d(Xt[:, :, None], onehot[:, :, None]).amax(dim=(-2, -1))[:, 0]
    scan = ((hits >= len(motif) - 0.5).long() == yt).double().mean().item()
    return net, {"test_acc": acc, "logistic_acc": lr.score(Xt.flatten(1).numpy(),
                                                           yt.numpy()),
                 "scan_acc": scan}


def filter_consensus(weight: torch.Tensor) -> str:
    """The DNA string a 1-D filter ``(4, k)`` responds to most: the argmax
    channel (A, C, G, T) at each of its ``k`` positions."""
    if weight.ndim != 2 or weight.shape[0] != 4:
        raise ValueError(f"weight must have shape (4, k), got {tuple(weight.shape)}")
    return "".join("ACGT"[i] for i in weight.argmax(0).tolist())


def motif_match(weight: torch.Tensor, motif: str) -> tuple[int, int]:
    """Best alignment of ``motif`` inside :func:`filter_consensus` of
    ``weight``: ``(offset, number of matching letters)``, over the offsets
    at which the motif overlaps the filter fully or partly."""
    cons, m = filter_consensus(weight), len(motif)
    best = (0, -1)
    for off in range(-m + 1, len(cons)):
        hits = sum(0 <= off + j < len(cons) and cons[off + j] == motif[j]
                   for j in range(m))
        if hits > best[1]:
            best = (off, hits)
    return best


def denoising_filter(noisy: torch.Tensor, clean: torch.Tensor, k: int = 7
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k x k`` filter (with bias) minimizing ``||conv(noisy) - clean||^2``
    over all pixels whose window fits, by least squares on the im2col matrix.

    Shapes: ``noisy``, ``clean`` ``(N, 1, H, W)``; returns ``weight (1, 1, k, k)``
    and ``bias (1,)`` in float64, ready for :func:`conv2d`.
    """
    if noisy.shape != clean.shape or noisy.ndim != 4 or noisy.shape[1] != 1:
        raise ValueError(f"noisy and clean must both be (N, 1, H, W), got "
                         f"{tuple(noisy.shape)} and {tuple(clean.shape)}")
    h = k // 2
    A = extract_patches(noisy.double(), k).reshape(len(noisy), k * k, -1)
    A = A.transpose(1, 2).reshape(-1, k * k)
    A = torch.cat([A, torch.ones(len(A), 1, dtype=A.dtype)], 1)
    b = clean.double()[:, 0, h:clean.shape[2] - h, h:clean.shape[3] - h].reshape(-1)
    sol = torch.linalg.lstsq(A, b[:, None]).solution[:, 0]
    return sol[:-1].reshape(1, 1, k, k), sol[-1:]
