"""Deep learning in the world: deployment (Part VII, chapter ``deployment``).

Submodules: ``shift`` (MMD permutation test on model outputs, black-box shift
estimation), ``calibration`` (reliability bins, ECE, temperature scaling,
risk-coverage), ``fairness`` (group metrics, Chouldechova's identity,
equal-opportunity thresholds, a generated population), ``monitoring`` (CUSUM
and its threshold) and ``export`` (``torch.export``, ONNX, latency, model
cards). Everything is re-exported here.
"""
from . import calibration, export, fairness, monitoring, shift
from .calibration import *  # noqa: F401,F403
from .export import *  # noqa: F401,F403
from .fairness import *  # noqa: F401,F403
from .monitoring import *  # noqa: F401,F403
from .shift import *  # noqa: F401,F403

__all__ = [*calibration.__all__, *export.__all__, *fairness.__all__,
           *monitoring.__all__, *shift.__all__]
