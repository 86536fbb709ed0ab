"""What networks can represent, and at what cost (chapter: approximation).

Constructions and measurements behind the chapter's theorems:

* :func:`relu_interpolant` -- the one-hidden-layer ReLU network that is the
  piecewise-linear interpolant of a function (constructive universal
  approximation in one dimension), and :func:`modulus_of_continuity`, the
  quantity its error bound is stated in.
* :func:`barron_sample_net` -- the random network of the Monte Carlo argument
  behind Barron's theorem for a Gaussian target, and :func:`fit_outer_layer`,
  the least-squares refit of its output layer.
* :func:`sawtooth`, :func:`sawtooth_net`, :func:`shallow_sawtooth_net` -- the
  tent map, its compositions, and shallow approximations of them (Telgarsky's
  depth separation).
* :func:`breakpoints` and :func:`count_pieces` -- exact counting of the linear
  pieces of a ReLU network along a line, by propagating breakpoints layer by
  layer; :func:`restrict_to_line` turns a network on R^d into one on a line.

The code is split by topic into ``networks``, ``depth``, ``regions`` and
``barron``; everything is importable from here. Every network is an
:class:`torch.nn.Sequential` of :class:`torch.nn.Linear` and
:class:`torch.nn.ReLU` (or :class:`Step`) layers, so weights carry over to and
from ordinary PyTorch code.
"""

from __future__ import annotations

from .networks import (
    mlp,
    relu_interpolant,
    modulus_of_continuity,
    sup_error,
    train_mse,
)
from .depth import (
    tent_net,
    sawtooth,
    sawtooth_net,
    shallow_sawtooth_net,
    sawtooth_l1_lower_bound,
    l1_error,
)
from .regions import (
    breakpoints,
    count_pieces,
    max_pieces,
    restrict_to_line,
    activation_patterns,
)
from .barron import (
    Step,
    gaussian_barron_norm,
    sample_ball,
    barron_sample_net,
    fit_outer_layer,
)

__all__ = [
    "mlp",
    "relu_interpolant",
    "modulus_of_continuity",
    "sup_error",
    "train_mse",
    "tent_net",
    "sawtooth",
    "sawtooth_net",
    "shallow_sawtooth_net",
    "sawtooth_l1_lower_bound",
    "l1_error",
    "breakpoints",
    "count_pieces",
    "max_pieces",
    "restrict_to_line",
    "activation_patterns",
    "Step",
    "gaussian_barron_norm",
    "sample_ball",
    "barron_sample_net",
    "fit_outer_layer",
]
