"""Recurrent layers from scratch with PyTorch's parameter layout.

Chapter: memory and recurrent networks. :class:`RNN`, :class:`LSTM` and
:class:`GRU` register ``weight_ih_l{k}`` ``(G*H, H_in)``, ``weight_hh_l{k}``
``(G*H, H)``, ``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``(G*H,)`` for each layer
``k``, with the gates stacked in PyTorch's order (LSTM: i, f, g, o; GRU: r, z,
n), so that a ``state_dict`` loads into ``torch.nn.RNN`` / ``LSTM`` / ``GRU``
and both compute the same function. The time loop is explicit Python: the
input projection of all steps is one matrix product, the recurrence one small
product per step.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["rnn_step", "lstm_step", "gru_step", "RNN", "LSTM", "GRU",
           "set_forget_bias_"]


def rnn_step(xw: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor,
             bias_hh: torch.Tensor | None, nonlinearity: str = "tanh"
             ) -> torch.Tensor:
    """One Elman step, ``h_t = phi(xw_t + h_{t-1} W_hh^T + b_hh)``.

    ``xw`` is the projected input ``x_t W_ih^T + b_ih``. Shapes: ``xw (N, H)``,
    ``h (N, H)``, ``weight_hh (H, H)`` -> ``(N, H)``.
    """
    pre = xw + h @ weight_hh.T
    if bias_hh is not None:
        pre = pre + bias_hh
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def lstm_step(xw: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
              weight_hh: torch.Tensor, bias_hh: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step (gates i, f, g, o, as in ``torch.nn.LSTM``).

    ``c_t = f * c_{t-1} + i * g`` and ``h_t = o * tanh(c_t)``.
    Shapes: ``xw (N, 4H)``, ``h, c (N, H)``, ``weight_hh (4H, H)``.
    """
    gates = xw + h @ weight_hh.T
    if bias_hh is not None:
        gates = gates + bias_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # eq. (lstm-cell)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_step(xw: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor,
             bias_hh: torch.Tensor | None) -> torch.Tensor:
    """One GRU step (gates r, z, n, as in ``torch.nn.GRU``).

    The reset gate multiplies the recurrent term *after* its bias,
    ``n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))``, and
    ``h_t = (1 - z) * n + z * h_{t-1}``. Shapes: ``xw (N, 3H)``, ``h (N, H)``,
    ``weight_hh (3H, H)``.
    """
    hw = h @ weight_hh.T
    if bias_hh is not None:
        hw = hw + bias_hh
    x_r, x_z, x_n = xw.chunk(3, dim=-1)
    h_r, h_z, h_n = hw.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


class _Recurrent(nn.Module):
    """Shared machinery: parameters, input checks and the loop over layers."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, *,
                 generator: torch.Generator | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        rows = self.gates * hidden_size
        for k in range(num_layers):
            cols = input_size if k == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(
                torch.empty(rows, cols, dtype=dtype)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(
                torch.empty(rows, hidden_size, dtype=dtype)))
            if bias:
                self.register_parameter(f"bias_ih_l{k}", nn.Parameter(
                    torch.empty(rows, dtype=dtype)))
                self.register_parameter(f"bias_hh_l{k}", nn.Parameter(
                    torch.empty(rows, dtype=dtype)))
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's initialization: every parameter ``U(-1/sqrt(H), 1/sqrt(H))``."""
        bound = 1 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            p.uniform_(-bound, bound, generator=generator)

    def _layer(self, k: int) -> tuple[torch.Tensor, ...]:
        get = lambda name: getattr(self, f"{name}_l{k}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _check(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"input must have shape (N, L, {self.input_size}) (batch_first), "
                f"(L, N, {self.input_size}) or (L, {self.input_size}), "
                f"got {tuple(x.shape)}")
        unbatched = x.ndim == 2
        x = x.unsqueeze(0 if self.batch_first else 1) if unbatched else x
        return (x if self.batch_first else x.transpose(0, 1)), unbatched

    def _initial(self, hx: torch.Tensor | None, x: torch.Tensor,
                 unbatched: bool) -> torch.Tensor:
        shape = (self.num_layers, x.shape[0], self.hidden_size)
        if hx is None:
            return x.new_zeros(shape)
        hx = hx.unsqueeze(1) if unbatched else hx
        if tuple(hx.shape) != shape:
            raise ValueError(f"initial state must have shape {shape}, "
                             f"got {tuple(hx.shape)}")
        return hx

    def _output(self, y: torch.Tensor, unbatched: bool) -> torch.Tensor:
        y = y if self.batch_first else y.transpose(0, 1)
        return y.squeeze(0 if self.batch_first else 1) if unbatched else y

    def _run(self, x: torch.Tensor, states: list[tuple[torch.Tensor, ...]]
             ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        """Run every layer over ``x (N, L, H_in)``; ``states[k]`` is layer k's."""
        finals = []
        for k in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self._layer(k)
            xw = x @ w_ih.T if b_ih is None else x @ w_ih.T + b_ih  # all steps at once
            state, outs = states[k], []
            for t in range(x.shape[1]):
                state = self._step(xw[:, t], state, w_hh, b_hh)
                outs.append(state[0])
            x = torch.stack(outs, dim=1)
            finals.append(state)
        return x, finals


class RNN(_Recurrent):
    """Elman network with ``torch.nn.RNN``'s signature and parameters.

    ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or ReLU).
    Shapes: input ``(N, L, H_in)`` with ``batch_first=True`` (else
    ``(L, N, H_in)``; or unbatched ``(L, H_in)``), ``hx (num_layers, N, H)``;
    returns ``output`` (the last layer's ``h_t`` for every t) and ``h_n``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True,
                 batch_first: bool = False, **kwargs) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError("nonlinearity must be 'tanh' or 'relu', "
                             f"got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first,
                         **kwargs)

    def _step(self, xw, state, w_hh, b_hh):
        return (rnn_step(xw, state[0], w_hh, b_hh, self.nonlinearity),)

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        x, unbatched = self._check(input)
        h0 = self._initial(hx, x, unbatched)
        y, finals = self._run(x, [(h0[k],) for k in range(self.num_layers)])
        h_n = torch.stack([s[0] for s in finals])
        return self._output(y, unbatched), (h_n.squeeze(1) if unbatched else h_n)


class GRU(RNN):
    """Gated recurrent unit with ``torch.nn.GRU``'s signature and parameters
    (gates r, z, n stacked in that order). Shapes as :class:`RNN`."""

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, **kwargs) -> None:
        super().__init__(input_size, hidden_size, num_layers, "tanh", bias,
                         batch_first, **kwargs)

    def _step(self, xw, state, w_hh, b_hh):
        return (gru_step(xw, state[0], w_hh, b_hh),)


class LSTM(_Recurrent):
    """Long short-term memory with ``torch.nn.LSTM``'s signature and parameters
    (gates i, f, g, o stacked in that order).

    ``forward(input, (h_0, c_0))`` returns ``output, (h_n, c_n)``; shapes as
    :class:`RNN`, with ``c`` shaped like ``h``.
    """

    gates = 4

    def _step(self, xw, state, w_hh, b_hh):
        return lstm_step(xw, state[0], state[1], w_hh, b_hh)

    def forward(self, input: torch.Tensor,
                hx: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        x, unbatched = self._check(input)
        h0, c0 = (None, None) if hx is None else hx
        h0, c0 = self._initial(h0, x, unbatched), self._initial(c0, x, unbatched)
        y, finals = self._run(x, [(h0[k], c0[k]) for k in range(self.num_layers)])
        h_n = torch.stack([s[0] for s in finals])
        c_n = torch.stack([s[1] for s in finals])
        if unbatched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return self._output(y, unbatched), (h_n, c_n)


@torch.no_grad()
def set_forget_bias_(lstm: nn.Module, value: float) -> nn.Module:
    """Set the LSTM's effective forget-gate bias to ``value`` in every layer.

    PyTorch's layout has two biases; the gate sees their sum, so the forget
    slice ``[H:2H]`` of ``bias_ih`` is set to ``value`` and that of
    ``bias_hh`` to zero. Works for :class:`LSTM` and ``torch.nn.LSTM``.
    """
    H = lstm.hidden_size
    for k in range(lstm.num_layers):
        b_ih, b_hh = getattr(lstm, f"bias_ih_l{k}"), getattr(lstm, f"bias_hh_l{k}")
        b_ih[H:2 * H] = value
        b_hh[H:2 * H] = 0.0
    return lstm
