"""Tests of dlbook.train.fit's per-step schedules, clipping and full batch."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlbook.nn import mlp
from dlbook.train import fit, warmup_cosine


def problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(64, 5, generator=g)
    y = X @ torch.randn(5, 1, generator=g)
    return mlp([5, 16, 1], generator=g), (X, y), g


def test_per_step_schedule_matches_a_hand_written_loop():
    model, (X, y), g = problem()
    twin = mlp([5, 16, 1])
    twin.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = warmup_cosine(opt, warmup_steps=4, total_steps=16)
    h = fit(model, nn.functional.mse_loss, opt, (X, y), epochs=4, batch_size=16,
            generator=torch.Generator().manual_seed(1), scheduler=sched,
            scheduler_interval="step")
    assert len(h.step_lr) == 16
    expect = [0.1 * (t + 1) / 4 for t in range(4)] + [
        0.1 * 0.5 * (1 + math.cos(math.pi * (t - 4) / 12)) for t in range(4, 16)]
    assert max(abs(a - b) for a, b in zip(h.step_lr, expect)) < 1e-12
    # the same steps written out by hand
    opt2 = torch.optim.SGD(twin.parameters(), lr=0.1)
    sched2 = warmup_cosine(opt2, 4, 16)
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        for idx in torch.randperm(64, generator=gen).split(16):
            opt2.zero_grad()
            nn.functional.mse_loss(twin(X[idx]), y[idx]).backward()
            opt2.step()
            sched2.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b)


def test_epoch_schedule_steps_once_per_epoch():
    model, data, g = problem()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    h = fit(model, nn.functional.mse_loss, opt, data, epochs=3, batch_size=32,
            generator=g, scheduler=sched)
    assert h.step_lr == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_clipping_bounds_the_update_and_records_the_norm():
    model, (X, y), g = problem()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    h = fit(model, nn.functional.mse_loss, opt, (X, 100 * y), epochs=1,
            clip_grad_norm=0.5)
    assert len(h.step_grad_norm) == 1 and h.step_grad_norm[0] > 0.5  # full batch
    moved = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in
                           zip(model.parameters(), before)))
    assert abs(moved.item() - 0.5) < 1e-5  # lr 1 times a gradient of norm 0.5


def test_bad_arguments_fail_early():
    model, data, _ = problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="scheduler_interval"):
        fit(model, nn.functional.mse_loss, opt, data, epochs=1, scheduler_interval="batch")
    with pytest.raises(ValueError, match="clip_grad_norm"):
        fit(model, nn.functional.mse_loss, opt, data, epochs=1, clip_grad_norm=0.0)
    with pytest.raises(ValueError, match="warmup"):
        warmup_cosine(opt, 10, 5)


def test_schedule_drives_dlbook_optimizers_like_torchs_lambdalr():
    from dlbook import optim

    ours_model, data, _ = problem()
    opt = optim.SGD(ours_model.parameters(), lr=0.2, momentum=0.9)
    sched = warmup_cosine(opt, 3, 10)
    ref_opt = torch.optim.SGD(mlp([5, 16, 1]).parameters(), lr=0.2, momentum=0.9)
    f = lambda t: (t + 1) / 3 if t < 3 else 0.5 * (1 + math.cos(math.pi * min(1, (t - 3) / 7)))
    ref = torch.optim.lr_scheduler.LambdaLR(ref_opt, f)
    for _ in range(12):
        assert abs(sched.get_last_lr()[0] - ref.get_last_lr()[0]) < 1e-15
        ref_opt.step()
        sched.step()
        ref.step()
    state = sched.state_dict()
    again = warmup_cosine(optim.SGD(mlp([5, 16, 1]).parameters(), lr=0.2), 3, 10)
    again.load_state_dict(state)
    assert again.get_last_lr() == sched.get_last_lr()
    with pytest.raises(ValueError, match="param_groups"):
        warmup_cosine(object(), 1, 2)
