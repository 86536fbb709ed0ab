"""Data-parallel training with ``torch.distributed`` and DistributedDataParallel.

Chapter: scaling. ``run_ddp`` spawns ``world_size`` processes on this
machine (gloo backend, a free local port); each trains the same MLP on its
shard of every global batch under :class:`DistributedDataParallel`, and the
weights are compared with ``train_single``, one process on the whole batch.
The same worker times ``all_reduce`` on tensors of growing size for the
ring model. ``python -m dlbook.scaling.ddp`` runs the worker under
``torchrun`` (environment variables ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``), on one machine or several.
"""
from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from scipy.optimize import nnls
from torch.nn.parallel import DistributedDataParallel as DDP

from dlbook.nn import mlp

__all__ = ["DDPConfig", "make_regression_data", "make_model", "train_single",
           "ddp_worker", "run_ddp", "free_port", "ring_allreduce_bytes",
           "fit_ring_model"]


@dataclass(frozen=True)
class DDPConfig:
    """One data-parallel experiment: an MLP ``sizes`` trained by SGD with
    momentum for ``steps`` steps on global batches of ``batch`` examples,
    and the ``all_reduce`` sizes (in float32 elements) to time."""
    sizes: tuple = (8, 32, 32, 1)
    n: int = 512
    batch: int = 64
    steps: int = 20
    lr: float = 0.05
    momentum: float = 0.9
    seed: int = 0
    allreduce_sizes: tuple = ()
    allreduce_reps: int = 5


def make_regression_data(cfg: DDPConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed regression set from ``cfg.seed``: ``X`` of shape ``(n, d)``,
    ``y = sin(X @ u)`` of shape ``(n, 1)``."""
    g = torch.Generator().manual_seed(cfg.seed)
    X = torch.randn(cfg.n, cfg.sizes[0], generator=g)
    u = torch.randn(cfg.sizes[0], 1, generator=g)
    return X, torch.sin(X @ u)


def make_model(cfg: DDPConfig) -> torch.nn.Module:
    """The MLP, initialized from ``cfg.seed`` (identical in every process)."""
    return mlp(list(cfg.sizes), generator=torch.Generator().manual_seed(cfg.seed))


def _batch_indices(cfg: DDPConfig, step: int) -> torch.Tensor:
    """Global batch of step ``step``, from ``cfg.seed`` and ``step`` only, so
    that every process draws the same one. Shape: ``(batch,)``."""
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + step)
    return torch.randint(0, cfg.n, (cfg.batch,), generator=g)


def train_single(cfg: DDPConfig) -> dict[str, torch.Tensor]:
    """Single-process reference: the same steps on the whole global batch.
    Returns the final ``state_dict``."""
    X, y = make_regression_data(cfg)
    model = make_model(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    for step in range(cfg.steps):
        idx = _batch_indices(cfg, step)
        opt.zero_grad()
        F.mse_loss(model(X[idx]), y[idx]).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _train_ddp(cfg: DDPConfig, rank: int, world: int) -> DDP:
    """Each rank trains on rows ``rank::world`` of every global batch; DDP
    averages the gradients across ranks (an all-reduce) in ``backward``."""
    if cfg.batch % world:
        raise ValueError(f"batch={cfg.batch} must be divisible by the world "
                         f"size {world} for the shards to weigh equally")
    X, y = make_regression_data(cfg)
    model = DDP(make_model(cfg))
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    for step in range(cfg.steps):
        idx = _batch_indices(cfg, step)[rank::world]
        opt.zero_grad()
        F.mse_loss(model(X[idx]), y[idx]).backward()
        opt.step()
    return model


def _time_allreduce(cfg: DDPConfig) -> list[float]:
    """Fastest of ``cfg.allreduce_reps`` timings (seconds) of ``all_reduce``
    (sum) of float32 tensors of each size in ``cfg.allreduce_sizes``, after
    one warm-up call per size: the minimum is the time least disturbed by
    other work on the machine."""
    out = []
    for n in cfg.allreduce_sizes:
        t = torch.ones(int(n))
        dist.all_reduce(t)
        times = []
        for _ in range(cfg.allreduce_reps):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(t)
            times.append(time.perf_counter() - t0)
        out.append(min(times))
    return out


def ddp_worker(rank: int, world: int, cfg: DDPConfig, port: int | None,
               out_path: str | None, timeout_s: float = 60.0,
               store_path: str | None = None) -> None:
    """One process of :func:`run_ddp`: join the gloo group, train, time the
    all-reduce, and (rank 0) save ``{"state", "allreduce_s"}`` to
    ``out_path``. The processes meet through a file, ``store_path``, when it
    is given (one machine; a fresh path per run), and otherwise through the
    TCP store at ``MASTER_ADDR:MASTER_PORT`` (``port`` if the variable is
    unset), as under torchrun. A collective that waits longer than
    ``timeout_s`` seconds for a peer (one that died) raises instead of
    hanging."""
    torch.set_num_threads(1)
    timeout = timedelta(seconds=timeout_s)
    if store_path is not None:
        store = dist.FileStore(store_path, world)
        dist.init_process_group("gloo", store=store, rank=rank,
                                world_size=world, timeout=timeout)
    else:
        if port is None and "MASTER_PORT" not in os.environ:
            raise ValueError("give port, store_path or MASTER_PORT")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world,
                                timeout=timeout)
    try:
        model = _train_ddp(cfg, rank, world)
        times = _time_allreduce(cfg)
        if rank == 0 and out_path is not None:
            state = {k: v.detach().clone()
                     for k, v in model.module.state_dict().items()}
            torch.save({"state": state, "allreduce_s": times,
                        "world": world}, out_path)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ddp(cfg: DDPConfig, world_size: int = 2,
            start_method: str = "spawn", timeout_s: float = 120.0) -> dict:
    """Start ``world_size`` gloo processes running :func:`ddp_worker` and
    return rank 0's ``{"state", "allreduce_s", "world"}``. ``"spawn"``
    starts fresh interpreters (safe everywhere, slow: each imports torch);
    ``"fork"`` copies this process (fast, POSIX only). If a worker fails,
    the others are terminated and its error is raised; if the group has
    not finished after ``timeout_s`` seconds, all workers are terminated
    and ``TimeoutError`` is raised, so that a failure never hangs."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rank0.pt")
        ctx = mp.start_processes(
            ddp_worker, args=(world_size, cfg, None, path,
                              min(60.0, timeout_s),
                              os.path.join(tmp, "store")),
            nprocs=world_size, join=False, start_method=start_method)
        deadline = time.monotonic() + timeout_s
        try:
            while not ctx.join(timeout=1.0):     # raises if a worker failed
                if time.monotonic() > deadline:
                    raise TimeoutError(f"DDP workers did not finish within "
                                       f"{timeout_s} s")
        finally:
            for proc in ctx.processes:           # no orphan on any exit path
                if proc.is_alive():
                    proc.terminate()
                    proc.join(5)
        return torch.load(path)


def ring_allreduce_bytes(n_bytes: float, p: int) -> float:
    """Bytes each process sends in a ring all-reduce of ``n_bytes``:
    ``2 (p - 1) / p * n_bytes`` (reduce-scatter, then all-gather)."""
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    return 2 * (p - 1) / p * n_bytes


def fit_ring_model(n_bytes, seconds, p: int) -> tuple[float, float]:
    """Fit the ring model ``t = 2 (p - 1) t0 + 2 (p - 1) / p * n * tau`` to
    measured times by non-negative least squares on relative errors (sizes
    span decades, and each should count alike); returns ``(t0, tau)``: the
    latency of one message in seconds and the inverse bandwidth in seconds
    per byte."""
    n, t = np.asarray(n_bytes, dtype=float), np.asarray(seconds, dtype=float)
    if n.shape != t.shape or n.size < 2 or p < 2 or np.any(t <= 0):
        raise ValueError("need >= 2 (size, positive time) pairs of equal "
                         "length and p >= 2")
    A = np.stack([np.full_like(n, 2.0 * (p - 1)), 2 * (p - 1) / p * n], 1)
    (t0, tau), _ = nnls(A / t[:, None], np.ones_like(t))  # both are >= 0
    return float(t0), float(tau)


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``torchrun ... -m dlbook.scaling.ddp``: the rank and
    world size come from the environment that torchrun sets."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=DDPConfig.steps)
    p.add_argument("--out", default=None, help="rank 0 saves weights here")
    args = p.parse_args(argv)
    cfg = DDPConfig(steps=args.steps)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    ddp_worker(rank, world, cfg, int(os.environ["MASTER_PORT"]), args.out)
    if rank == 0:
        print(f"trained {asdict(cfg)} on {world} processes")


if __name__ == "__main__":
    main()
