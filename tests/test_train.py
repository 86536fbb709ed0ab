"""Tests of dlbook.train: fit's history, early stopping, determinism, dropout."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from dlbook import optim
from dlbook.data import digits
from dlbook.nn import mlp
from dlbook.seed import torch_generator
from dlbook.train import (Dropout, History, accuracy, dropout, evaluate, fit,
                          iterate_minibatches, warmup_cosine)

F = nn.functional


def _mlp(seed: int = 0, hidden: int = 32, p: float = 0.0) -> nn.Module:
    return mlp([64, hidden, 10], dropout=p, generator=torch_generator(seed))


@pytest.fixture(scope="module")
def data():
    return digits(seed=0, val_size=0.2)


def test_history_contents(data):
    model = _mlp()
    n = len(data.X_train)
    h = fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.5),
            data.train, epochs=3, batch_size=64, val=data.val,
            metrics={"acc": accuracy}, generator=torch_generator(0))
    assert isinstance(h, History) and len(h) == 3
    assert set(h.keys()) == {"train_loss", "train_acc", "val_loss", "val_acc"}
    assert len(h.step_loss) == 3 * math.ceil(n / 64)
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert h.final == h.epochs[-1]
    assert h.best == h.epochs[h.best_epoch - 1]
    assert h.final["val_acc"] > 0.8
    # the recorded numbers are those evaluate() gives for the final model
    again = evaluate(model, F.cross_entropy, data.val, {"acc": accuracy}, "val_")
    assert math.isclose(again["val_loss"], h.final["val_loss"], rel_tol=1e-6)
    with pytest.raises(KeyError, match="no metric"):
        h["val_f1"]


def test_deterministic_with_seeded_generator(data):
    def run(seed):
        model = _mlp(0, p=0.2)
        return fit(model, F.cross_entropy,
                   optim.Adam(model.parameters(), lr=1e-2), data.train,
                   epochs=2, batch_size=32, generator=torch_generator(seed))

    a, b, c = run(1), run(1), run(2)
    assert a.step_loss == b.step_loss
    assert a.step_loss != c.step_loss  # the generator is really used


def test_works_with_torch_optim_and_matches_dlbook_optim(data):
    def run(make):
        model = _mlp().double()
        X, y = data.train
        return fit(model, F.cross_entropy, make(model.parameters()),
                   (X.double(), y), epochs=2, batch_size=50,
                   generator=torch_generator(3))

    ours = run(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True))
    theirs = run(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9,
                                            nesterov=True))
    assert len(ours.step_loss) == len(theirs.step_loss)
    for a, b in zip(ours.step_loss, theirs.step_loss):
        assert math.isclose(a, b, rel_tol=1e-10)


def test_scheduler_is_stepped_once_per_epoch(data):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    fit(model, F.cross_entropy, opt, data.train, epochs=3, batch_size=128,
        scheduler=sched, generator=torch_generator(0))
    assert math.isclose(opt.param_groups[0]["lr"], 0.1 * 0.5**3)


def _overfit_run(data, patience=None, restore_best=False, epochs=150):
    X, y = data.X_train[:60], data.y_train[:60]
    model = _mlp(0, hidden=256)
    h = fit(model, F.cross_entropy, optim.Adam(model.parameters(), lr=3e-3),
            (X, y), epochs=epochs, val=data.val, patience=patience,
            restore_best=restore_best)
    return model, h


def test_early_stopping_and_restore_best(data):
    _, full = _overfit_run(data)
    assert 1 <= full.best_epoch < len(full) - 10  # validation loss turns up
    assert full.final["val_loss"] > full.best["val_loss"]
    model, h = _overfit_run(data, patience=5, restore_best=True)
    assert h.stopped_early
    assert len(h) == h.best_epoch + 5
    assert h["val_loss"] == full["val_loss"][:len(h)]  # same run, cut short
    restored = evaluate(model, F.cross_entropy, data.val)["loss"]
    assert math.isclose(restored, h.best["val_loss"], rel_tol=1e-6)
    assert restored < h.final["val_loss"]


def test_min_delta_and_callback(data):
    model = _mlp()
    norms = []

    def probe(m, record):
        record["w_norm"] = m[0].weight.norm().item()
        norms.append(record["w_norm"])

    h = fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.05),
            data.train, epochs=30, batch_size=256, val=data.val,
            patience=1, min_delta=1.0, callback=probe)
    assert h.stopped_early and len(h) == 2  # no epoch can improve by 1.0 nats
    assert h["w_norm"] == norms


def test_divergence_stops_training(data):
    model = nn.Linear(64, 1)  # least squares: lr far above 2/L blows up
    X, y = data.X_train, data.y_train.float().unsqueeze(1)
    h = fit(model, F.mse_loss, optim.SGD(model.parameters(), lr=10.0),
            (X, y), epochs=200, batch_size=32, generator=torch_generator(0))
    assert h.diverged and len(h) < 200
    assert not math.isfinite(h.step_loss[-1])


@pytest.mark.parametrize("kw,match", [
    (dict(epochs=-1), "epochs"), (dict(epochs=1, batch_size=0), "batch_size"),
    (dict(epochs=1, patience=0), "patience"),
])
def test_bad_arguments(data, kw, match):
    model = _mlp()
    with pytest.raises(ValueError, match=match):
        fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1),
            data.train, **kw)
    with pytest.raises(ValueError, match="train"):
        fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1),
            (data.X_train, data.y_train[:3]), epochs=1)


def test_iterate_minibatches_is_a_partition():
    idx = list(iterate_minibatches(10, 3, torch_generator(0)))
    assert [len(i) for i in idx] == [3, 3, 3, 1]
    assert sorted(torch.cat(idx).tolist()) == list(range(10))


def test_dropout_is_unbiased_and_scales_survivors():
    g = torch_generator(0)
    x = torch.linspace(-2, 3, 50, dtype=torch.float64)
    for p in [0.1, 0.5, 0.8]:
        draws = torch.stack([dropout(x, p, generator=g) for _ in range(4000)])
        # E[dropout(x)] = x; the Monte Carlo error is sd/sqrt(n)
        sd = x.abs() * math.sqrt(p / (1 - p))
        assert ((draws.mean(0) - x).abs() <= 5 * sd / math.sqrt(4000) + 1e-12).all()
        kept = draws != 0
        assert abs(kept.double().mean().item() - (1 - p)) < 0.01
        scaled = (draws / x)[kept]
        assert torch.allclose(scaled, torch.full_like(scaled, 1 / (1 - p)))


def test_dropout_module_modes_and_torch_agreement():
    layer = Dropout(0.3, generator=torch_generator(0))
    x = torch.ones(20000)
    layer.eval()
    assert torch.equal(layer(x), x)
    layer.train()
    ours = layer(x)
    theirs = nn.Dropout(0.3).train()(x)
    # same law as torch's inverted dropout: same support, same zero fraction
    assert set(ours.unique().tolist()) == set(theirs.unique().tolist())
    assert abs((ours == 0).float().mean() - (theirs == 0).float().mean()) < 0.02
    assert torch.equal(dropout(x, 0.0), x)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match="p must"):
        Dropout(1.5)


def _dropout_masks(net: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The keep-masks that each Dropout layer of ``net`` applies, in order."""
    out = []
    for layer in net:
        if isinstance(layer, Dropout):
            out.append(layer(torch.ones_like(x)) != 0)
        x = layer(x)
    return out


def test_stacked_dropout_layers_draw_independent_reproducible_masks():
    """The bug of the first printing: every Dropout had a generator with the
    same seed, so stacked layers drew identical masks."""
    x = torch.randn(16, 128, generator=torch_generator(5))
    net = mlp([128, 128, 128, 128, 10], dropout=0.5, generator=torch_generator(0))
    net.train()
    masks = _dropout_masks(net, x)
    assert len(masks) == 3
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.equal(masks[i], masks[j])
            # independent Bernoulli(1/2) masks agree on about half the units
            agree = (masks[i] == masks[j]).float().mean().item()
            assert abs(agree - 0.5) < 0.05
    again = mlp([128, 128, 128, 128, 10], dropout=0.5,
                generator=torch_generator(0)).train()
    assert all(torch.equal(a, b) for a, b in zip(masks, _dropout_masks(again, x)))
    other = mlp([128, 128, 128, 128, 10], dropout=0.5,
                generator=torch_generator(1)).train()
    assert not torch.equal(masks[0], _dropout_masks(other, x)[0])
    # successive calls of one layer draw fresh masks as well
    first = masks[0]
    assert not torch.equal(first, _dropout_masks(net, x)[0])


def test_per_step_warmup_cosine_schedule(data):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    steps_per_epoch = math.ceil(len(data.X_train) / 64)
    total = 3 * steps_per_epoch
    sched = warmup_cosine(opt, 10, total)
    h = fit(model, F.cross_entropy, opt, data.train, epochs=3, batch_size=64,
            scheduler=sched, scheduler_interval="step",
            generator=torch_generator(0))
    assert len(h.step_lr) == total
    for t, lr in enumerate(h.step_lr):
        if t < 10:
            expected = 0.2 * (t + 1) / 10
        else:
            expected = 0.2 * 0.5 * (1 + math.cos(math.pi * (t - 10) / (total - 10)))
        assert math.isclose(lr, expected, rel_tol=1e-9, abs_tol=1e-12)


def test_clip_grad_norm_bounds_every_step(data):
    model = _mlp()
    before = [p.detach().clone() for p in model.parameters()]
    lr, c = 0.5, 1e-3
    h = fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=lr),
            data.train, epochs=1, batch_size=len(data.X_train),
            clip_grad_norm=c)
    moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum()
                           for p, b in zip(model.parameters(), before)))
    assert h.step_grad_norm[0] > 10 * c  # clipping was active
    assert moved.item() <= lr * c * (1 + 1e-5)
    assert moved.item() >= lr * c * (1 - 1e-3)


def _remove_cell_asserts(chapter: str) -> int:
    """Count ``assert`` statements in the chapter's cells tagged remove-cell."""
    text = (Path(__file__).parents[1] / "book" / "foundations" / chapter).read_text()
    cells = re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, flags=re.S)
    hidden = [c for c in cells if re.search(r"tags:.*remove-cell", c)]
    return sum(len(re.findall(r"^\s*assert ", c, flags=re.M)) for c in hidden)


def test_training_chapter_guards_its_claims():
    assert _remove_cell_asserts("training.md") >= 30


def test_evaluate_records_no_graph_and_restores_the_mode():
    from dlbook.train import evaluate
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5))
    model.train()
    seen = []

    def loss_fn(out, y):
        seen.append(out.requires_grad)
        return torch.nn.functional.cross_entropy(out, y)

    X, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    evaluate(model, loss_fn, (X, y))
    assert seen == [False] and model.training
