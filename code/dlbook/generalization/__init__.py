"""Generalization: bounds, random labels, double descent, kernels, PAC-Bayes.

The code of the chapter ``ch-generalization``, split by section:
``bounds`` (finite-class, VC, Rademacher, spectral and PAC-Bayes bounds,
effective ranks), ``labels`` (fitting corrupted labels), ``features`` (random
features and double descent), ``implicit`` (gradient descent's bias towards
the max-margin direction), ``kernels`` (NTK, NNGP, GP regression),
``pacbayes`` (a non-vacuous bound) and ``simplicity`` (simplicity bias of
random networks).
Everything is re-exported here.
"""
from .bounds import (augment_bias, effective_ranks, finite_class_bound,
                     kl_bernoulli, kl_inverse, mcallester_bound,
                     pac_bayes_kl_bound, rademacher_linear,
                     rademacher_margin_bound, ramp_risk,
                     sample_convergence_bound, spectral_complexity,
                     two_layer_norm, vc_bound)
from .features import (DoubleDescentResult, WidthSweepResult, double_descent,
                       min_norm_lstsq, random_relu_features, ridge, width_sweep)
from .implicit import (logistic_gd_directions, max_margin_direction,
                       normalized_margin)
from .kernels import (TwoLayerNTK, arccos_step, empirical_ntk, gp_log_evidence,
                      gp_posterior, linearized_predict, nngp_relu_kernel,
                      random_relu_net_outputs, train_gd)
from .labels import (MemorizeConfig, MemorizeResult, corrupt_labels,
                     fit_to_zero_error)
from .pacbayes import (PacBayesConfig, PacBayesResult, gaussian_kl, init_params,
                       mlp_forward, pac_bayes_optimize)
from .simplicity import (all_bit_strings, function_frequencies, lz76_phrases,
                         lz_complexity, random_net_truth_tables)

__all__ = [
    "finite_class_bound", "vc_bound", "spectral_complexity", "kl_bernoulli",
    "kl_inverse", "pac_bayes_kl_bound", "mcallester_bound",
    "sample_convergence_bound", "augment_bias", "rademacher_linear",
    "two_layer_norm", "ramp_risk", "rademacher_margin_bound", "effective_ranks",
    "max_margin_direction", "logistic_gd_directions", "normalized_margin",
    "corrupt_labels", "MemorizeConfig", "MemorizeResult", "fit_to_zero_error",
    "random_relu_features", "min_norm_lstsq", "ridge", "DoubleDescentResult",
    "double_descent", "WidthSweepResult", "width_sweep",
    "TwoLayerNTK", "empirical_ntk", "train_gd", "linearized_predict", "arccos_step",
    "nngp_relu_kernel", "random_relu_net_outputs", "gp_posterior", "gp_log_evidence",
    "PacBayesConfig", "PacBayesResult", "init_params", "mlp_forward", "gaussian_kl",
    "pac_bayes_optimize",
    "all_bit_strings", "random_net_truth_tables", "lz76_phrases", "lz_complexity",
    "function_frequencies",
]
