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

# Chapter transfer-data: domain adaptation, in-context learning,
# meta-learning and generated training data.
from . import domain, incontext, meta, synthetic  # noqa: E402
from .domain import *  # noqa: F401,F403,E402
from .incontext import *  # noqa: F401,F403,E402
from .meta import *  # noqa: F401,F403,E402
from .synthetic import *  # noqa: F401,F403,E402

__all__ += [*domain.__all__, *incontext.__all__, *meta.__all__,
            *synthetic.__all__]
