"""A corpus of folk tunes in ABC notation from a small seeded grammar, its
checker, and a character n-gram baseline.

Chapter: memory and recurrent networks (sequence generation). A tune is a
header (``X:`` index, ``T:`` title, ``M:`` meter, ``L:1/8`` unit note length,
``K:`` key) and eight bars of notes in two lines. A note is a pitch
(``C``-``B``, ``c``-``b``, or the rest ``z``) with an optional length digit
2-4 in units of an eighth; every bar lasts exactly the meter's number of
units. :func:`check_tune` parses a text with this grammar and measures every
bar, so that samples from a model can be scored for structure.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

__all__ = ["METERS", "KEYS", "PITCHES", "RHYTHMS", "abc_tune", "abc_corpus",
           "TuneCheck",
           "check_tune", "structure_scores", "NGramModel"]

#: Meter -> bar length in eighth notes (the unit length ``L:1/8``).
METERS = {"4/4": 8, "3/4": 6, "6/8": 6, "2/4": 4}
KEYS = ("C", "G", "D", "F", "Am", "Em", "Dm")
#: The pitches of the grammar, low to high (a melody is a walk on them).
PITCHES = "CDEFGABcdefg"
_ADJECTIVES = ("Merry", "Lonesome", "Green", "Windy", "Silver", "Old", "Wild",
               "Humours", "Rolling", "Blue", "Dusty", "Morning")
_NOUNS = ("Lark", "Fiddler", "Harbour", "Meadow", "Piper", "Bridge", "Hills",
          "Mill", "Road", "Widow", "Ferry", "Garden")
_HEADER = (r"X:\d+", r"T:[A-Za-z ]+", "M:(" + "|".join(METERS) + ")", r"L:1/8",
           "K:(" + "|".join(KEYS) + ")")
_NOTE = re.compile(r"([A-Ga-gz])([2-4]?)")
_BAR = re.compile(r"(?:[A-Ga-gz][2-4]?)+")


#: Rhythms of a bar, in eighths, for each bar length: the grammar's rhythmic
#: vocabulary (the same figure can fill bars of different meters).
RHYTHMS = {
    8: ((1, 1, 1, 1, 1, 1, 1, 1), (2, 2, 2, 2), (2, 1, 1, 2, 1, 1), (3, 1, 2, 2),
        (4, 2, 2), (2, 2, 4), (1, 1, 2, 1, 1, 2)),
    6: ((2, 2, 2), (1, 1, 2, 2), (3, 1, 2), (2, 1, 1, 2), (1, 1, 1, 1, 2), (4, 2)),
    4: ((2, 2), (1, 1, 2), (1, 1, 1, 1), (3, 1), (2, 1, 1)),
}


def _bar(units: int, pitch: int, rng: np.random.Generator) -> tuple[str, int]:
    """One bar lasting ``units`` eighths: a rhythm of RHYTHMS, with pitches
    from a random walk on PITCHES (and an occasional rest)."""
    rhythm = RHYTHMS[units][rng.integers(len(RHYTHMS[units]))]
    notes = []
    for d in rhythm:
        step = rng.choice([-2, -1, 0, 1, 2], p=[0.1, 0.3, 0.2, 0.3, 0.1])
        pitch = int(np.clip(pitch + step, 0, len(PITCHES) - 1))
        rest = rng.random() < 0.04
        notes.append(("z" if rest else PITCHES[pitch]) + ("" if d == 1 else str(d)))
    return "".join(notes), pitch


def abc_tune(index: int, rng: np.random.Generator, n_bars: int = 8) -> str:
    """One tune of the grammar: five header lines, then ``n_bars`` bars in
    lines of four, the last closed by ``|]``."""
    meter = str(rng.choice(list(METERS)))
    key = str(rng.choice(KEYS))
    title = f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
    lines = [f"X:{index}", f"T:{title}", f"M:{meter}", "L:1/8", f"K:{key}"]
    pitch, bars = int(rng.integers(2, 8)), []
    for _ in range(n_bars):
        bar, pitch = _bar(METERS[meter], pitch, rng)
        bars.append(bar)
    for start in range(0, n_bars, 4):
        line = "|".join(bars[start:start + 4])
        lines.append(line + ("|]" if start + 4 >= n_bars else "|"))
    return "\n".join(lines) + "\n"


def abc_corpus(n: int, *, seed: int = 0) -> str:
    """``n`` tunes separated by blank lines (index ``X:`` from 1)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    return "\n".join(abc_tune(i + 1, rng) for i in range(n))


@dataclass(frozen=True)
class TuneCheck:
    """What :func:`check_tune` found: ``header_ok`` (the five fields, in
    order), ``body_ok`` (every bar is a sequence of notes and the tune ends
    with ``|]``), the meter's bar length ``units`` (0 if unknown) and each
    bar's duration in eighths."""

    header_ok: bool
    body_ok: bool
    units: int
    durations: tuple[int, ...]

    @property
    def bars_correct(self) -> int:
        """The number of bars whose duration equals the meter's."""
        return sum(d == self.units for d in self.durations)

    @property
    def parses(self) -> bool:
        """Header and body follow the grammar (durations not checked)."""
        return self.header_ok and self.body_ok and len(self.durations) > 0

    @property
    def valid(self) -> bool:
        """It parses and every bar has the meter's duration."""
        return self.parses and self.bars_correct == len(self.durations)


def _duration(bar: str) -> int:
    return sum(int(d or 1) for _, d in _NOTE.findall(bar))


def check_tune(text: str) -> TuneCheck:
    """Parse one tune (the text up to and including ``|]``) with the grammar."""
    lines = text.strip("\n").split("\n")
    head, body = lines[:5], "".join(lines[5:])
    header_ok = len(head) == 5 and all(re.fullmatch(p, s)
                                       for p, s in zip(_HEADER, head))
    meter = head[2][2:] if len(head) > 2 and head[2].startswith("M:") else ""
    units = METERS.get(meter, 0)
    closed = body.endswith("|]")
    bars = [b for b in body.removesuffix("|]").split("|")] if body else []
    body_ok = closed and bool(bars) and all(_BAR.fullmatch(b) for b in bars)
    durations = tuple(_duration(b) for b in bars if _BAR.fullmatch(b))
    return TuneCheck(bool(header_ok), body_ok, units, durations)


def structure_scores(tunes: list[str]) -> dict[str, float]:
    """Fractions over ``tunes``: ``parses``, ``valid`` (parses with every bar
    the right length), and ``bars_correct`` (over all well-formed bars of
    tunes whose meter is known)."""
    if not tunes:
        raise ValueError("tunes must be a non-empty list of strings")
    checks = [check_tune(t) for t in tunes]
    bars = [(c.bars_correct, len(c.durations)) for c in checks if c.units]
    n_bars = sum(b for _, b in bars)
    return {"parses": float(np.mean([c.parses for c in checks])),
            "valid": float(np.mean([c.valid for c in checks])),
            "bars_correct": sum(k for k, _ in bars) / n_bars if n_bars else 0.0}


class NGramModel:
    """A character n-gram model with Witten-Bell interpolation: the baseline
    for the character LSTM.

    ``prob(context)`` is the next-character distribution given the last
    ``order - 1`` characters: the counts after each suffix of the context,
    longest last, each interpolated with the estimate of the next shorter
    suffix in proportion to how many distinct characters followed it
    (Witten and Bell, 1991); the shortest is add-``alpha`` unigram counts.
    """

    def __init__(self, text: str, order: int = 5, alpha: float = 1.0) -> None:
        if order < 1 or alpha <= 0:
            raise ValueError(f"need order >= 1 and alpha > 0, got {order}, {alpha}")
        self.order, self.alpha = order, alpha
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.counts: dict[str, np.ndarray] = {}
        for k in range(order):  # contexts of every length 0 .. order-1
            table: dict[str, Counter] = defaultdict(Counter)
            for i in range(k, len(text)):
                table[text[i - k:i]][text[i]] += 1
            for ctx, counter in table.items():
                row = np.zeros(len(self.chars))
                for c, n in counter.items():
                    row[self.index[c]] = n
                self.counts[ctx] = row

    def prob(self, context: str) -> np.ndarray:
        """Next-character probabilities, shape ``(len(self.chars),)``."""
        p = self.counts[""] + self.alpha
        p = p / p.sum()
        for k in range(1, self.order):
            if k > len(context):
                break
            row = self.counts.get(context[len(context) - k:])
            if row is None:  # an unseen context: keep the shorter estimate
                break
            distinct = float((row > 0).sum())
            p = (row + distinct * p) / (row.sum() + distinct)
        return p

    def bits_per_char(self, text: str) -> float:
        """Average ``-log2 p(next char)`` over ``text`` (first char skipped)."""
        logp = [math.log2(self.prob(text[max(0, i - self.order + 1):i])
                          [self.index[text[i]]])
                for i in range(1, len(text))]
        return -float(np.mean(logp))

    def sample(self, prompt: str, max_chars: int, rng: np.random.Generator,
               stop: str = "|]") -> str:
        """Continue ``prompt`` until ``stop`` appears or ``max_chars`` are added."""
        out = prompt
        for _ in range(max_chars):
            out += self.chars[rng.choice(len(self.chars), p=self.prob(out))]
            if out.endswith(stop):
                break
        return out
