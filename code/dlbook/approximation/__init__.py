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
* :func:`ridge_cosine_net` -- universal approximation in R^d by ridge functions;
  :func:`arrangement_regions` and :func:`count_arrangement_regions`, the regions
  of one layer; :func:`memorizing_net`, n points fitted by n - 1 units.
* :func:`breakpoints` and :func:`count_pieces` -- exact counting of the linear
  pieces of a ReLU network along a line, by propagating breakpoints layer by
  layer; :func:`restrict_to_line` turns a network on R^d into one on a line.

The code is split by topic into ``networks``, ``highdim``, ``depth``, ``regions``
and ``barron``; everything is importable from here. Every network is an
:class:`torch.nn.Sequential` of :class:`torch.nn.Linear` and
:class:`torch.nn.ReLU` (or :class:`Step`) layers, so weights carry over to and
from ordinary PyTorch code.
"""

from __future__ import annotations

from . import barron, depth, highdim, networks, regions
from .barron import *  # noqa: F401,F403
from .depth import *  # noqa: F401,F403
from .highdim import *  # noqa: F401,F403
from .networks import *  # noqa: F401,F403
from .regions import *  # noqa: F401,F403

# The public names are the submodules' own __all__, in the chapter's order.
__all__ = [*networks.__all__, *highdim.__all__, *depth.__all__, *regions.__all__,
           *barron.__all__]
