"""The theory of optimization (Part VI): convergence, sharpness, stability.

Submodules by topic, for the chapter optimization-theory: ``convergence``
(test problems with known constants, gradient descent with and without
noise), ``hessian`` (Hessian-vector products and the sharpness, the top
Hessian eigenvalue), ``dynamics`` (training while tracking sharpness or the
top Hessian direction, the Polyak-Lojasiewicz ratio, a two-layer tanh net in
the NTK parameterization),
``stability`` (linear stability of SGD and algorithmic stability) and
``landscape`` (paths between solutions, the tangent kernel). Everything
public is re-exported here: ``from dlbook import optimization_theory``.
"""
from . import convergence, dynamics, hessian, landscape, stability
from .convergence import *  # noqa: F401,F403
from .dynamics import *  # noqa: F401,F403
from .hessian import *  # noqa: F401,F403
from .landscape import *  # noqa: F401,F403
from .stability import *  # noqa: F401,F403

__all__ = [*convergence.__all__, *hessian.__all__, *dynamics.__all__,
           *stability.__all__, *landscape.__all__]
