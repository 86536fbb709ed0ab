"""Forward-mode automatic differentiation with dual numbers (chapter: backprop).

A dual number ``a + b*eps`` with ``eps**2 = 0`` carries a value ``a`` and a
tangent ``b``. Evaluating a program on duals whose tangents form a direction
``v`` returns ``f(x)`` together with the Jacobian-vector product ``J_f(x) v``
in a single pass. A full gradient of ``f: R^n -> R`` therefore costs ``n``
passes, one per basis direction: the price reverse mode avoids.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Dual", "jvp", "derivative", "forward_gradient"]


class Dual:
    """The dual number ``value + tangent * eps`` with ``eps**2 = 0``.

    Supports ``+ - * /``, ``**`` with a numeric exponent, comparisons (on
    ``value``) and the methods ``exp``, ``log``, ``tanh``, ``sin``, ``cos``,
    ``relu``. Plain numbers mix in as duals with zero tangent.
    """

    __slots__ = ("value", "tangent")

    def __init__(self, value: float, tangent: float = 0.0) -> None:
        self.value = value
        self.tangent = tangent

    def __repr__(self) -> str:
        return f"Dual({self.value!r}, {self.tangent!r})"

    # (a + b eps)(c + d eps) = ac + (ad + bc) eps, because eps**2 = 0
    def __add__(self, other: Dual | float) -> Dual:
        o = _lift(other)
        return Dual(self.value + o.value, self.tangent + o.tangent)

    def __sub__(self, other: Dual | float) -> Dual:
        o = _lift(other)
        return Dual(self.value - o.value, self.tangent - o.tangent)

    def __mul__(self, other: Dual | float) -> Dual:
        o = _lift(other)
        return Dual(self.value * o.value,
                    self.value * o.tangent + self.tangent * o.value)

    def __truediv__(self, other: Dual | float) -> Dual:
        o = _lift(other)
        q = self.value / o.value
        return Dual(q, (self.tangent - q * o.tangent) / o.value)

    def __pow__(self, exponent: float | int) -> Dual:
        if not isinstance(exponent, (int, float)):
            return NotImplemented
        return Dual(self.value ** exponent,
                    exponent * self.value ** (exponent - 1) * self.tangent)

    def __neg__(self) -> Dual:
        return Dual(-self.value, -self.tangent)

    def __radd__(self, other: float) -> Dual:
        return self + other

    def __rmul__(self, other: float) -> Dual:
        return self * other

    def __rsub__(self, other: float) -> Dual:
        return _lift(other) - self

    def __rtruediv__(self, other: float) -> Dual:
        return _lift(other) / self

    def __gt__(self, other: Dual | float) -> bool:
        return self.value > _lift(other).value

    def __lt__(self, other: Dual | float) -> bool:
        return self.value < _lift(other).value

    # f(a + b eps) = f(a) + f'(a) b eps
    def exp(self) -> Dual:
        e = math.exp(self.value)
        return Dual(e, e * self.tangent)

    def log(self) -> Dual:
        return Dual(math.log(self.value), self.tangent / self.value)

    def tanh(self) -> Dual:
        t = math.tanh(self.value)
        return Dual(t, (1.0 - t * t) * self.tangent)

    def sin(self) -> Dual:
        return Dual(math.sin(self.value), math.cos(self.value) * self.tangent)

    def cos(self) -> Dual:
        return Dual(math.cos(self.value), -math.sin(self.value) * self.tangent)

    def relu(self) -> Dual:
        return self if self.value > 0 else Dual(0.0, 0.0)


def _lift(x: Dual | float) -> Dual:
    return x if isinstance(x, Dual) else Dual(x, 0.0)


def jvp(
    f: Callable[..., Any], primals: Sequence[float], tangents: Sequence[float],
) -> tuple[Any, Any]:
    """``(f(*primals), J_f(primals) @ tangents)`` in one forward pass.

    Same calling convention as :func:`torch.func.jvp`. ``f`` takes scalars
    and returns a scalar or a tuple/list of scalars.
    """
    if len(primals) != len(tangents):
        raise ValueError(f"primals and tangents differ in length: "
                         f"{len(primals)} != {len(tangents)}")
    out = f(*(Dual(p, t) for p, t in zip(primals, tangents)))
    if isinstance(out, (tuple, list)):
        outs = [_lift(o) for o in out]
        return (tuple(o.value for o in outs), tuple(o.tangent for o in outs))
    o = _lift(out)
    return o.value, o.tangent


def derivative(f: Callable[[Any], Any], x: float) -> float:
    """``f'(x)`` for a scalar function of one variable (one forward pass)."""
    return jvp(f, (x,), (1.0,))[1]


def forward_gradient(f: Callable[..., Any], x: Sequence[float]) -> list[float]:
    """The gradient of ``f: R^n -> R`` by ``n`` forward passes, one per e_i."""
    n = len(x)
    return [jvp(f, x, [1.0 if j == i else 0.0 for j in range(n)])[1]
            for i in range(n)]
