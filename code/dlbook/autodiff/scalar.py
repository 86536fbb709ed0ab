"""A scalar reverse-mode automatic differentiation engine (chapter: backprop).

:class:`Value` wraps one number. Every arithmetic operation on values
returns a new value that remembers its parents and the *local* partial
derivatives of the operation with respect to each parent. Calling
:meth:`Value.backward` on an output then sweeps the recorded graph once in
reverse topological order and accumulates, into ``.grad`` of every node,
the derivative of the output with respect to that node.

The numbers held in ``data`` are usually floats, but any type with the
arithmetic operators and ``exp``/``log``/``tanh``/``sin``/``cos`` methods
works; with :class:`~dlbook.autodiff.dual.Dual` numbers inside, a reverse
sweep also carries a directional derivative (forward-over-reverse).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .graph import topological_order

__all__ = ["Value", "sigmoid", "trace"]

Number = Any  # float, int, or a Dual: anything with arithmetic operators


def _elementary(name: str, x: Number) -> Number:
    """``math.<name>(x)`` for plain numbers, ``x.<name>()`` otherwise."""
    method = getattr(x, name, None)
    return method() if method is not None else getattr(math, name)(x)


class Value:
    """A scalar node of a computation graph.

    Attributes:
        data: the number computed at this node.
        grad: the accumulated derivative of the output(s) on which
            :meth:`backward` was called with respect to this node.
        parents: the nodes this one was computed from.
        local_grads: ``d data / d parent`` for each parent, evaluated at
            the current values (one entry per parent, same order).
        op: a short name of the operation, for display.
    """

    __slots__ = ("data", "grad", "parents", "local_grads", "op", "label")

    def __init__(
        self, data: Number, parents: Sequence[Value] = (),
        local_grads: Sequence[Number] = (), op: str = "", label: str = "",
    ) -> None:
        if isinstance(data, Value):
            raise TypeError("data must be a number, got a Value")
        if len(parents) != len(local_grads):
            raise ValueError(
                f"need one local gradient per parent, got {len(parents)} "
                f"parents and {len(local_grads)} local_grads")
        self.data = data
        self.grad: Number = 0.0
        self.parents = tuple(parents)
        self.local_grads = tuple(local_grads)
        self.op = op
        self.label = label

    def __repr__(self) -> str:
        return f"Value(data={self.data!r}, grad={self.grad!r})"

    # -- arithmetic ---------------------------------------------------------
    def __add__(self, other: Value | Number) -> Value:
        other = _lift(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0), "+")

    def __mul__(self, other: Value | Number) -> Value:
        other = _lift(other)
        return Value(self.data * other.data, (self, other),
                     (other.data, self.data), "*")

    def __truediv__(self, other: Value | Number) -> Value:
        other = _lift(other)
        inv = 1.0 / other.data
        out = self.data * inv
        return Value(out, (self, other), (inv, -out * inv), "/")

    def __pow__(self, exponent: float | int) -> Value:
        if isinstance(exponent, Value):
            raise TypeError("Value ** Value is not supported; "
                            "write (exponent * x.log()).exp()")
        if not isinstance(exponent, (int, float)):
            return NotImplemented
        local = exponent * self.data ** (exponent - 1)
        return Value(self.data ** exponent, (self,), (local,), f"**{exponent}")

    def __rpow__(self, base: float | int) -> Value:
        # base ** x = exp(x log base), for a positive numeric base
        out = base ** self.data
        return Value(out, (self,), (out * math.log(base),), f"{base}**")

    def __neg__(self) -> Value:
        return Value(-self.data, (self,), (-1.0,), "neg")

    def __sub__(self, other: Value | Number) -> Value:
        other = _lift(other)
        return Value(self.data - other.data, (self, other), (1.0, -1.0), "-")

    def __radd__(self, other: Number) -> Value:
        return self + other

    def __rmul__(self, other: Number) -> Value:
        return self * other

    def __rsub__(self, other: Number) -> Value:
        return _lift(other) - self

    def __rtruediv__(self, other: Number) -> Value:
        return _lift(other) / self

    # -- elementary functions -----------------------------------------------
    def exp(self) -> Value:
        out = _elementary("exp", self.data)
        return Value(out, (self,), (out,), "exp")

    def log(self) -> Value:
        return Value(_elementary("log", self.data), (self,),
                     (1.0 / self.data,), "log")

    def tanh(self) -> Value:
        t = _elementary("tanh", self.data)
        return Value(t, (self,), (1.0 - t * t,), "tanh")

    def relu(self) -> Value:
        # the derivative at 0 is taken to be 0, as in PyTorch
        positive = self.data > 0
        return Value(self.data if positive else 0.0 * self.data, (self,),
                     (1.0 if positive else 0.0,), "relu")

    def sin(self) -> Value:
        return Value(_elementary("sin", self.data), (self,),
                     (_elementary("cos", self.data),), "sin")

    def cos(self) -> Value:
        return Value(_elementary("cos", self.data), (self,),
                     (-_elementary("sin", self.data),), "cos")

    # -- reverse sweep --------------------------------------------------------
    def backward(self, grad: Number = 1.0) -> None:
        """Accumulate ``d self / d node`` into ``node.grad`` for every ancestor.

        Implements reverse accumulation: visit nodes in reverse topological
        order; each node passes its finished adjoint, times the local
        derivative, to each parent. ``grad`` seeds the output's adjoint.
        Gradients add up over repeated calls, as in PyTorch.
        """
        adjoint: dict[int, Number] = {id(self): grad}
        for node in reversed(topological_order(self)):
            bar = adjoint.pop(id(node), 0.0)  # complete: all children done
            node.grad = node.grad + bar
            for parent, local in zip(node.parents, node.local_grads):
                key = id(parent)
                adjoint[key] = adjoint.get(key, 0.0) + local * bar


def sigmoid(v: Value) -> Value:
    """The logistic sigmoid ``1 / (1 + exp(-x))`` as one node, for float data.

    A new primitive built from outside the class: the value, the parent and
    the local derivative ``s (1 - s)``. Each branch exponentiates a
    non-positive number, so no input overflows: ``sigmoid(Value(-1000.0))``
    is ``0`` with derivative ``0``, where ``math.exp(1000)`` would raise.
    """
    x = float(v.data)
    if x >= 0:
        s = 1.0 / (1.0 + math.exp(-x))
    else:  # exp(x) <= 1 here
        z = math.exp(x)
        s = z / (1.0 + z)
    return Value(s, (v,), (s * (1.0 - s),), "sigmoid")


def _lift(x: Value | Number) -> Value:
    """Wrap a plain number as a constant leaf."""
    return x if isinstance(x, Value) else Value(x)


def trace(root: Value) -> tuple[list[Value], list[tuple[Value, Value]]]:
    """Nodes (topologically sorted) and edges ``(parent, child)`` of a graph.

    Used to draw computation graphs; an edge appears once per use, so
    ``x * x`` gives two edges from ``x``.
    """
    nodes = topological_order(root)
    edges = [(p, n) for n in nodes for p in n.parents]
    return nodes, edges
