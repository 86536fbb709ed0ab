"""Tests for dlbook.efficiency (chapter: efficiency)."""
import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlbook import efficiency as E
from dlbook.data import digits
from dlbook.nn import mlp
from dlbook.seed import torch_generator
from dlbook.train import accuracy, fit

torch.set_num_threads(1)
F = nn.functional


def _flop_counter(model, x):
    with FlopCounterMode(display=False) as fc:
        model(x)
    return fc.get_total_flops()


def test_count_flops_hand_count_mlp():
    model = mlp([64, 32, 10])
    x = torch.randn(5, 64)
    c = E.count_flops(model, x)
    assert c.total == 2 * 5 * (64 * 32 + 32 * 10)
    assert c.total == _flop_counter(model, x)
    assert c.uncounted == ()


def test_count_flops_conv_matches_flop_counter():
    g = torch_generator(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 4, 3, stride=2, groups=2), nn.Flatten(),
                          nn.Linear(4 * 3 * 3, 5), nn.BatchNorm1d(5))
    x = torch.randn(2, 3, 8, 8, generator=g)
    c = E.count_flops(model.eval(), x)
    hand = 2 * 2 * (8 * 8 * 8 * 27 + 4 * 3 * 3 * 36 + 5 * 36)
    assert c.total == hand == _flop_counter(model, x)
    assert c.uncounted == ("5",)  # BatchNorm has parameters but no rule


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        return self.mha(x, x, x)[0]


def test_count_flops_reports_what_it_cannot_count():
    # MultiheadAttention holds in_proj_weight itself and applies out_proj
    # functionally: nothing is counted, and both must be reported
    c = E.count_flops(_Attention(), torch.randn(2, 5, 8))
    assert c.total == 0
    assert set(c.uncounted) == {"mha", "mha.out_proj"}


def test_activations_and_memory():
    model = mlp([64, 32, 10])  # Linear, ReLU, Linear
    x = torch.randn(4, 64)
    assert E.count_activations(model, x) == 4 * (32 + 32 + 10)
    mem = E.memory_footprint(model, x)
    n = 64 * 32 + 32 + 32 * 10 + 10
    assert mem["weights"] == 4 * n and mem["optimizer"] == 8 * n
    assert mem["total"] == 16 * n + 4 * 4 * 74
    with pytest.raises(ValueError, match="bytes_per_value"):
        E.memory_footprint(model, x, bytes_per_value=0)


def test_roofline_and_intensity():
    r = E.matmul_throughput(64, 64, 64, repeats=3)
    assert math.isclose(r["intensity"], 2 * 64 ** 3 / (3 * 64 * 64 * 4))
    assert r["flop_per_s"] > 0
    assert E.roofline(1.0, peak=10.0, bandwidth=2.0) == 2.0
    assert E.roofline(100.0, peak=10.0, bandwidth=2.0) == 10.0
    assert E.copy_bandwidth(1 << 20, repeats=2) > 0


def test_quantizer_levels_and_no_clipping():
    x = torch.randn(1000, generator=torch_generator(0), dtype=torch.float64)
    for bits in (2, 3, 4, 8):
        q = E.quantize(x, bits)
        delta = E.quantization_step(x, bits)
        assert len(torch.unique(q)) <= 2 ** bits - 1
        assert (q - x).abs().max() <= delta / 2 + 1e-12
    with pytest.raises(ValueError, match="bits"):
        E.quantize(x, 1)


def test_quantization_error_variance_delta_squared_over_12():
    # uniform input on a range that is a whole number of steps: exact theorem
    g = torch_generator(1)
    x = (torch.rand(200_000, generator=g, dtype=torch.float64) * 2 - 1)
    for bits in (4, 6, 8):
        delta = E.quantization_step(x, bits).item()
        err = E.quantize(x, bits) - x
        ratio = err.var().item() / (delta ** 2 / 12)
        assert abs(ratio - 1) < 0.03, (bits, ratio)
        assert abs(err.mean().item()) < 0.01 * delta


def test_per_channel_beats_per_tensor_on_uneven_rows():
    g = torch_generator(2)
    W = torch.randn(8, 50, generator=g) * torch.logspace(-2, 0, 8)[:, None]
    e_t = (E.quantize(W, 4) - W).pow(2).mean()
    e_c = (E.quantize(W, 4, per_channel=True) - W).pow(2).mean()
    assert e_c < 0.5 * e_t


def test_ste_gradient_is_identity():
    w = torch.randn(4, 3, requires_grad=True)
    y = E.fake_quantize_ste(w, 3)
    assert torch.allclose(y.detach(), E.quantize(w.detach(), 3))
    (y * torch.arange(12.).reshape(4, 3)).sum().backward()
    assert torch.allclose(w.grad, torch.arange(12.).reshape(4, 3))


def test_qat_copy_keeps_function_at_high_bits():
    model = mlp([6, 5, 2], generator=torch_generator(0))
    q = E.to_qat(model, 8)
    assert isinstance(q[0], E.QuantLinear)
    x = torch.randn(3, 6)
    assert torch.allclose(q(x), model(x), atol=0.05)


def test_dynamic_int8_smaller_and_close():
    model = mlp([64, 128, 10], generator=torch_generator(0))
    q, messages = E.dynamic_int8(model)
    x = torch.randn(16, 64)
    assert E.serialized_size(q) < 0.4 * E.serialized_size(model)
    assert (q(x) - model(x)).abs().max() < 0.05
    assert all(isinstance(m, str) for m in messages)
    with pytest.raises(ValueError, match="Sequential"):
        E.dynamic_int8(nn.Linear(4, 4))  # would silently stay float


def test_masks_counts_and_training_keeps_zeros():
    model = mlp([64, 32, 10], generator=torch_generator(0))
    masks = E.magnitude_masks(model, 0.75)
    for name, m in E.prunable(model).items():
        assert int(masks[name].sum()) == round(0.25 * m.weight.numel())
        kept = m.weight.detach().abs()[masks[name].bool()].min()
        cut = m.weight.detach().abs()[~masks[name].bool()].max()
        assert kept >= cut
    rnd = E.random_masks(model, 0.75, generator=torch_generator(1))
    assert all(int(rnd[n].sum()) == int(masks[n].sum()) for n in masks)
    E.apply_masks(model, masks)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    X, y = torch.randn(40, 64), torch.randint(0, 10, (40,))
    fit(model, F.cross_entropy, opt, (X, y), epochs=3)
    E.remove_masks(model)
    assert abs(E.weight_sparsity(model) - 0.75) < 0.01


def test_nested_masks_in_imp():
    make = lambda: mlp([16, 12, 3], generator=torch_generator(0))
    X, y = torch.randn(30, 16), torch.randint(0, 3, (30,))

    def train(m):
        fit(m, F.cross_entropy, torch.optim.SGD(m.parameters(), lr=0.1),
            (X, y), epochs=2)

    res = E.iterative_magnitude_pruning(make().state_dict(), make, train,
                                        rounds=3, rate=0.5)
    assert res[0][1] is None and [round(s, 3) for s, _, _ in res] == [
        0.0, 0.5, 0.75, 0.875]
    for (_, a, _), (_, b, _) in zip(res[1:], res[2:]):
        assert all(bool((b[n] <= a[n]).all()) for n in a)  # nested


def test_structured_prune_is_smaller_dense_and_exact_on_dead_units():
    model = mlp([10, 8, 4], generator=torch_generator(0))
    with torch.no_grad():  # kill half of the hidden units
        model[0].weight[4:] = 0
        model[0].bias[4:] = 0
    small = E.structured_prune(model, 0.5)
    assert small[0].weight.shape == (4, 10) and small[2].weight.shape == (4, 4)
    x = torch.randn(7, 10)
    assert torch.allclose(small(x), model(x), atol=1e-6)


@pytest.mark.slow
def test_claims_ptq_and_magnitude_vs_random():
    """The chapter's claims at small size: 8-bit weights cost nothing, 2-bit
    per-tensor collapses, and magnitude pruning beats random pruning."""
    data = digits(seed=0)
    Xte, yte = data.test
    model = mlp([64, 128, 10], generator=torch_generator(0))
    fit(model, F.cross_entropy, torch.optim.Adam(model.parameters(), lr=3e-3),
        data.train, epochs=15, batch_size=64, generator=torch_generator(0))
    with torch.no_grad():
        acc = lambda m: accuracy(m(Xte), yte)
        base = acc(model)
        assert base > 0.93
        assert acc(E.quantize_weights(model, 8)) > base - 0.01
        assert acc(E.quantize_weights(model, 2)) < base - 0.2
        mag = E.apply_masks(copy.deepcopy(model), E.magnitude_masks(model, 0.8))
        rnd = E.apply_masks(copy.deepcopy(model), E.random_masks(
            model, 0.8, generator=torch_generator(1)))
        assert acc(mag) > acc(rnd) + 0.2


def _digits_train(model, epochs, lr=3e-3, batch_size=128):
    data = digits(seed=0)
    fit(model, F.cross_entropy, torch.optim.Adam(model.parameters(), lr=lr),
        data.train, epochs=epochs, batch_size=batch_size,
        generator=torch_generator(0))
    with torch.no_grad():
        return accuracy(model(data.test[0]), data.test[1])


@pytest.mark.slow
def test_claim_qat_beats_ptq_at_two_bits():
    model = mlp([64, 128, 10], generator=torch_generator(0))
    _digits_train(model, 15, batch_size=64)
    longer = copy.deepcopy(model)
    _digits_train(longer, 5, lr=1e-3, batch_size=64)
    data = digits(seed=0)
    with torch.no_grad():
        ptq = accuracy(E.quantize_weights(longer, 2, per_channel=True)(
            data.test[0]), data.test[1])
    qat = _digits_train(E.to_qat(model, 2), 5, lr=1e-3, batch_size=64)
    assert qat > ptq + 0.03, (qat, ptq)


@pytest.mark.slow
def test_claim_lottery_ticket_beats_random_reinit():
    make = lambda: mlp([64, 128, 128, 10], generator=torch_generator(0))
    m = make()
    _digits_train(m, 1)
    rewind = copy.deepcopy(m.state_dict())
    res = E.iterative_magnitude_pruning(
        rewind, make, lambda mm: _digits_train(mm, 11), rounds=4, rate=0.5)
    data = digits(seed=0)
    s, masks, ticket = res[-1]
    assert abs(s - 0.9375) < 1e-9
    with torch.no_grad():
        t_acc = accuracy(ticket(data.test[0]), data.test[1])
    fresh = E.apply_masks(mlp([64, 128, 128, 10], generator=torch_generator(100)),
                          masks)
    r_acc = _digits_train(fresh, 12)
    assert t_acc > r_acc + 0.03, (t_acc, r_acc)
