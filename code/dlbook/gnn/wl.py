"""The 1-dimensional Weisfeiler-Lehman test (colour refinement).

Chapter: graph neural networks. Colours are small integers drawn from a
*palette*, a dictionary from signatures to colours that can be shared between
graphs, so that equal colours in two graphs mean equal unfolding trees. The
refinement is exact (no hashing), iterative, and linear in the number of
edges per iteration.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

import networkx as nx
import numpy as np

__all__ = ["wl_colors", "wl_histograms", "wl_distinguishes", "wl_features"]


def _check_iterations(iterations: int | None, allow_none: bool = False) -> None:
    if iterations is None and allow_none:
        return
    if not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be a non-negative int, got {iterations!r}")


def wl_colors(graph: nx.Graph, iterations: int, *, node_attr: str | None = None,
              palette: dict[Hashable, int] | None = None) -> list[dict]:
    """Colour refinement: the colourings ``c^(0), ..., c^(iterations)``.

    ``c^(0)`` is one colour for every node (or the node attribute
    ``node_attr``); ``c^(t+1)(v)`` is the colour of the signature
    ``(c^(t)(v), sorted multiset of c^(t)(u) over neighbours u)``. Signatures
    get colours from ``palette`` (extended in place), so colourings of
    different graphs computed with one palette are comparable.
    Returns a list of ``iterations + 1`` dictionaries node -> colour.
    """
    _check_iterations(iterations)
    if not isinstance(graph, nx.Graph) or graph.is_directed():
        raise ValueError(f"graph must be an undirected networkx graph, got {graph!r}")
    palette = {} if palette is None else palette

    def colour(signature: Hashable) -> int:
        return palette.setdefault(signature, len(palette))

    current = {v: colour(("init", graph.nodes[v].get(node_attr) if node_attr
                          else None)) for v in graph}
    history = [current]
    for _ in range(iterations):
        current = {v: colour((current[v], tuple(sorted(current[u]
                                                       for u in graph[v]))))
                   for v in graph}
        history.append(current)
    return history


def wl_histograms(graph: nx.Graph, iterations: int, *, node_attr: str | None = None,
                  palette: dict[Hashable, int] | None = None
                  ) -> list[dict[int, int]]:
    """The multiset of colours at each iteration, as ``Counter`` objects."""
    return [Counter(c.values()) for c in
            wl_colors(graph, iterations, node_attr=node_attr, palette=palette)]


def wl_distinguishes(g1: nx.Graph, g2: nx.Graph, iterations: int | None = None, *,
                     node_attr: str | None = None) -> bool:
    """Whether 1-WL tells ``g1`` and ``g2`` apart within ``iterations`` rounds.

    True when the colour multisets differ at some round ``t <= iterations``
    (a certificate that the graphs are not isomorphic); False means 1-WL
    cannot separate them in that many rounds. ``iterations=None`` runs to the
    stable colouring (at most ``|V1| + |V2|`` rounds are ever needed).
    """
    _check_iterations(iterations, allow_none=True)
    rounds = (g1.number_of_nodes() + g2.number_of_nodes()
              if iterations is None else iterations)
    palette: dict[Hashable, int] = {}
    h1 = wl_histograms(g1, rounds, node_attr=node_attr, palette=palette)
    h2 = wl_histograms(g2, rounds, node_attr=node_attr, palette=palette)
    return any(a != b for a, b in zip(h1, h2))


def wl_features(graphs: list[nx.Graph], iterations: int, *,
                palette: dict[Hashable, int] | None = None) -> np.ndarray:
    """WL subtree features (Shervashidze et al., 2011) as a count matrix.

    Row ``g``, column ``c``: how many nodes of graph ``g`` have colour ``c``
    at some round ``t <= iterations``. Colours unseen when ``palette`` was
    built (e.g. in test graphs) get new columns; pass the same palette and
    slice to the training columns for a train/test split.
    Returns a NumPy array ``(len(graphs), len(palette))``.
    """
    palette = {} if palette is None else palette
    counts = [sum(wl_histograms(g, iterations, palette=palette), Counter())
              for g in graphs]
    out = np.zeros((len(graphs), len(palette)))
    for i, c in enumerate(counts):
        for colour, k in c.items():
            out[i, colour] = k
    return out
