"""A NumPy-backed reverse-mode tensor engine (chapter: backprop).

:class:`Tensor` is :class:`~dlbook.autodiff.scalar.Value` lifted to arrays.
Each operation stores a vector-Jacobian product (VJP): a function mapping
the adjoint of its output to the adjoints of its inputs. Shapes follow
NumPy broadcasting; the VJP of a broadcast sums the adjoint back down to
each input's shape. Reductions and permutations use NumPy's names
(``axis``, ``keepdims``, ``transpose(axes)``); everything else mirrors
PyTorch, so code and tests carry over.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .graph import topological_order

__all__ = ["Tensor", "log_softmax", "softmax", "cross_entropy", "unbroadcast"]

Axis = int | tuple[int, ...] | None
VJP = Callable[[np.ndarray], tuple[np.ndarray | None, ...]]


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched.

    The adjoint of ``np.broadcast_to(x, grad.shape)``: leading axes are
    summed away and axes where ``x`` had length 1 are summed with keepdims.
    """
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(f"cannot unbroadcast shape {grad.shape} to {shape}")
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad
    stretched = tuple(i for i, n in enumerate(shape)
                      if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


class Tensor:
    """An array node of a computation graph.

    Args:
        data: anything :func:`numpy.asarray` accepts; integer data becomes
            ``float64``, floating data keeps its precision.
        requires_grad: whether :meth:`backward` should compute ``.grad``
            for this tensor (results of operations inherit it from inputs).

    After ``loss.backward()``, ``t.grad`` is an array of ``t.shape`` for
    every tensor ``t`` that requires grad and that ``loss`` depends on.
    """

    __array_priority__ = 1000  # make ndarray + Tensor call Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False,
                 dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        arr = np.asarray(data, dtype=dtype)
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64)
        self.data: np.ndarray = arr
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self.parents: tuple[Tensor, ...] = ()
        self._vjp: VJP | None = None
        self.op = ""

    @classmethod
    def _make(cls, data: np.ndarray, parents: tuple[Tensor, ...], vjp: VJP,
              op: str) -> Tensor:
        """The result of an operation: records parents only if needed."""
        out = cls(data)
        if any(p.requires_grad for p in parents):
            out.requires_grad, out.parents = True, parents
            out._vjp, out.op = vjp, op
        return out

    # -- array protocol ----------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{grad})"

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data)

    # -- elementwise arithmetic (broadcasting) -----------------------------
    def __add__(self, other: Any) -> Tensor:
        o = _lift(other, self)
        return Tensor._make(self.data + o.data, (self, o), lambda g: (
            unbroadcast(g, self.shape), unbroadcast(g, o.shape)), "+")

    def __sub__(self, other: Any) -> Tensor:
        o = _lift(other, self)
        return Tensor._make(self.data - o.data, (self, o), lambda g: (
            unbroadcast(g, self.shape), unbroadcast(-g, o.shape)), "-")

    def __mul__(self, other: Any) -> Tensor:
        o = _lift(other, self)
        return Tensor._make(self.data * o.data, (self, o), lambda g: (
            unbroadcast(g * o.data, self.shape),
            unbroadcast(g * self.data, o.shape)), "*")

    def __truediv__(self, other: Any) -> Tensor:
        o = _lift(other, self)
        out = self.data / o.data
        return Tensor._make(out, (self, o), lambda g: (
            unbroadcast(g / o.data, self.shape),
            unbroadcast(-g * out / o.data, o.shape)), "/")

    def __pow__(self, exponent: float | int) -> Tensor:
        if not isinstance(exponent, (int, float)):
            raise TypeError(f"exponent must be a number, got {type(exponent)}")
        return Tensor._make(self.data ** exponent, (self,), lambda g: (
            g * exponent * self.data ** (exponent - 1),), f"**{exponent}")

    def __neg__(self) -> Tensor:
        return Tensor._make(-self.data, (self,), lambda g: (-g,), "neg")

    def __radd__(self, other: Any) -> Tensor:
        return _lift(other, self) + self

    def __rsub__(self, other: Any) -> Tensor:
        return _lift(other, self) - self

    def __rmul__(self, other: Any) -> Tensor:
        return _lift(other, self) * self

    def __rtruediv__(self, other: Any) -> Tensor:
        return _lift(other, self) / self

    # -- matrix product ----------------------------------------------------
    def __matmul__(self, other: Any) -> Tensor:
        """``self @ other`` with NumPy/PyTorch semantics (1-D and batched)."""
        o = _lift(other, self)
        if self.ndim == 0 or o.ndim == 0:
            raise ValueError("matmul needs operands with at least one "
                             f"dimension, got {self.shape} and {o.shape}")
        A = self.data if self.ndim > 1 else self.data[None, :]  # (1, n)
        B = o.data if o.ndim > 1 else o.data[:, None]           # (n, 1)
        out = A @ B
        if self.ndim == 1:
            out = out.squeeze(-2)
        if o.ndim == 1:
            out = out.squeeze(-1)

        def vjp(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            G = g[..., None] if o.ndim == 1 else g    # undo the squeezes
            G = np.expand_dims(G, -2) if self.ndim == 1 else G
            gA = unbroadcast(G @ np.swapaxes(B, -1, -2), A.shape)
            gB = unbroadcast(np.swapaxes(A, -1, -2) @ G, B.shape)
            return gA.reshape(self.shape), gB.reshape(o.shape)

        return Tensor._make(out, (self, o), vjp, "@")

    def __rmatmul__(self, other: Any) -> Tensor:
        return _lift(other, self) @ self

    # -- elementwise functions ---------------------------------------------
    def exp(self) -> Tensor:
        out = np.exp(self.data)
        return Tensor._make(out, (self,), lambda g: (g * out,), "exp")

    def log(self) -> Tensor:
        return Tensor._make(np.log(self.data), (self,),
                            lambda g: (g / self.data,), "log")

    def tanh(self) -> Tensor:
        t = np.tanh(self.data)
        return Tensor._make(t, (self,), lambda g: (g * (1 - t * t),), "tanh")

    def relu(self) -> Tensor:
        mask = self.data > 0  # derivative 0 at 0, as in PyTorch
        return Tensor._make(self.data * mask, (self,), lambda g: (g * mask,),
                            "relu")

    def sigmoid(self) -> Tensor:
        s = 0.5 * (1 + np.tanh(0.5 * self.data))  # overflow-free logistic
        return Tensor._make(s, (self,), lambda g: (g * s * (1 - s),), "sigmoid")

    def sin(self) -> Tensor:
        return Tensor._make(np.sin(self.data), (self,),
                            lambda g: (g * np.cos(self.data),), "sin")

    def cos(self) -> Tensor:
        return Tensor._make(np.cos(self.data), (self,),
                            lambda g: (-g * np.sin(self.data),), "cos")

    # -- reductions --------------------------------------------------------
    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        out = self.data.sum(axis=axis, keepdims=keepdims)
        return Tensor._make(out, (self,), lambda g: (
            _expand(g, self.shape, axis, keepdims),), "sum")

    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        axes = range(self.ndim) if axis is None else (
            (axis,) if isinstance(axis, int) else axis)
        count = int(np.prod([self.shape[a] for a in axes]))
        return self.sum(axis=axis, keepdims=keepdims) / count

    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Values only (NumPy's ``max``); ties share the gradient equally."""
        out = self.data.max(axis=axis, keepdims=keepdims)

        def vjp(g: np.ndarray) -> tuple[np.ndarray]:
            top = _expand(np.asarray(out), self.shape, axis, keepdims)
            mask = self.data == top
            share = mask / mask.sum(axis=axis, keepdims=True)
            return (share * _expand(g, self.shape, axis, keepdims),)

        return Tensor._make(out, (self,), vjp, "max")

    # -- shape -------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        one = len(shape) == 1 and not isinstance(shape[0], int)
        new = shape[0] if one else shape
        return Tensor._make(self.data.reshape(new), (self,),
                            lambda g: (g.reshape(self.shape),), "reshape")

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        """Permute axes as :func:`numpy.transpose` (reversed when omitted)."""
        one = len(axes) == 1 and not isinstance(axes[0], int)
        perm = axes[0] if one else axes
        perm = tuple(perm) if perm else tuple(reversed(range(self.ndim)))
        if sorted(perm) != list(range(self.ndim)):
            raise ValueError(
                f"axes must permute range({self.ndim}), got {perm}")
        inverse = tuple(np.argsort(perm))
        return Tensor._make(self.data.transpose(perm), (self,),
                            lambda g: (g.transpose(inverse),), "transpose")

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        """Basic and integer-array indexing; repeated indices add up."""
        idx = _index(index)

        def vjp(g: np.ndarray) -> tuple[np.ndarray]:
            full = np.zeros_like(self.data)
            np.add.at(full, idx, g)
            return (full,)

        return Tensor._make(self.data[idx], (self,), vjp, "index")

    # -- the reverse sweep -------------------------------------------------
    def backward(self, grad: Any = None) -> None:
        """Accumulate ``d self / d t`` into ``t.grad`` for each ancestor ``t``.

        ``grad`` seeds the output adjoint; it may be omitted only for a
        tensor with a single element (a loss). Visits nodes in reverse
        topological order; gradients add up over repeated calls.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError("grad can be omitted only for a single-"
                                   f"element tensor, got shape {self.shape}")
            grad = np.ones_like(self.data)
        grad = np.broadcast_to(np.asarray(grad, dtype=self.dtype), self.shape)
        adjoint: dict[int, np.ndarray] = {id(self): grad}
        order = topological_order(
            self, lambda n: [p for p in n.parents if p.requires_grad])
        for node in reversed(order):
            bar = adjoint.pop(id(node), None)
            if bar is None:
                continue
            node.grad = bar.copy() if node.grad is None else node.grad + bar
            if node._vjp is None:
                continue
            for parent, g in zip(node.parents, node._vjp(bar)):
                if parent.requires_grad and g is not None:
                    key = id(parent)
                    adjoint[key] = g if key not in adjoint else adjoint[key] + g

    # -- losses as methods, for convenience --------------------------------
    def log_softmax(self, axis: int = -1) -> Tensor:
        return log_softmax(self, axis)


def _lift(x: Any, like: Tensor | None = None) -> Tensor:
    """Wrap a constant; a Python number takes the dtype of ``like``."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float)):
        return Tensor(np.asarray(x, dtype=like.dtype))
    return Tensor(x)


def _index(index: Any) -> Any:
    """Turn Tensors and lists inside an index into integer arrays."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data.astype(np.intp)
    if isinstance(index, list):
        return np.asarray(index, dtype=np.intp)
    return index


def _expand(g: np.ndarray, shape: tuple[int, ...], axis: Axis,
            keepdims: bool) -> np.ndarray:
    """Broadcast a reduced adjoint back to the input ``shape``."""
    g = np.asarray(g)
    if not keepdims and axis is not None:
        axes = (axis,) if isinstance(axis, int) else axis
        g = np.expand_dims(g, tuple(a % len(shape) for a in axes))
    return np.broadcast_to(g, shape)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """``x - logsumexp(x)`` along ``axis``, computed stably, with its own VJP.

    VJP: ``g - softmax(x) * sum(g, axis)`` (derived in the chapter).
    """
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return Tensor._make(out, (x,), lambda g: (
        g - np.exp(out) * g.sum(axis=axis, keepdims=True),), "log_softmax")


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """``exp(log_softmax(x))`` along ``axis``."""
    return log_softmax(x, axis).exp()


def cross_entropy(logits: Tensor, target: Any) -> Tensor:
    """Mean negative log-likelihood of integer labels, as in PyTorch.

    Shapes: ``logits (N, C)``, ``target (N,)`` with values in ``0..C-1``.
    Built from :func:`log_softmax` and integer-array indexing.
    """
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    t = np.asarray(t, dtype=np.intp)
    if logits.ndim != 2 or t.shape != (logits.shape[0],):
        raise ValueError(f"expected logits (N, C) and target (N,), got "
                         f"{logits.shape} and {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= logits.shape[1]):
        raise ValueError(f"target values must lie in [0, {logits.shape[1]})")
    return -log_softmax(logits, axis=1)[np.arange(len(t)), t].mean()
