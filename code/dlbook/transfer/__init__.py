"""Transfer learning (Part V): reusing pretrained models and what they know.

Submodules by topic: ``finetune`` (task families, linear probing,
finetuning, LP-FT), ``distill`` (knowledge distillation) and ``adapters``
(LoRA and bottleneck adapters), all for the chapter transfer-models. The
chapter on transfer through data adds its own submodules beside these.
Everything public is re-exported here: ``from dlbook import transfer``.
"""
from . import adapters, distill, finetune
from .adapters import *  # noqa: F401,F403
from .distill import *  # noqa: F401,F403
from .finetune import *  # noqa: F401,F403

__all__ = [*adapters.__all__, *distill.__all__, *finetune.__all__]
