"""Shared pytest set-up: one thread per test process (faster on small models)."""
import torch

torch.set_num_threads(1)
