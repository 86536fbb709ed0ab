"""Chapter 6 (cnn): convolutional networks.

Everything the chapter "Convolutional networks" runs:

- ``functional``: ``conv1d``, ``conv2d``, ``conv_transpose2d``,
  ``max_pool2d`` and ``avg_pool2d`` from scratch (a strided view and a matrix
  product), with the signatures of ``torch.nn.functional``;
- ``layers``: ``Conv2d`` (whose ``state_dict`` loads into
  ``torch.nn.Conv2d``), ``Conv1d``, pooling modules and ``conv_matrix``, the
  dense matrix of a convolution;
- ``models``: ``LeNet5`` and ``AlexNet`` as published, and the
  small networks the chapter trains (``DigitsCNN``, ``DeepConvNet``,
  ``MotifNet``);
- ``analysis``: receptive fields, parameter / MAC / connection
  counts and Jacobian spectra;
- ``experiments``: the chapter's training experiments.

This package re-exports their public names.
"""
from .analysis import (LayerCount, gradient_receptive_field, jacobian,
                       jacobian_singular_values, layer_counts, receptive_field)
from .experiments import (TWIN_VARIANTS, augmentation_experiment, deep_mlp,
                          denoising_filter, filter_consensus, motif_match,
                          random_shifts, residual_experiment, train_motif_net)
from .functional import (avg_pool2d, conv1d, conv2d, conv_output_size,
                         conv_transpose2d, extract_patches, max_pool2d)
from .layers import (AvgPool2d, Conv1d, Conv2d, GlobalAvgPool2d, MaxPool2d,
                     conv_matrix, cyclic_shift)
from .models import (LENET5_C3_TABLE, AlexNet, DeepConvNet, DigitsCNN,
                     EuclideanRBF, LeNet5, LocalResponseNorm, MotifNet,
                     ScaledTanh, SparseConv2d, Subsampling)

__all__ = [
    "conv_output_size", "extract_patches", "conv1d", "conv2d", "conv_transpose2d",
    "max_pool2d", "avg_pool2d",
    "Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "conv_matrix",
    "cyclic_shift",
    "ScaledTanh", "Subsampling", "SparseConv2d", "EuclideanRBF", "LENET5_C3_TABLE",
    "LeNet5", "LocalResponseNorm", "AlexNet", "DigitsCNN", "DeepConvNet", "MotifNet",
    "receptive_field", "gradient_receptive_field", "LayerCount", "layer_counts",
    "jacobian", "jacobian_singular_values",
    "deep_mlp", "TWIN_VARIANTS", "residual_experiment", "random_shifts",
    "augmentation_experiment",
    "train_motif_net", "denoising_filter",
    "filter_consensus", "motif_match",
]
