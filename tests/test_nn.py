"""Tests of dlbook.nn, the book's shared building blocks, against PyTorch."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlbook import nn as dnn


def big_linear(n_in=400, n_out=300, seed=0):
    return nn.Linear(n_in, n_out), torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("scheme,var", [
    ("lecun", lambda i, o: 1 / i), ("he", lambda i, o: 2 / i),
    ("glorot", lambda i, o: 2 / (i + o)), ("pytorch", lambda i, o: 1 / (3 * i))])
def test_weight_variance_of_each_scheme(scheme, var):
    layer, g = big_linear()
    dnn.init_layer_(layer, scheme, generator=g)
    emp = layer.weight.var().item()
    # 120,000 draws: the sample variance is within 2% of the truth w.h.p.
    assert abs(emp / var(400, 300) - 1) < 0.02, (scheme, emp)


def test_uniform_schemes_have_torchs_bounds():
    layer, g = big_linear()
    dnn.init_layer_(layer, "glorot", generator=g)
    ref = nn.Linear(400, 300)
    nn.init.xavier_uniform_(ref.weight)
    a = math.sqrt(6 / 700)
    assert layer.weight.abs().max() <= a and ref.weight.abs().max() <= a
    assert layer.weight.abs().max() > 0.99 * a
    dnn.init_layer_(layer, "pytorch", generator=g)
    default = nn.Linear(400, 300)  # torch's own default initialization
    for mine, theirs in [(layer.weight, default.weight), (layer.bias, default.bias)]:
        assert mine.abs().max() <= 1 / 20 and theirs.abs().max() <= 1 / 20
        assert abs(mine.std().item() / theirs.std().item() - 1) < 0.1


def test_he_matches_kaiming_normal_and_biases_follow_bias_std():
    layer, g = big_linear()
    dnn.init_layer_(layer, "he", generator=g, bias_std=0.1)
    ref = torch.empty(300, 400)
    nn.init.kaiming_normal_(ref, nonlinearity="relu")
    assert abs(layer.weight.std().item() / ref.std().item() - 1) < 0.02
    dnn.init_layer_(layer, "he", generator=g)
    assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (8, 3, 3, 3)])
def test_orthogonal_rows_or_columns(shape):
    w = torch.empty(shape)
    layer = nn.Module()
    layer.weight, layer.bias = nn.Parameter(w), None
    dnn.init_layer_(layer, "orthogonal", generator=torch.Generator().manual_seed(1),
                    gain=2.0)
    m = layer.weight.detach().reshape(shape[0], -1).double()
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    torch.testing.assert_close(gram, 4 * torch.eye(len(gram), dtype=torch.float64),
                               atol=1e-5, rtol=0)


def test_fans_agree_with_torch_for_linear_and_conv():
    for w in (torch.empty(7, 5), torch.empty(6, 3, 5, 5), torch.empty(4, 2, 9)):
        assert dnn.fans(w) == nn.init._calculate_fan_in_and_fan_out(w)
    with pytest.raises(ValueError, match="dims"):
        dnn.fans(torch.empty(5))


def test_mlp_structure_bias_activation_and_determinism():
    g = torch.Generator().manual_seed(0)
    m = dnn.mlp([3, 8, 8, 2], "tanh", bias=False, generator=g)
    kinds = [type(x) for x in m]
    assert kinds == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear]
    assert all(x.bias is None for x in m if isinstance(x, nn.Linear))
    a = dnn.mlp([3, 8, 2], generator=torch.Generator().manual_seed(5))
    b = dnn.mlp([3, 8, 2], generator=torch.Generator().manual_seed(5))
    x = torch.randn(4, 3)
    assert torch.equal(a(x), b(x))
    assert dnn.mlp([3, 8, 2], activation=nn.GELU)[1].__class__ is nn.GELU
    with pytest.raises(ValueError, match="activation"):
        dnn.mlp([3, 2, 1], activation="swishy")
    with pytest.raises(ValueError, match="sizes"):
        dnn.mlp([3])


def test_dropout_layers_of_an_mlp_draw_independent_masks():
    """The bug of the first printing: two layers seeded alike drew equal masks."""
    m = dnn.mlp([4, 32, 32, 1], dropout=0.5, generator=torch.Generator().manual_seed(0))
    d1, d2 = [x for x in m if isinstance(x, dnn.Dropout)]
    x = torch.ones(16, 32)
    assert not torch.equal(d1(x) != 0, d2(x) != 0)
    # same seed, same masks: the model is reproducible
    m2 = dnn.mlp([4, 32, 32, 1], dropout=0.5, generator=torch.Generator().manual_seed(0))
    e1, _ = [x for x in m2 if isinstance(x, dnn.Dropout)]
    assert torch.equal(e1(x), dnn.mlp([4, 32, 32, 1], dropout=0.5,
                                      generator=torch.Generator().manual_seed(0))[2](x))
    # dropout does not change the weights the same seed gives without it
    plain = dnn.mlp([4, 32, 32, 1], generator=torch.Generator().manual_seed(0))
    assert torch.equal(plain[0].weight, m2[0].weight)
    m2.eval()
    assert torch.equal(m2(torch.ones(2, 4)), plain(torch.ones(2, 4)))


def test_dropout_is_unbiased_and_identity_in_eval():
    x = torch.ones(200_000)
    y = dnn.dropout(x, 0.3, generator=torch.Generator().manual_seed(0))
    assert abs(y.mean().item() - 1) < 0.01
    assert abs((y == 0).float().mean().item() - 0.3) < 0.01
    assert torch.equal(dnn.dropout(x, 0.3, training=False), x)
    with pytest.raises(ValueError, match="p must"):
        dnn.Dropout(1.5)


def test_zero_output_starts_at_zero_and_init_rejects_unknown():
    m = dnn.mlp([3, 16, 2], init="zero-output", generator=torch.Generator().manual_seed(0))
    assert torch.count_nonzero(m(torch.randn(5, 3))) == 0
    assert torch.count_nonzero(m[0].weight) > 0
    with pytest.raises(ValueError, match="scheme"):
        dnn.init_(m, "xavier-ish")
    with pytest.raises(ValueError, match="no linear"):
        dnn.init_(nn.ReLU())


def test_init_reaches_conv_layers():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    dnn.init_(net, "he", generator=torch.Generator().manual_seed(0))
    assert torch.count_nonzero(net[0].bias) == 0
    assert abs(net[2].weight.var().item() / (2 / 72) - 1) < 0.25


def test_residual_and_parameter_count():
    branch = nn.Linear(5, 5)
    r = dnn.Residual(branch, alpha=0.5)
    x = torch.randn(3, 5)
    torch.testing.assert_close(r(x), x + 0.5 * branch(x))
    with pytest.raises(ValueError, match="shape"):
        dnn.Residual(nn.Linear(5, 4))(x)
    m = dnn.mlp([10, 20, 3])
    assert dnn.count_parameters(m) == 10 * 20 + 20 + 20 * 3 + 3
    m[0].weight.requires_grad_(False)
    assert dnn.count_parameters(m) == 20 + 20 * 3 + 3
    assert dnn.count_parameters(m, trainable=False) == 283
    tied = nn.Sequential(branch, branch)
    assert dnn.count_parameters(tied) == 30
