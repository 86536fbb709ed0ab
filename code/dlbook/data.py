"""Datasets that ship with installed packages or are generated with a seed.

Shared machinery: every data set of the book comes from here. Nothing here
downloads anything. The digits and the two sample photographs come with
scikit-learn, the graphs with networkx, the text corpora inside this package
(``dlbook/corpora``, written once by ``tools/make_corpus.py`` from Python's
standard library), and every synthetic set is a pure function of its
``seed``. Loaded files are cached in memory only; every call returns fresh
tensors that the caller may modify.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import networkx as nx
import numpy as np
import torch
from scipy import ndimage
from sklearn.datasets import load_digits, load_sample_images, make_moons
from sklearn.model_selection import train_test_split

__all__ = ["Split", "digits", "two_moons", "spirals", "xor",
           "rot90_images", "rotate_images", "shift_images", "add_noise",
           "sample_images", "GraphData", "karate_club", "graph_families",
           "CORPORA", "text_corpus", "CharVocab", "motif_sequences",
           "sequence_task", "adding_problem", "ring_of_gaussians"]


@dataclass(frozen=True)
class Split:
    """A train/validation/test split of tensors.

    ``X_*`` have shape ``(N, D)`` (or ``(N, 1, 8, 8)`` for digit images) and
    ``y_*`` shape ``(N,)``. ``X_val``/``y_val`` are empty when no validation
    fraction was asked for.
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X_train, self.y_train

    @property
    def val(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X_val, self.y_val

    @property
    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X_test, self.y_test


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")


def digits(
    *,
    seed: int = 0,
    test_size: float = 0.25,
    val_size: float = 0.0,
    images: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Split:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes).

    Pixels (0..16) are scaled to [0, 1]. The split is stratified by class.
    ``val_size`` is a fraction of the whole set, carved out of the training
    part. With ``images=True``, ``X`` has shape ``(N, 1, 8, 8)``; otherwise
    ``(N, 64)``. Labels are ``int64``.
    """
    _check_fraction("test_size", test_size)
    _check_fraction("val_size", val_size)
    if test_size + val_size >= 1.0:
        raise ValueError(
            f"test_size + val_size must be < 1, got {test_size + val_size}")
    X, y = _digits_arrays()
    if test_size > 0:
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=test_size, random_state=seed, stratify=y)
    else:
        X_tr, X_te, y_tr, y_te = X, X[:0], y, y[:0]
    if val_size > 0:
        X_tr, X_va, y_tr, y_va = train_test_split(
            X_tr, y_tr, test_size=val_size / (1 - test_size),
            random_state=seed, stratify=y_tr)
    else:
        X_va, y_va = X_tr[:0], y_tr[:0]
    shape = (-1, 1, 8, 8) if images else (-1, 64)

    def tx(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=dtype).reshape(shape)  # a copy of the cache

    def ty(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.int64)

    return Split(tx(X_tr), ty(y_tr), tx(X_va), ty(y_va), tx(X_te), ty(y_te))


@functools.cache
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    ds = load_digits()
    X, y = ds.data / 16.0, ds.target
    X.flags.writeable = y.flags.writeable = False  # the cache is shared
    return X, y


def two_moons(
    n: int, *, noise: float = 0.1, seed: int = 0,
    dtype: torch.dtype = torch.float32, iid: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half-moons in 2-D. Shapes: ``X (n, 2)``, ``y (n,)``.

    With ``iid=False`` (the default, scikit-learn's ``make_moons``) the points
    are evenly spaced along the arcs before the noise is added, so two calls
    are not independent samples of one distribution: a two-sample statistic
    computed on them is biased. ``iid=True`` draws each point's class and its
    angle on the arc independently and uniformly.
    """
    if not iid:
        X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
        return torch.as_tensor(X, dtype=dtype), torch.as_tensor(y)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    t = rng.uniform(0.0, np.pi, size=n)
    X = np.where(y[:, None] == 0,
                 np.stack([np.cos(t), np.sin(t)], axis=1),
                 np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1))
    X += noise * rng.standard_normal(X.shape)
    return torch.as_tensor(X, dtype=dtype), torch.as_tensor(y)


def spirals(
    n: int, *, classes: int = 2, noise: float = 0.2, turns: float = 1.5,
    seed: int = 0, dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``classes`` interleaved spiral arms in 2-D, ``n`` points in all.

    Shapes: ``X (n, 2)``, ``y (n,)`` with labels ``0..classes-1``.
    """
    if n < classes:
        raise ValueError(f"n must be at least classes={classes}, got {n}")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    r = rng.uniform(0.05, 1.0, size=n)
    theta = 2 * np.pi * (turns * r + y / classes)
    X = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    X += noise * 0.1 * rng.standard_normal(X.shape)
    return torch.as_tensor(X, dtype=dtype), torch.as_tensor(y)


def xor(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The four points of XOR on {0, 1}^2. Shapes: ``X (4, 2)``, ``y (4,)``."""
    X = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    return X, torch.tensor([0, 1, 1, 0])


# --- image variants (robustness, transfer and geometry chapters) ---------------

def _as_images(X: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """View ``(N, 64)`` digits as ``(N, 1, 8, 8)``; return the view and the
    shape to restore."""
    if X.ndim == 2 and X.shape[1] == 64:
        return X.reshape(-1, 1, 8, 8), tuple(X.shape)
    if X.ndim == 4:
        return X, tuple(X.shape)
    raise ValueError(f"X must have shape (N, 64) or (N, C, H, W), got {tuple(X.shape)}")


def rot90_images(X: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Rotate images by ``k`` quarter turns counter-clockwise (exact).

    Shape: ``(N, 64)`` or ``(N, C, H, W)`` with ``H == W``; kept.
    """
    imgs, shape = _as_images(X)
    return torch.rot90(imgs, k, dims=(-2, -1)).reshape(shape)


def rotate_images(X: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate images by ``degrees`` counter-clockwise about their centre.

    Bilinear interpolation (``scipy.ndimage.rotate``, ``order=1``), zero
    outside, clipped to [0, 1]. Shape: ``(N, 64)`` or ``(N, C, H, W)``; kept.
    """
    imgs, shape = _as_images(X)
    out = ndimage.rotate(imgs.detach().cpu().double().numpy(), degrees,
                         axes=(-1, -2), reshape=False, order=1, mode="constant")
    return torch.as_tensor(out, dtype=X.dtype).clamp(0, 1).reshape(shape)


def shift_images(X: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate images by ``dx`` pixels right and ``dy`` pixels down.

    Pixels shifted in are zero (not wrapped). Shape kept.
    """
    imgs, shape = _as_images(X)
    out = torch.zeros_like(imgs)
    H, W = imgs.shape[-2:]
    if abs(dx) < W and abs(dy) < H:
        src = imgs[..., max(0, -dy):H - max(0, dy), max(0, -dx):W - max(0, dx)]
        out[..., max(0, dy):H - max(0, -dy), max(0, dx):W - max(0, -dx)] = src
    return out.reshape(shape)


def add_noise(X: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """Add ``N(0, std^2)`` pixel noise drawn with ``seed``; clip to [0, 1]."""
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(X.shape, generator=g, dtype=X.dtype)
    return (X + std * noise).clamp(0, 1)


@functools.cache
def _sample_photos() -> np.ndarray:
    imgs = np.stack(load_sample_images().images)  # (2, 427, 640, 3) uint8
    imgs.flags.writeable = False
    return imgs


def sample_images(gray: bool = False, downsample: int = 1) -> torch.Tensor:
    """scikit-learn's two sample photographs (a temple in China, a flower).

    Each is 427 x 640 pixels in colour. Returns ``(2, C, H, W)`` float32 in
    [0, 1] with ``C = 1`` when ``gray`` (the mean of the channels) and ``C = 3``
    otherwise; ``downsample = k`` averages ``k x k`` blocks (edges that do
    not fill a block are cropped).
    """
    if downsample < 1:
        raise ValueError(f"downsample must be >= 1, got {downsample}")
    x = torch.as_tensor(np.array(_sample_photos()), dtype=torch.float32) / 255.0
    x = x.permute(0, 3, 1, 2)
    if gray:
        x = x.mean(dim=1, keepdim=True)
    if downsample > 1:
        x = torch.nn.functional.avg_pool2d(x, downsample)
    return x.contiguous()


# --- graphs (graph networks chapter) --------------------------------------------

@dataclass(frozen=True)
class GraphData:
    """A graph with node labels: the networkx graph, its dense adjacency
    ``(n, n)`` (float32, symmetric, zero diagonal), labels ``(n,)`` int64,
    and the class names."""

    graph: nx.Graph
    adjacency: torch.Tensor
    labels: torch.Tensor
    names: tuple[str, ...]


def karate_club() -> GraphData:
    """Zachary's karate club (1977), as networkx ships it: 34 members, 78
    friendships; label 0 for the members who sided with the instructor
    ("Mr. Hi"), 1 for those who sided with the club's officer."""
    g = nx.karate_club_graph()
    adj = torch.as_tensor(nx.to_numpy_array(g, nodelist=range(34), weight=None),
                          dtype=torch.float32)
    labels = torch.tensor([0 if g.nodes[v]["club"] == "Mr. Hi" else 1
                           for v in range(34)])
    return GraphData(g, adj, labels, ("Mr. Hi", "Officer"))


def _family_graph(family: str, n: int, rng: np.random.Generator) -> nx.Graph:
    seed = int(rng.integers(2**31))
    if family == "cycle":
        return nx.cycle_graph(n)
    if family == "erdos_renyi":
        return nx.gnp_random_graph(n, 3.0 / n, seed=seed)
    if family == "barabasi_albert":
        return nx.barabasi_albert_graph(n, 2, seed=seed)
    if family == "watts_strogatz":
        return nx.connected_watts_strogatz_graph(n, 4, 0.2, seed=seed)
    if family == "grid":
        a = max(2, int(round(n ** 0.5)))
        return nx.convert_node_labels_to_integers(nx.grid_2d_graph(a, max(2, n // a)))
    if family == "tree":
        return nx.random_labeled_tree(n, seed=seed) if hasattr(
            nx, "random_labeled_tree") else nx.random_tree(n, seed=seed)
    raise ValueError(f"unknown graph family {family!r}")


def graph_families(
    n_per_class: int, *,
    families: tuple[str, ...] = ("cycle", "erdos_renyi", "barabasi_albert", "grid"),
    n_nodes: tuple[int, int] = (10, 20), seed: int = 0,
) -> tuple[list[nx.Graph], torch.Tensor]:
    """A graph-classification set: ``n_per_class`` generated graphs of each
    family (``"cycle"``, ``"erdos_renyi"`` with mean degree 3,
    ``"barabasi_albert"`` with 2 edges per new node, ``"watts_strogatz"``,
    ``"grid"`` (the ``a x b`` grid with ``a`` the rounded square root and
    ``ab`` at most the drawn count), ``"tree"``), each with a node count drawn
    uniformly from ``n_nodes`` (inclusive). Returns the graphs, shuffled, and labels
    ``(N,)``: the index of the family."""
    lo, hi = n_nodes
    if not 3 <= lo <= hi:
        raise ValueError(f"n_nodes must satisfy 3 <= low <= high, got {n_nodes}")
    rng = np.random.default_rng(seed)
    items = [(_family_graph(f, int(rng.integers(lo, hi + 1)), rng), c)
             for c, f in enumerate(families) for _ in range(n_per_class)]
    order = rng.permutation(len(items))
    return [items[i][0] for i in order], torch.tensor([items[i][1] for i in order])


# --- text (transformers, memory, language-model chapters) -----------------------

#: The corpora that ship in ``dlbook/corpora`` (see ``tools/make_corpus.py``).
CORPORA = ("python-docs", "python-source")


@functools.cache
def text_corpus(name: str = "python-docs") -> str:
    """A fixed character corpus that ships inside the package.

    ``"python-docs"``: the docstrings of 80 standard-library modules, their
    public classes, functions and methods (about 0.56 million characters of
    English technical prose with code); ``"python-source"``: the source of 14
    pure-Python standard-library modules (about 0.39 million characters).
    Both were written once from Python 3.11.7 and are committed, so every
    reader trains on the same bytes (the first line says so).
    """
    if name not in CORPORA:
        raise ValueError(f"name must be one of {CORPORA}, got {name!r}")
    path = resources.files("dlbook") / "corpora" / f"{name}.txt"
    return path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class CharVocab:
    """A character vocabulary: ``chars[i]`` is the character of id ``i``."""

    chars: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """The sorted set of characters of ``text``."""
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.chars)}

    def encode(self, text: str) -> torch.Tensor:
        """Ids of ``text``, shape ``(len(text),)`` int64."""
        try:
            return torch.tensor([self._index[c] for c in text], dtype=torch.int64)
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        """The text of a sequence of ids."""
        return "".join(self.chars[int(i)] for i in ids)


# --- generated sequence and 2-D tasks --------------------------------------------

def motif_sequences(
    n: int, length: int = 50, motif: str = "ACGTAGCA", *,
    p_positive: float = 0.5, seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random DNA with a planted motif, the task of DeepBind (Alipanahi et
    al., 2015) in miniature.

    Each sequence is i.i.d. uniform over ``ACGT``; with probability
    ``p_positive`` the motif is written at a uniform position and the label
    is 1. Returns one-hot ``X (n, 4, length)`` (channels A, C, G, T),
    labels ``y (n,)`` and the motif's start ``(n,)`` (-1 when absent).
    """
    if not set(motif) <= set("ACGT") or not 0 < len(motif) <= length:
        raise ValueError(f"motif must be a non-empty ACGT string no longer than "
                         f"length={length}, got {motif!r}")
    rng = np.random.default_rng(seed)
    seq = rng.integers(0, 4, size=(n, length))
    y = (rng.random(n) < p_positive).astype(np.int64)
    pos = np.where(y == 1, rng.integers(0, length - len(motif) + 1, size=n), -1)
    code = np.array(["ACGT".index(c) for c in motif])
    for i in np.flatnonzero(y):
        seq[i, pos[i]:pos[i] + len(motif)] = code
    X = np.eye(4, dtype=np.float32)[seq].transpose(0, 2, 1)
    return torch.as_tensor(X), torch.as_tensor(y), torch.as_tensor(pos)


def sequence_task(
    kind: str, n: int, length: int, vocab_size: int, *, seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """An algorithmic sequence-to-sequence task on uniform random tokens.

    ``kind`` is ``"copy"`` (target = source), ``"reverse"`` (target = the
    source reversed) or ``"sort"`` (target = the source sorted). Returns
    ``src, tgt`` of shape ``(n, length)``, int64 in ``[0, vocab_size)``.
    """
    if kind not in ("copy", "reverse", "sort"):
        raise ValueError(f"kind must be 'copy', 'reverse' or 'sort', got {kind!r}")
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, vocab_size, (n, length), generator=g)
    tgt = {"copy": lambda s: s.clone(), "reverse": lambda s: s.flip(1),
           "sort": lambda s: s.sort(dim=1).values}[kind](src)
    return src, tgt


def adding_problem(n: int, length: int, *, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem (Hochreiter and Schmidhuber, 1997): a long-memory
    task for recurrent networks.

    Each input step is a pair (value, marker): values uniform on [0, 1], and
    markers 1 at two positions, one in each half of the sequence. The target
    is the sum of the two marked values. Shapes: ``X (n, length, 2)``,
    ``y (n,)``.
    """
    if length < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(n, length, generator=g)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=g)
    second = torch.randint(half, length, (n,), generator=g)
    marks = torch.zeros(n, length)
    rows = torch.arange(n)
    marks[rows, first] = marks[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return torch.stack([values, marks], dim=-1), y


def ring_of_gaussians(
    n: int, modes: int = 8, radius: float = 2.0, std: float = 0.05, *,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """An equal mixture of ``modes`` isotropic Gaussians (standard deviation
    ``std``) centred evenly on a circle of ``radius``: the usual test of
    whether a generative model covers every mode. Returns ``X (n, 2)`` and
    the component of each point ``(n,)``."""
    g = torch.Generator().manual_seed(seed)
    comp = torch.randint(0, modes, (n,), generator=g)
    angle = 2 * torch.pi * comp / modes
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + std * torch.randn(n, 2, generator=g), comp
