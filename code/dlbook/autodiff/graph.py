"""Graph traversal shared by the scalar and tensor engines (chapter: backprop).

Both engines record a directed acyclic graph whose nodes keep a tuple of
their parents. Reverse accumulation needs the nodes in an order in which
every node comes after all of its parents (a topological order). The sort
below is an explicit-stack depth-first search, so a chain of 10,000 nodes
or more never touches Python's recursion limit.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["topological_order"]

N = TypeVar("N")


def topological_order(
    root: N, parents: Callable[[N], Iterable[N]] = lambda n: n.parents,
) -> list[N]:
    """Every ancestor of ``root`` (and ``root``), parents before children.

    Iterative post-order depth-first search. Each node appears once, even
    when it is reached along many paths; the last entry is ``root``.
    Nodes are compared by identity, so they need not be hashable.
    """
    order: list[N] = []
    visited: set[int] = set()
    stack: list[tuple[N, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:  # all parents are already in ``order``
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for p in parents(node):
            if id(p) not in visited:
                stack.append((p, False))
    return order
