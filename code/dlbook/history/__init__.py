"""Chapter 1 (history): the perceptron, XOR, a small LeNet and the growth of scale.

Everything the chapter "A brief history of neural networks" runs:

- :class:`Perceptron` and :func:`train_perceptron`, Rosenblatt's learning rule
  (binary and multiclass), with data of a prescribed margin from
  :func:`separable_data`, the data's own margin :func:`max_margin`, and
  Novikoff's bound :func:`novikoff_bound`;
- :func:`find_cycle`, which exhibits the perceptron cycling on XOR;
- :func:`xor_mlp`, a one-hidden-layer network trained by backpropagation;
- :class:`LeNet`, a LeNet-style convolutional network for 8x8 digits;
- ``MILESTONES``, published parameter counts and training compute.

The code lives in three modules, ``perceptron``, ``networks`` and ``scale``;
this package re-exports their public names.
"""
from .networks import (DIGITS_LENET, LeNet, LeNetConfig, compare_on_digits,
                       hidden_features, init_uniform_, xor_mlp)
from .perceptron import (Perceptron, PerceptronRun, SeparableData, find_cycle,
                         margin, max_margin, novikoff_bound, radius,
                         separable_data, train_perceptron)
from .scale import MILESTONES, Milestone, doubling_time

__all__ = [
    "Perceptron", "PerceptronRun", "train_perceptron", "SeparableData",
    "separable_data", "margin", "max_margin", "radius", "novikoff_bound",
    "find_cycle", "init_uniform_", "xor_mlp", "hidden_features", "LeNetConfig",
    "LeNet", "DIGITS_LENET", "compare_on_digits",
    "Milestone", "MILESTONES", "doubling_time",
]
