"""Tests for dlbook.approximation (chapter: approximation).

Oracles: numpy's piecewise-linear interpolation, the closed-form sawtooth,
kinks found by dense sampling and numerical second differences, brute-force
moduli of continuity, scipy's chi distribution, numpy least squares and
PyTorch's own Adam on separate models.
"""
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from dlbook import approximation as ap
from dlbook.nn import mlp


def kinks_by_sampling(model: nn.Module, a: float, b: float, n: int = 200_003,
                      rtol: float = 1e-9) -> int:
    """Count kinks of a 1-D net from second differences on a dense grid.

    A kink strictly between grid points makes two consecutive second
    differences non-zero (one if it sits on a grid point): count clusters.
    """
    x = torch.linspace(a, b, n, dtype=torch.float64)[:, None]
    with torch.no_grad():
        y = ap.as_float64(model)(x)[:, 0].numpy()
    d2 = np.abs(y[2:] - 2 * y[1:-1] + y[:-2])
    flag = d2 > rtol * (1 + np.abs(y).max())
    starts = flag & ~np.concatenate([[False], flag[:-1]])
    return int(starts.sum())


# ---------------------------------------------------------------- interpolant

def test_interpolant_hits_knots_and_matches_numpy_interp():
    g = np.random.default_rng(0)
    knots = torch.tensor(np.sort(g.uniform(-2, 3, 40)), dtype=torch.float64)
    values = torch.tensor(g.normal(size=40), dtype=torch.float64)
    net = ap.relu_interpolant(knots, values)
    assert net[0].out_features == 39 and net[0].weight.shape == (39, 1)
    with torch.no_grad():
        at_knots = net(knots[:, None])[:, 0]
        x = torch.linspace(float(knots[0]), float(knots[-1]), 5001,
                           dtype=torch.float64)
        dense = net(x[:, None])[:, 0].numpy()
    assert torch.allclose(at_knots, values, atol=1e-12)
    np.testing.assert_allclose(dense, np.interp(x, knots, values), atol=1e-11)


def test_interpolant_rejects_bad_knots():
    with pytest.raises(ValueError, match="increasing"):
        ap.relu_interpolant(torch.tensor([0.0, 0.0, 1.0]), torch.zeros(3))
    with pytest.raises(ValueError, match="knots and values"):
        ap.relu_interpolant(torch.tensor([0.0, 1.0]), torch.zeros(3))


def test_modulus_of_continuity_against_brute_force_and_closed_form():
    x = np.linspace(0, 1, 401)
    v = np.sin(7 * x) + np.abs(x - 0.3) ** 0.5
    diff = np.abs(v[:, None] - v[None, :])
    close = np.abs(x[:, None] - x[None, :]) <= 0.05 + 1e-12
    assert ap.modulus_of_continuity(v, x[1] - x[0], 0.05) == pytest.approx(
        diff[close].max(), rel=1e-12)
    # omega(delta) = sqrt(delta) for sqrt|x - c| once the window fits around c
    x = np.linspace(0, 1, 100_001)
    v = np.abs(x - 0.5) ** 0.5
    for delta in [0.01, 0.1]:
        assert ap.modulus_of_continuity(v, x[1] - x[0], delta) == pytest.approx(
            math.sqrt(delta), rel=1e-3)


@pytest.mark.parametrize("m", [5, 17, 64])
def test_interpolation_error_within_the_theorem_bounds(m):
    def smooth(x):
        return torch.sin(2 * math.pi * x)

    def rough(x):
        return (x - 1 / 3).abs().sqrt()
    knots = torch.linspace(0, 1, m + 1, dtype=torch.float64)
    h = 1 / m
    e_smooth = ap.sup_error(ap.relu_interpolant(knots, smooth(knots)), smooth, 0, 1)
    assert e_smooth <= h**2 / 8 * (2 * math.pi) ** 2 * (1 + 1e-9)
    e_rough = ap.sup_error(ap.relu_interpolant(knots, rough(knots)), rough, 0, 1)
    assert e_rough <= math.sqrt(h) * (1 + 1e-9)  # omega(h) = sqrt(h)


def test_measured_interpolation_rates():
    """The chapter's fitted slopes: -2 (smooth) and -1/2 (Hoelder-1/2)."""
    widths = [8, 16, 32, 64, 128]
    targets = {-2.0: lambda x: torch.sin(2 * math.pi * x),
               -0.5: lambda x: (x - 1 / 3).abs().sqrt()}
    for rate, f in targets.items():
        errs = []
        for m in widths:
            knots = torch.linspace(0, 1, m + 1, dtype=torch.float64)
            errs.append(ap.sup_error(ap.relu_interpolant(knots, f(knots)), f, 0, 1))
        slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
        assert abs(slope - rate) < 0.12, (rate, slope)


# ------------------------------------------------------------------ sawtooth

@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_sawtooth_net_matches_closed_form(k):
    x = torch.rand(2000, 1, dtype=torch.float64, generator=torch.Generator()
                   .manual_seed(k))
    x = torch.cat([x, torch.tensor([[0.0], [1.0], [0.5]], dtype=torch.float64)])
    with torch.no_grad():
        assert torch.allclose(ap.sawtooth_net(k)(x), ap.sawtooth(x, k), atol=1e-12)


@pytest.mark.parametrize("k", range(1, 11))
def test_sawtooth_has_two_to_the_k_pieces(k):
    net = ap.sawtooth_net(k)
    assert ap.count_pieces(net, 0.0, 1.0) == 2**k
    if k <= 9:  # independent count; finer k would need a finer grid
        assert kinks_by_sampling(net, 0.0, 1.0) + 1 == 2**k
    assert 2**k <= ap.max_pieces([2] * k) == 3**k


@pytest.mark.parametrize("seed", range(6))
def test_piece_count_of_random_nets_matches_sampling(seed):
    g = torch.Generator().manual_seed(seed)
    widths = [[6, 6], [8, 4, 4], [5, 5, 5]][seed % 3]
    net = mlp([1, *widths, 1], init="he", bias_std=0.1, generator=g, dtype=torch.float64)
    pieces = ap.count_pieces(net, -3.0, 3.0)
    assert pieces == kinks_by_sampling(net, -3.0, 3.0) + 1
    assert pieces <= ap.count_pieces(net, -3.0, 3.0, regions=True) \
        <= ap.max_pieces(widths)


def test_regions_match_activation_patterns_on_a_dense_line():
    g = torch.Generator().manual_seed(3)
    net = mlp([2, 8, 8, 1], init="he", bias_std=0.1, generator=g, dtype=torch.float64)
    p = torch.tensor([-1.0, 0.5], dtype=torch.float64)
    v = torch.tensor([2.0, -1.0], dtype=torch.float64)
    line = ap.restrict_to_line(net, p, v)
    t = torch.linspace(0, 1, 200_001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        assert torch.allclose(line(t), net(p + t * v), atol=1e-12)
    # an activation region is convex, so a line meets each at most once
    n_patterns = int(ap.activation_patterns(net, p + t * v).max()) + 1
    assert ap.count_pieces(line, 0.0, 1.0, regions=True) == n_patterns


def test_count_pieces_validates_input():
    with pytest.raises(ValueError, match="restrict_to_line"):
        ap.count_pieces(mlp([2, 3, 1]), 0.0, 1.0)
    with pytest.raises(TypeError, match="nn.Linear and nn.ReLU"):
        ap.count_pieces(nn.Sequential(nn.Linear(1, 2), nn.Tanh()), 0.0, 1.0)


@pytest.mark.parametrize("k,teeth", [(3, 0), (4, 3), (6, 20), (6, 32)])
def test_shallow_sawtooth_construction_and_lower_bound(k, teeth):
    net = ap.shallow_sawtooth_net(k, teeth)
    pieces = ap.count_pieces(net, 0.0, 1.0)
    assert net[0].out_features == (2**k if teeth == 2 ** (k - 1) else 2 * teeth + 2)
    err = ap.l1_error(net, lambda x: ap.sawtooth(x, k))
    assert err == pytest.approx(0.25 * (1 - teeth / 2 ** (k - 1)), abs=2e-4)
    assert err >= ap.sawtooth_l1_lower_bound(pieces, k) - 1e-6


def test_lower_bound_holds_for_random_nets():
    """The depth-separation lemma, against nets that are not built for it."""
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        net = mlp([1, 12, 1], generator=g, dtype=torch.float64)
        ap.fit_outer_layer(net, torch.linspace(0, 1, 4097, dtype=torch.float64)
                           [:, None], ap.sawtooth(torch.linspace(0, 1, 4097,
                                                  dtype=torch.float64), 4))
        err = ap.l1_error(net, lambda x: ap.sawtooth(x, 4))
        assert err >= ap.sawtooth_l1_lower_bound(
            ap.count_pieces(net, 0.0, 1.0), 4) - 1e-6


# -------------------------------------------------------------------- Barron

@pytest.mark.parametrize("d,a", [(1, 1.0), (5, 2.0), (40, 0.5)])
def test_gaussian_barron_norm_is_the_chi_mean(d, a):
    assert ap.gaussian_barron_norm(d, a) == pytest.approx(
        math.sqrt(a) * stats.chi(d).mean(), rel=1e-10)


def test_barron_sample_net_is_unbiased():
    """E f_n(x) = f(x): the Fourier-and-steps representation of the proof."""
    g = torch.Generator().manual_seed(0)
    d = 3
    X = ap.sample_ball(5, d, generator=g)
    net = ap.barron_sample_net(d, 200_000, a=2.0, generator=g)
    with torch.no_grad():
        fn = net(X)[:, 0]
    f = torch.exp(-X.pow(2).sum(1))
    # standard error <= 2 r C_f / sqrt(n) ~ 0.02; allow four of them
    assert torch.allclose(fn, f, atol=4 * 2 * ap.gaussian_barron_norm(d, 2.0)
                          / math.sqrt(200_000))


def test_barron_rate_and_bound_small():
    """Fitted slope of the L2(mu) error of the proof's network: -1/2 +- 0.15."""
    g = torch.Generator().manual_seed(1)
    for d in [2, 16]:
        X = ap.sample_ball(3000, d, generator=g)
        f = torch.exp(-X.pow(2).sum(1) / 2)
        bound = 2 * ap.gaussian_barron_norm(d, 1.0)
        widths, errs = [16, 64, 256, 1024], []
        for n in widths:
            e = []
            for _ in range(3):
                with torch.no_grad():
                    e.append((ap.barron_sample_net(d, n, generator=g)(X)[:, 0]
                              - f).pow(2).mean().sqrt().item())
            errs.append(float(np.mean(e)))
            assert errs[-1] <= bound / math.sqrt(n)
        slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
        assert abs(slope + 0.5) < 0.15, (d, slope)


def test_fit_outer_layer_matches_numpy_lstsq():
    g = torch.Generator().manual_seed(2)
    net = mlp([3, 20, 1], generator=g, dtype=torch.float64)
    X = torch.randn(300, 3, generator=g, dtype=torch.float64)
    y = torch.sin(X).sum(1)
    ap.fit_outer_layer(net, X, y, ridge=0.0)
    H = torch.relu(net[0](X)).detach().numpy()
    H1 = np.hstack([H, np.ones((300, 1))])
    coef = np.linalg.lstsq(H1, y.numpy(), rcond=None)[0]
    with torch.no_grad():
        np.testing.assert_allclose(net(X)[:, 0].numpy(), H1 @ coef, atol=1e-8)


# ----------------------------------------------------------------- training

def test_ensemble_training_equals_separate_adam_runs():
    x = torch.linspace(0, 1, 64)[:, None]
    y = torch.sin(6 * x)
    nets = [mlp([1, 5, 5, 1], generator=torch.Generator().manual_seed(s))
            for s in range(3)]
    refs = [mlp([1, 5, 5, 1], generator=torch.Generator().manual_seed(s))
            for s in range(3)]
    losses = ap.train_mse(nets, x, y, steps=40, lr=1e-2)
    for s, ref in enumerate(refs):
        opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
        for _ in range(40):
            opt.zero_grad()
            loss = nn.functional.mse_loss(ref(x), y)
            loss.backward()
            opt.step()
        assert losses[-1, s].item() == pytest.approx(loss.item(), rel=1e-4)
        for p, q in zip(nets[s].parameters(), ref.parameters()):
            assert torch.allclose(p, q, atol=1e-5)


@pytest.mark.slow
def test_deep_sawtooth_is_representable_but_not_learned():
    """Width 2, depth k: hand-set weights are exact; Adam from random init
    ends near the constant predictor (MSE 1/12) in every seed."""
    k = 5
    x = torch.linspace(0, 1, 256, dtype=torch.float64)[:, None]
    y = ap.sawtooth(x, k)
    with torch.no_grad():
        assert (ap.sawtooth_net(k)(x) - y).pow(2).mean() < 1e-20
    nets = [mlp([1, *[2] * k, 1], init="he", bias_std=0.1, generator=torch.Generator()
                   .manual_seed(s)) for s in range(6)]
    losses = ap.train_mse(nets, x.float(), y.float(), steps=800, lr=3e-3)
    assert torch.all(losses[-1] > 0.5 / 12)
    assert all(ap.count_pieces(n, 0.0, 1.0) < 2**k // 2 for n in nets)


def test_random_nets_have_about_as_many_regions_as_neurons():
    """Hanin and Rolnick: along a line, regions grow like the neuron count,
    not like the worst-case product bound."""
    g = torch.Generator().manual_seed(0)
    for depth in [2, 4]:
        counts = []
        for _ in range(6):
            net = mlp([2, *[16] * depth, 1], init="he", bias_std=0.1, generator=g)
            v = torch.randn(2, generator=g, dtype=torch.float64)
            v = v / v.norm()
            counts.append(ap.count_pieces(ap.restrict_to_line(net, -v, 2 * v),
                                          0.0, 1.0, regions=True))
        n_neurons = 16 * depth
        assert 0.3 * n_neurons < np.mean(counts) < 2.0 * n_neurons
        assert max(counts) < 2 * n_neurons < ap.max_pieces([16] * depth) / 4


# --- d dimensions: ridge networks, arrangements, memorization -----------------

def test_ridge_cosine_net_meets_the_d_dimensional_bound():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(4, 3, generator=g, dtype=torch.float64)
    b = torch.rand(4, generator=g, dtype=torch.float64)
    a = torch.randn(4, generator=g, dtype=torch.float64)
    X = ap.sample_ball(5000, 3, generator=g)
    f = (a * torch.cos(X @ W.T + b)).sum(1)
    errs = []
    for m in [8, 32]:
        net = ap.ridge_cosine_net(W, b, a, 1.0, m)
        assert net[0].out_features == 4 * m
        with torch.no_grad():
            errs.append((net(X)[:, 0] - f).abs().max().item())
        assert errs[-1] <= (a.abs() * W.norm(dim=1) ** 2).sum().item() / (2 * m**2)
    assert 12 < errs[0] / errs[1] < 20  # rate m^-2: a factor 16 per factor 4
    with pytest.raises(ValueError, match="knots"):
        ap.ridge_cosine_net(W, b, a, 1.0, 0)


@pytest.mark.parametrize("d,n", [(1, 5), (2, 3), (2, 7), (3, 5), (4, 4)])
def test_arrangement_regions_match_linear_programming(d, n):
    g = torch.Generator().manual_seed(10 * d + n)
    layer = nn.Linear(d, n, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.normal_(generator=g)
        layer.bias.normal_(generator=g)
    assert ap.count_arrangement_regions(layer) == ap.arrangement_regions(n, d)


def test_arrangement_count_against_dense_sampling_and_degenerate_case():
    # every pattern seen on a large dense grid is a region found by the LPs
    g = torch.Generator().manual_seed(1)
    layer = nn.Linear(2, 5, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.normal_(generator=g)
        layer.bias.normal_(generator=g)
    u = torch.linspace(-60, 60, 1201, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(u, u, indexing="xy"), -1).reshape(-1, 2)
    seen = ap.activation_patterns(nn.Sequential(layer, nn.ReLU()), grid).max() + 1
    exact = ap.count_arrangement_regions(layer)
    assert exact == 16  # 1 + 5 + 10
    assert exact - 2 <= seen <= exact  # a grid can only miss (far or thin) regions
    # parallel hyperplanes are not in general position: fewer regions
    par = nn.Linear(2, 3, dtype=torch.float64)
    with torch.no_grad():
        par.weight.copy_(torch.tensor([[1.0, 0.0]] * 3))
        par.bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
    assert ap.count_arrangement_regions(par) == 4 < ap.arrangement_regions(3, 2)


def test_memorizing_net_interpolates_random_labels():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(300, 7, generator=g, dtype=torch.float64)
    y = torch.randn(300, generator=g, dtype=torch.float64)
    net = ap.memorizing_net(X, y, generator=g)
    assert net[0].out_features == 299
    with torch.no_grad():
        assert (net(X)[:, 0] - y).abs().max() < 1e-7
    # all hidden units share one direction: 2n + d - 1 distinct numbers
    assert torch.allclose(net[0].weight, net[0].weight[:1].expand(299, -1))
    with pytest.raises(ValueError, match="same projection"):
        ap.memorizing_net(torch.zeros(3, 2, dtype=torch.float64),
                          torch.zeros(3, dtype=torch.float64))


def test_graded_knots_exact_sup_error_against_dense_local_grids():
    """The exercise's exact per-interval maximum equals a fine search inside
    every interval, which a uniform global grid does not resolve."""
    m, q = 64, 2
    knots = (torch.arange(m + 1, dtype=torch.float64) / m) ** q
    net = ap.relu_interpolant(knots, knots.sqrt())
    s = (knots[1:].sqrt() - knots[:-1].sqrt()) / (knots[1:] - knots[:-1])
    x_star = (1 / (4 * s**2)).clamp(knots[:-1], knots[1:])
    with torch.no_grad():
        exact = (x_star.sqrt() - net(x_star[:, None])[:, 0]).abs().max().item()
        t = torch.linspace(0, 1, 2001, dtype=torch.float64)
        local = knots[:-1, None] + t * (knots[1:] - knots[:-1])[:, None]
        dense = (local.sqrt() - net(local.reshape(-1, 1)).reshape(local.shape)
                 ).abs().max().item()
    assert exact >= dense * (1 - 1e-12)
    assert math.isclose(exact, dense, rel_tol=1e-5)


def test_approximation_chapter_guards_its_claims():
    text = (Path(__file__).parents[1] / "book" / "foundations"
            / "approximation.md").read_text()
    cells = re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, flags=re.S)
    hidden = [c for c in cells if re.search(r"tags:.*remove-cell", c)]
    asserts = sum(len(re.findall(r"^\s*assert ", c, flags=re.M)) for c in hidden)
    assert asserts >= 25


def test_error_helpers_leave_the_model_unchanged():
    net = mlp([1, 4, 1], generator=torch.Generator().manual_seed(0))
    ap.sup_error(net, torch.sin, 0.0, 1.0)
    ap.l1_error(net, torch.sin)
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_neuron_gradient_norms_match_autograd():
    """The carried Jacobians equal torch.autograd's input gradients, neuron by
    neuron, including neurons that are switched off."""
    g = torch.Generator().manual_seed(5)
    net = mlp([3, 6, 6, 6, 1], init="he", bias_std=0.5, generator=g,
              dtype=torch.float64)
    X = torch.randn(7, 3, generator=g, dtype=torch.float64)
    norms = ap.neuron_gradient_norms(net, X)
    assert norms.shape == (7, 3, 6)
    lins = [m for m in net if isinstance(m, nn.Linear)]
    for n in range(len(X)):
        for layer in range(3):
            def pre(x, layer=layer):
                h = x
                for i, lin in enumerate(lins[:layer + 1]):
                    h = lin(h if i == 0 else torch.relu(h))
                return h
            J = torch.autograd.functional.jacobian(pre, X[n])
            torch.testing.assert_close(norms[n, layer], J.norm(dim=1))
    with pytest.raises(ValueError, match="same width"):
        ap.neuron_gradient_norms(mlp([2, 3, 4, 1]), X[:, :2])


def test_he_first_layer_gradient_norm_is_sqrt_pi_over_2():
    """Closed form behind the chapter's C_grad: |w| for w ~ N(0, I_2)."""
    g = torch.Generator().manual_seed(6)
    means = [ap.neuron_gradient_norms(mlp([2, 64, 1], init="he", generator=g),
                                      torch.zeros(1, 2)).mean().item()
             for _ in range(50)]
    assert abs(np.mean(means) - math.sqrt(math.pi / 2)) < 0.03
