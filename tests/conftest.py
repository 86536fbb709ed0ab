"""Shared pytest set-up."""
import sys
from pathlib import Path

import torch

# One thread per test process: small models run much faster on these machines.
torch.set_num_threads(1)
# The build's tools (tools/toc.py, tools/cache_guard.py) are importable in tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
