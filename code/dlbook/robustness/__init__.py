"""Beyond the training distribution: robustness (Part V, chapter ``ood``).

Submodules: ``attacks`` (FGSM, PGD, the closed-form linear worst case),
``training`` (adversarial training, group DRO, group and robust accuracies),
``smoothing`` (randomized smoothing and its certificates), ``shift`` (the
planted shortcut, counterfactual test sets, label shift) and ``extrapolation``
(ReLU networks along rays). Everything is re-exported here.
"""
from . import attacks, extrapolation, shift, smoothing, training
from .attacks import *  # noqa: F401,F403
from .extrapolation import *  # noqa: F401,F403
from .shift import *  # noqa: F401,F403
from .smoothing import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403

__all__ = [*attacks.__all__, *extrapolation.__all__, *shift.__all__,
           *smoothing.__all__, *training.__all__]
