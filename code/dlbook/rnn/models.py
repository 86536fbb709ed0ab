"""The chapter's sequence models: a regressor on the last state (the adding
problem) and a character-level language model, with sampling.

Chapter: memory and recurrent networks. Every recurrent core comes from
:func:`make_recurrent`, which initializes :class:`RNN`,
``LSTM`` or ``GRU`` from a generator and, with ``backend="torch"``, loads
those same weights into PyTorch's implementation (the same function, tested,
with its time loop in C++, several times faster on a CPU).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.data import CharVocab
from dlbook.nn import init_layer_

from .layers import GRU, LSTM, RNN, set_forget_bias_

__all__ = ["CELLS", "make_recurrent", "SequenceRegressor", "CharModel",
           "char_windows", "char_loss", "sample_chars"]

CELLS = {"rnn": (RNN, nn.RNN), "lstm": (LSTM, nn.LSTM), "gru": (GRU, nn.GRU)}


def make_recurrent(cell: str, input_size: int, hidden_size: int,
                   num_layers: int = 1, *, backend: str = "dlbook",
                   forget_bias: float | None = None,
                   generator: torch.Generator | None = None) -> nn.Module:
    """A batch-first recurrent layer, ``cell`` in ``"rnn"``, ``"lstm"``,
    ``"gru"``, initialized as PyTorch does from ``generator``; for an LSTM,
    ``forget_bias`` (if given) sets the forget gate's effective bias."""
    if cell not in CELLS or backend not in ("dlbook", "torch"):
        raise ValueError(f"cell must be one of {sorted(CELLS)} and backend "
                         f"'dlbook' or 'torch', got {cell!r}, {backend!r}")
    if forget_bias is not None and cell != "lstm":
        raise ValueError(f"forget_bias applies to an LSTM only, got cell={cell!r}")
    ours_cls, torch_cls = CELLS[cell]
    layer = ours_cls(input_size, hidden_size, num_layers, batch_first=True,
                     generator=generator)
    if forget_bias is not None:
        set_forget_bias_(layer, forget_bias)
    if backend == "dlbook":
        return layer
    twin = torch_cls(input_size, hidden_size, num_layers, batch_first=True)
    twin.load_state_dict(layer.state_dict())
    return twin


class SequenceRegressor(nn.Module):
    """A recurrent layer read out linearly from its last state.

    Shapes: ``x (N, L, input_size)`` -> ``(N,)``.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, *,
                 generator: torch.Generator | None = None, **kwargs) -> None:
        super().__init__()
        self.rnn = make_recurrent(cell, input_size, hidden_size,
                                  generator=generator, **kwargs)
        self.head = init_layer_(nn.Linear(hidden_size, 1), generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x)
        return self.head(y[:, -1]).squeeze(-1)


class CharModel(nn.Module):
    """Embedding, recurrent layer, linear read-out: a character language model.

    ``forward(ids, state)`` returns next-character ``logits (N, L, V)`` and
    the final state, so that generation can continue from it.
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int,
                 cell: str = "lstm", num_layers: int = 1, *,
                 generator: torch.Generator | None = None, **kwargs) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        with torch.no_grad():  # N(0, 1) as PyTorch, drawn from ``generator``
            self.embed.weight.normal_(generator=generator)
        self.rnn = make_recurrent(cell, embed_dim, hidden_size, num_layers,
                                  generator=generator, **kwargs)
        self.head = init_layer_(nn.Linear(hidden_size, vocab_size),
                                generator=generator)

    def forward(self, ids: torch.Tensor, state=None):
        y, state = self.rnn(self.embed(ids), state)
        return self.head(y), state


def char_windows(ids: torch.Tensor, length: int, stride: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-character targets from windows of ``length + 1``
    characters of ``ids (T,)`` every ``stride``: two ``(n, length)`` tensors."""
    if ids.ndim != 1 or len(ids) <= length:
        raise ValueError(f"ids must be 1-D and longer than length={length}, "
                         f"got shape {tuple(ids.shape)}")
    windows = ids.unfold(0, length + 1, stride)
    return windows[:, :-1], windows[:, 1:]


def char_loss(out, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per character) of ``CharModel`` output."""
    logits = out[0] if isinstance(out, tuple) else out
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


@torch.no_grad()
def sample_chars(model: CharModel, vocab: CharVocab, prompt: str, n: int,
                 max_chars: int, *, temperature: float = 1.0,
                 generator: torch.Generator | None = None,
                 stop: str = "|]") -> list[str]:
    """``n`` continuations of ``prompt`` sampled in parallel, each cut after
    the first ``stop`` (or after ``max_chars`` characters)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    was_training = model.training
    model.eval()
    ids = vocab.encode(prompt).repeat(n, 1)
    logits, state = model(ids)
    out = []
    for _ in range(max_chars):
        probs = torch.softmax(logits[:, -1] / temperature, dim=-1)
        nxt = torch.multinomial(probs, 1, generator=generator)
        out.append(nxt)
        logits, state = model(nxt, state)
    model.train(was_training)
    texts = [prompt + vocab.decode(row) for row in torch.cat(out, dim=1)]
    return [t[:t.index(stop) + len(stop)] if stop in t else t for t in texts]
