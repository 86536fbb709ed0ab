"""Chapter 10 (memory): recurrent networks.

Everything the chapter "Memory and recurrent networks" runs:

- ``dlbook.rnn.layers``: ``RNN``, ``LSTM`` and ``GRU`` from scratch, with
  PyTorch's signatures and parameter layout (a ``state_dict`` loads into
  ``torch.nn.RNN`` / ``LSTM`` / ``GRU``), their single steps, and
  ``set_forget_bias_``;
- ``dlbook.rnn.gradients``: backpropagation through time by hand and the
  norms of Jacobian products against the lag;
- ``dlbook.rnn.scan``: diagonal linear recurrences, sequential and by a
  parallel scan, and causal linear attention in its three forms;
- ``dlbook.rnn.tunes``: a seeded grammar of ABC-notation tunes, its
  checker, and a character n-gram baseline;
- ``dlbook.rnn.models`` and ``dlbook.rnn.experiments``: the sequence
  models the chapter trains, sampling, and the training runs.

This package re-exports their public names.
"""
from __future__ import annotations

from . import experiments, gradients, layers, models, scan, tunes
from .tunes import *  # noqa: F401,F403
from .experiments import *  # noqa: F401,F403
from .gradients import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .scan import *  # noqa: F401,F403

__all__ = [*layers.__all__, *gradients.__all__, *scan.__all__, *tunes.__all__,
           *models.__all__, *experiments.__all__]
