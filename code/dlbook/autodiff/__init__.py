"""Automatic differentiation from scratch (chapter: backprop).

- :class:`Value`: scalar reverse mode (``data``, ``grad``, ``backward()``);
  :func:`sigmoid` shows how a new primitive is added from outside.
- :class:`Dual`, :func:`jvp`: forward mode with dual numbers.
- :class:`Tensor`: NumPy-backed reverse mode with broadcasting, ``@``,
  reductions, indexing, :func:`log_softmax` and :func:`cross_entropy`.
- :func:`gradcheck`, :func:`numerical_gradient`: central-difference checks.
- :class:`MLP`: a small network on :class:`Tensor` with a PyTorch twin;
  :func:`sharpness`, the top Hessian eigenvalue of a PyTorch model's loss.
- :func:`simulate_projectile`: a differentiable program that is not a network.
"""
from .dual import Dual, derivative, forward_gradient, jvp
from .gradcheck import (GradcheckResult, central_difference_bound,
                        central_difference_error, gradcheck, numerical_gradient,
                        optimal_step, relative_rounding_error)
from .graph import topological_order
from .nn import (MLP, Linear, sgd_step, sharpness, train_full_batch,
                 train_full_batch_torch)
from .programs import Projectile, simulate_projectile, trajectory_loss
from .scalar import Value, sigmoid, trace
from .tensor import Tensor, cross_entropy, log_softmax, softmax, unbroadcast

__all__ = [
    "Value", "sigmoid", "trace", "topological_order",
    "Dual", "jvp", "derivative", "forward_gradient",
    "Tensor", "log_softmax", "softmax", "cross_entropy", "unbroadcast",
    "numerical_gradient", "gradcheck", "GradcheckResult",
    "central_difference_error", "relative_rounding_error",
    "central_difference_bound", "optimal_step",
    "Linear", "MLP", "sgd_step", "train_full_batch", "train_full_batch_torch",
    "sharpness",
    "Projectile", "simulate_projectile", "trajectory_loss",
]
