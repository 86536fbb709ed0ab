"""Pairs for metric learning, a second modality for the digits, two-tower
models, zero-shot classification and the downstream evaluations (chapter:
learning by similarity)."""
from __future__ import annotations

import torch
from torch import nn

F = nn.functional

__all__ = ["Siamese", "make_pairs", "DIGIT_WORDS", "CAPTION_VOCAB",
           "digit_captions", "prompt", "TwoTower", "zero_shot_predict",
           "knn_accuracy", "few_label_indices", "linear_probe"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven",
               "eight", "nine")
#: The caption vocabulary: a word and a numeral for each digit, two stroke
#: words and filler words that carry no information.
CAPTION_VOCAB = (DIGIT_WORDS + tuple(str(i) for i in range(10))
                 + ("thick", "thin", "a", "digit", "handwritten", "photo", "of"))
_WORD = {w: i for i, w in enumerate(CAPTION_VOCAB)}
_FILLER = ("a", "digit", "handwritten", "photo", "of")


class Siamese(nn.Module):
    """One embedding network applied to every member of each pair (or
    triplet): weights shared, as in a Siamese network.

    Shape: ``(N, m, D) -> (N, m, d)``, e.g. ``m = 2`` for pairs.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        if pairs.ndim != 3:
            raise ValueError("pairs must have shape (N, m, D), got "
                             f"{tuple(pairs.shape)}")
        n, m, D = pairs.shape
        return self.net(pairs.reshape(n * m, D)).reshape(n, m, -1)


def make_pairs(X: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example once with a same-class and once with an other-class partner.

    Returns ``pairs (2N, 2, D)`` and ``same (2N,)`` (1 for similar pairs).
    """
    n = len(X)
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {tuple(y.shape)}")
    pos, neg = torch.empty(n, dtype=torch.long), torch.empty(n, dtype=torch.long)
    for c in y.unique():
        inside = (y == c).nonzero().flatten()
        outside = (y != c).nonzero().flatten()
        pos[inside] = inside[torch.randint(len(inside), (len(inside),),
                                           generator=generator)]
        neg[inside] = outside[torch.randint(len(outside), (len(inside),),
                                            generator=generator)]
    partner = torch.cat([pos, neg])
    pairs = torch.stack([X.repeat(2, 1), X[partner]], 1)
    same = torch.cat([torch.ones(n), torch.zeros(n)])
    return pairs, same


def digit_captions(X: torch.Tensor, y: torch.Tensor, *,
                   generator: torch.Generator) -> torch.Tensor:
    """A bag-of-words caption of each digit image, as multi-hot rows.

    Each caption holds the digit's name (its word or its numeral, with equal
    chance), a stroke word (``"thick"`` when the image has more ink than the
    median of its class, else ``"thin"``) and two random filler words.
    Shapes: ``X (N, 64)``, ``y (N,)`` -> ``(N, len(CAPTION_VOCAB))``.
    """
    n = len(X)
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {tuple(y.shape)}")
    ink = X.reshape(n, -1).sum(1)
    med = torch.zeros(10, dtype=ink.dtype)
    for c in y.unique():
        med[c] = ink[y == c].median()
    numeral = torch.rand(n, generator=generator) < 0.5
    name = torch.where(numeral, y + 10, y)
    stroke = torch.where(ink > med[y], _WORD["thick"], _WORD["thin"])
    fill = torch.tensor([_WORD[w] for w in _FILLER])
    fillers = fill[torch.randint(len(fill), (n, 2), generator=generator)]
    T = torch.zeros(n, len(CAPTION_VOCAB))
    idx = torch.cat([name[:, None], stroke[:, None], fillers], 1)
    return T.scatter_(1, idx, 1.0)


def prompt(*words: str) -> torch.Tensor:
    """The multi-hot caption of ``words``, shape ``(len(CAPTION_VOCAB),)``."""
    unknown = [w for w in words if w not in _WORD]
    if unknown:
        raise ValueError(f"words not in CAPTION_VOCAB: {unknown}")
    t = torch.zeros(len(CAPTION_VOCAB))
    t[[_WORD[w] for w in words]] = 1.0
    return t


class TwoTower(nn.Module):
    """An image tower and a text tower into one space, CLIP-style.

    ``forward(batch (N, 64 + V))`` splits each row into an image and a caption
    and returns ``(2, N, d)``: the image and text embeddings (not yet
    normalized). ``log_inv_temp`` is CLIP's learned log inverse temperature.
    """

    def __init__(self, image_tower: nn.Module, text_tower: nn.Module,
                 image_dim: int = 64, init_temperature: float = 0.1):
        super().__init__()
        self.image_tower, self.text_tower = image_tower, text_tower
        self.image_dim = image_dim
        self.log_inv_temp = nn.Parameter(torch.tensor(-float(
            torch.log(torch.tensor(init_temperature)))))

    @property
    def temperature(self) -> torch.Tensor:
        """``exp(-log_inv_temp)``, clamped below at 0.01 as in CLIP."""
        return self.log_inv_temp.clamp(max=4.6052).neg().exp()

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        img, txt = batch[:, :self.image_dim], batch[:, self.image_dim:]
        return torch.stack([self.image_tower(img), self.text_tower(txt)])


@torch.no_grad()
def zero_shot_predict(image_emb: torch.Tensor, class_text_emb: torch.Tensor
                      ) -> torch.Tensor:
    """The class whose text embedding has the largest cosine with each image.

    Shapes: ``image_emb (N, d)``, ``class_text_emb (C, d)`` -> ``(N,)``.
    """
    if image_emb.shape[1] != class_text_emb.shape[1]:
        raise ValueError("image and text embeddings must share their dimension, "
                         f"got {image_emb.shape[1]} and {class_text_emb.shape[1]}")
    sims = F.normalize(image_emb, dim=1) @ F.normalize(class_text_emb, dim=1).T
    return sims.argmax(1)


@torch.no_grad()
def knn_accuracy(z_train: torch.Tensor, y_train: torch.Tensor,
                 z_test: torch.Tensor, y_test: torch.Tensor, k: int = 5) -> float:
    """Accuracy of the ``k``-nearest-neighbour majority vote (Euclidean).

    Ties go to the smallest label. Shapes: ``z_train (N, d)``, ``y_train
    (N,)``, ``z_test (M, d)``, ``y_test (M,)``.
    """
    if not 1 <= k <= len(z_train):
        raise ValueError(f"k must lie in [1, {len(z_train)}], got {k}")
    nn_idx = torch.cdist(z_test, z_train).topk(k, largest=False).indices
    votes = F.one_hot(y_train[nn_idx], int(y_train.max()) + 1).sum(1)
    return (votes.argmax(1) == y_test).float().mean().item()


def few_label_indices(y: torch.Tensor, per_class: int, *,
                      generator: torch.Generator) -> torch.Tensor:
    """``per_class`` random indices of each class of ``y (N,)``, sorted."""
    out = []
    for c in y.unique():
        idx = (y == c).nonzero().flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {int(c)} has {len(idx)} < {per_class} examples")
        out.append(idx[torch.randperm(len(idx), generator=generator)[:per_class]])
    return torch.cat(out).sort().values


def linear_probe(z_train: torch.Tensor, y_train: torch.Tensor,
                 z_test: torch.Tensor, y_test: torch.Tensor,
                 C: float = 1.0) -> float:
    """Test accuracy of logistic regression on frozen features.

    Features are standardized with the training statistics (scikit-learn's
    ``StandardScaler`` and ``LogisticRegression``, L2 penalty ``C``).
    Shapes: ``z_train (N, d)``, ``z_test (M, d)``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000))
    clf.fit(z_train.detach().double().numpy(), y_train.numpy())
    return float(clf.score(z_test.detach().double().numpy(), y_test.numpy()))
