"""Finetuning a small GPT on generated instructions (chapter
language-models): the instruction set, its tensors with the prompt masked
out of the loss, exact-match and per-character scores, and LoRA inserted
into every linear map of the transformer blocks.
"""
from __future__ import annotations

import copy
import string
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.data import CharVocab
from dlbook.transfer import LoRALinear
from dlbook.transformer import GPT

from .decoding import decode

__all__ = ["COMMANDS", "Example", "instruction_set", "answer", "encode_examples",
           "masked_loss", "exact_match", "char_accuracy", "greedy_answers",
           "add_lora_gpt",
           "merge_lora_gpt", "trainable_parameters", "IGNORE"]

IGNORE = -100                     # the target of positions the loss skips
COMMANDS = ("reverse", "sort")


def answer(command: str, x: str) -> str:
    """The correct output of ``command`` on the lowercase word ``x``."""
    if command == "reverse":
        return x[::-1]
    if command == "sort":
        return "".join(sorted(x))
    raise ValueError(f"command must be one of {COMMANDS}, got {command!r}")


@dataclass(frozen=True)
class Example:
    """One instruction: ``prompt = "reverse: abc -> "``, ``target = "cba\\n"``."""

    command: str
    word: str

    @property
    def prompt(self) -> str:
        return f"{self.command}: {self.word} -> "

    @property
    def target(self) -> str:
        return answer(self.command, self.word) + "\n"


def instruction_set(n: int, *, lengths: tuple[int, int] = (3, 4),
                    letters: str = string.ascii_lowercase[:8],
                    seed: int = 0) -> list[Example]:
    """``n`` distinct examples, each a command of ``COMMANDS`` and a random
    word of ``lengths[0]..lengths[1]`` letters drawn from ``letters``
    (with ``seed``); half the possible examples at most."""
    lo, hi = lengths
    space = len(COMMANDS) * sum(len(letters) ** k for k in range(lo, hi + 1))
    if not 1 <= lo <= hi or not 1 <= n <= space // 2:
        raise ValueError(f"need 1 <= lengths[0] <= lengths[1] and 1 <= n <= "
                         f"{space // 2}, got lengths={lengths}, n={n}")
    rng = np.random.default_rng(seed)
    seen: set[Example] = set()
    out: list[Example] = []
    while len(out) < n:
        k = int(rng.integers(lo, hi + 1))
        ex = Example(COMMANDS[int(rng.integers(len(COMMANDS)))],
                     "".join(rng.choice(list(letters), k)))
        if ex not in seen:
            seen.add(ex)
            out.append(ex)
    return out


def encode_examples(examples: list[Example], vocab: CharVocab,
                    targets: list[str] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``X (N, L)`` and next-character targets ``y (N, L)`` of
    ``prompt + target``, right-padded with newlines; ``y`` is
    ``IGNORE`` on the prompt and the padding, so only the answer is
    trained and scored. ``targets`` replaces the correct answers (e.g. by
    rejected ones for preference pairs)."""
    if not examples:
        raise ValueError("examples must not be empty")
    targets = [e.target for e in examples] if targets is None else targets
    if len(targets) != len(examples):
        raise ValueError(f"{len(targets)} targets for {len(examples)} examples")
    texts = [e.prompt + t for e, t in zip(examples, targets)]
    L = max(map(len, texts)) - 1
    pad = vocab.encode("\n")[0]
    X = torch.full((len(texts), L), int(pad), dtype=torch.int64)
    y = torch.full((len(texts), L), IGNORE, dtype=torch.int64)
    for i, (e, t) in enumerate(zip(examples, texts)):
        ids = vocab.encode(t)
        X[i, :len(ids) - 1] = ids[:-1]
        p = len(e.prompt)
        y[i, p - 1:len(ids) - 1] = ids[p:]       # targets of the answer only
    return X, y


def masked_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions where ``y != IGNORE``.
    Shapes: ``(N, L, V), (N, L) -> ()``."""
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE)


def exact_match(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows whose arg-max is right at every answer position;
    with teacher forcing this equals greedy decoding's exact match."""
    ok = (logits.argmax(-1) == y) | (y == IGNORE)
    return ok.all(1).float().mean().item()


def char_accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of answer characters (``y != IGNORE``) predicted right."""
    m = y != IGNORE
    return (logits.argmax(-1) == y)[m].float().mean().item()


@torch.no_grad()
def greedy_answers(model: GPT, examples: list[Example], vocab: CharVocab
                   ) -> list[str]:
    """What greedy decoding writes after each prompt, as many characters as
    the correct target has; prompts of equal length are decoded together."""
    out: list[str] = [""] * len(examples)
    by_len: dict[int, list[int]] = {}
    for i, e in enumerate(examples):
        by_len.setdefault(len(e.prompt), []).append(i)
    for p_len, rows in by_len.items():
        idx = torch.stack([vocab.encode(examples[i].prompt) for i in rows])
        m = max(len(examples[i].target) for i in rows)
        gen = decode(model, idx, m, temperature=0.0)[:, p_len:]
        for i, g in zip(rows, gen):
            out[i] = vocab.decode(g[:len(examples[i].target)])
    return out


def add_lora_gpt(model: GPT, rank: int, alpha: float = 1.0, *,
                 generator: torch.Generator | None = None) -> GPT:
    """A copy of ``model`` with every ``nn.Linear`` inside its blocks (the
    attention's ``in_proj`` and ``out_proj``, the MLP's two layers) wrapped
    in a :class:`~dlbook.transfer.LoRALinear` of rank ``rank``, and every
    other parameter frozen; the copy computes the same function."""
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.blocks:
        for parent in (block.attn, block.mlp):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name,
                            LoRALinear(child, rank, alpha, generator=generator))
    return model


def merge_lora_gpt(model: GPT) -> GPT:
    """A copy with each :class:`~dlbook.transfer.LoRALinear` merged into a
    plain ``nn.Linear`` (the same function, no extra cost)."""
    model = copy.deepcopy(model)
    for block in model.blocks:
        for parent in (block.attn, block.mlp):
            for name, child in list(parent.named_children()):
                if isinstance(child, LoRALinear):
                    setattr(parent, name, child.merged())
    return model


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad`` (shared ones once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()
                                   if p.requires_grad}.values())
