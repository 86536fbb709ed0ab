"""Byte-pair encoding trained from scratch (chapter language-models).

:class:`BPE` learns merges on a text, in the manner of Sennrich et al. (2016):
the text is cut into pre-tokens (a word with its leading space, a run of
punctuation, a run of white space), each pre-token starts as its characters,
and the most frequent adjacent pair is merged, again and again. Encoding
replays the merges in the order they were learned; decoding concatenates.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict

__all__ = ["PRETOKEN_PATTERN", "pretokenize", "BPE"]

# a word with an optional leading space, punctuation likewise, or white space:
# the three alternatives cover every character, so the pieces partition the text
PRETOKEN_PATTERN = r" ?\w+| ?[^\w\s]+|\s+"
_PRETOKEN = re.compile(PRETOKEN_PATTERN)


def pretokenize(text: str) -> list[str]:
    """Cut ``text`` into pre-tokens; ``"".join(pretokenize(t)) == t``."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text)}")
    return _PRETOKEN.findall(text)


def _pair_counts(words: list[list[str]], freq: list[int]):
    counts: Counter = Counter()
    where: defaultdict = defaultdict(set)
    for i, (w, f) in enumerate(zip(words, freq)):
        for pair in zip(w, w[1:]):
            counts[pair] += f
            where[pair].add(i)
    return counts, where


def _merge_word(w: list[str], pair: tuple[str, str]) -> list[str]:
    out, i = [], 0
    while i < len(w):
        if i + 1 < len(w) and (w[i], w[i + 1]) == pair:
            out.append(w[i] + w[i + 1])
            i += 2
        else:
            out.append(w[i])
            i += 1
    return out


class BPE:
    """A byte-pair-encoding tokenizer over characters.

    ``BPE().train(text, num_merges)`` learns ``merges`` (a list of pairs of
    strings, in order) and the vocabulary ``tokens`` (the characters of
    ``text``, sorted, then one new token per merge); ``encode(s)`` returns a
    list of ids into ``tokens`` and ``decode(ids)`` the string. Ties between
    equally frequent pairs go to the pair whose tokens are oldest (smallest ids,
    left then right), the rule of the ``tokenizers`` library.
    """

    def __init__(self) -> None:
        self.merges: list[tuple[str, str]] = []
        self.tokens: list[str] = []
        self._index: dict[str, int] = {}
        self._cache: dict[str, list[int]] = {}

    def train(self, text: str, num_merges: int) -> "BPE":
        """Learn ``num_merges`` merges on ``text`` (fewer if pairs run out)."""
        if num_merges < 0:
            raise ValueError(f"num_merges must be >= 0, got {num_merges}")
        pieces = Counter(pretokenize(text))
        words = [list(p) for p in pieces]
        freq = list(pieces.values())
        self.tokens = sorted(set(text))
        self.merges = []
        rank = {t: i for i, t in enumerate(self.tokens)}
        counts, where = _pair_counts(words, freq)
        for _ in range(num_merges):
            if not counts:
                break
            best = min(counts, key=lambda p: (-counts[p], rank[p[0]], rank[p[1]]))
            self.merges.append(best)
            self.tokens.append(best[0] + best[1])
            rank.setdefault(self.tokens[-1], len(self.tokens) - 1)
            for i in list(where[best]):
                old, new = words[i], _merge_word(words[i], best)
                for pair in zip(old, old[1:]):      # remove the old pairs
                    counts[pair] -= freq[i]
                    if counts[pair] <= 0:
                        del counts[pair]
                for pair in zip(new, new[1:]):      # add the new ones
                    counts[pair] += freq[i]
                    where[pair].add(i)
                words[i] = new
            del where[best]
        self._index = {t: i for i, t in enumerate(self.tokens)}
        self._cache = {}
        return self

    def _encode_piece(self, piece: str) -> list[int]:
        if piece not in self._cache:
            w = list(piece)
            for pair in self.merges:                # replay in training order
                if len(w) < 2:
                    break
                if pair[0] in w:
                    w = _merge_word(w, pair)
            self._cache[piece] = [self._index[t] for t in w]
        return self._cache[piece]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; every character must have been seen."""
        if not self.tokens:
            raise ValueError("train the tokenizer before encoding")
        unknown = set(text) - set(self._index)
        if unknown:
            raise ValueError(f"characters not in the vocabulary: "
                             f"{sorted(unknown)[:5]}")
        return [i for p in pretokenize(text) for i in self._encode_piece(p)]

    def truncated(self, num_merges: int) -> "BPE":
        """The tokenizer of the first ``num_merges`` merges (as if training
        had stopped there)."""
        if not 0 <= num_merges <= len(self.merges):
            raise ValueError(f"num_merges must lie in [0, {len(self.merges)}], "
                             f"got {num_merges}")
        out = BPE()
        n_alpha = len(self.tokens) - len(self.merges)
        out.tokens = self.tokens[:n_alpha + num_merges]
        out.merges = self.merges[:num_merges]
        out._index = {t: i for i, t in enumerate(out.tokens)}
        return out

    def decode(self, ids) -> str:
        """The text of a sequence of ids."""
        return "".join(self.tokens[int(i)] for i in ids)

    def __len__(self) -> int:
        return len(self.tokens)
