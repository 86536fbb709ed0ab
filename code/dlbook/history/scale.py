"""Chapter 1 (history): published parameter counts and training compute of
landmark networks, with the source of every number.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# --------------------------------------------------------------------------
# The growth of scale
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Milestone:
    """One published model: its size and, where known, its training compute.

    ``key`` is the references.bib entry giving ``params``; ``flop_key`` the
    entry giving ``train_flop``. ``estimated`` marks numbers that are a
    third party's estimate or our own count rather than the paper's report.
    """

    name: str
    year: int
    params: float
    key: str
    train_flop: float | None = None
    flop_key: str | None = None
    estimated: str = ""


MILESTONES: tuple[Milestone, ...] = (
    Milestone("Mark I perceptron", 1960, 512 * 8, "rosenblatt1962principles",
              estimated="params: our count of its 512 x 8 adjustable weights"),
    Milestone("LeNet-5", 1998, 6.0e4, "lecun1998gradient"),
    Milestone("AlexNet", 2012, 6.0e7, "krizhevsky2012imagenet", 4.7e17,
              "sevilla2022compute",
              estimated="compute: Sevilla et al.'s estimate"),
    Milestone("VGG-16", 2014, 1.38e8, "simonyan2015very"),
    Milestone("Transformer (big)", 2017, 2.13e8, "vaswani2017attention", 2.3e19,
              "vaswani2017attention",
              estimated="compute: the paper's estimate from GPU time"),
    Milestone("BERT-large", 2018, 3.4e8, "devlin2019bert"),
    Milestone("GPT-2", 2019, 1.5e9, "radford2019language"),
    Milestone("GPT-3", 2020, 1.75e11, "brown2020language", 3.14e23,
              "brown2020language"),
    Milestone("Chinchilla", 2022, 7.0e10, "hoffmann2022training", 5.76e23,
              "hoffmann2022training"),
    Milestone("PaLM", 2022, 5.4e11, "chowdhery2023palm", 2.56e24,
              "chowdhery2023palm"),
)


def doubling_time(milestones: tuple[Milestone, ...], attr: str = "params",
                  since: int = 2012) -> float:
    """Doubling time in months of ``attr`` from a least-squares fit of log2.

    Uses the milestones from year ``since`` on that report ``attr``.
    """
    pts = [(m.year, getattr(m, attr)) for m in milestones
           if m.year >= since and getattr(m, attr) is not None]
    if len(pts) < 2:
        raise ValueError(f"need two milestones with {attr} since {since}")
    t = torch.tensor([p[0] for p in pts], dtype=torch.float64)
    v = torch.tensor([math.log2(p[1]) for p in pts], dtype=torch.float64)
    tc = t - t.mean()
    slope = float((tc * (v - v.mean())).sum() / (tc * tc).sum())  # doublings/yr
    return 12.0 / slope
