"""Tests of dlbook.architecture_theory: oracles (SVD, float64 autograd,
closed forms) and the chapter's claims rerun at small size."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import jvp

from dlbook.architecture_theory import (
    NS_MUON, Muon, WidthMLP, compose, coord_check, cubic_map, layer_scales,
    linear_atom, lr_sweep, modular_norm, newton_schulz, nonlinearity,
    param_groups, polar_factor, rms_norm, rms_operator_norm, spectral_scale)

torch.set_num_threads(1)
D64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- norms -------------------------------------------------------------------

def test_rms_operator_norm_is_the_largest_rms_gain():
    W = torch.randn(30, 50, generator=gen(), dtype=D64)
    norm = rms_operator_norm(W)
    x = torch.randn(2000, 50, generator=gen(1), dtype=D64)
    gains = rms_norm(x @ W.T) / rms_norm(x)
    assert gains.max() <= norm + 1e-12
    v = torch.linalg.svd(W).Vh[0]  # the top right singular vector attains it
    assert torch.isclose(rms_norm(W @ v) / rms_norm(v), norm, rtol=1e-10)


def test_rms_operator_norm_and_spectral_scale_agree():
    # a matrix with spectral norm sqrt(fan_out / fan_in) has RMS gain one
    W = torch.randn(40, 10, generator=gen(2), dtype=D64)
    W = W / torch.linalg.matrix_norm(W, ord=2) * spectral_scale(40, 10)
    assert torch.isclose(rms_operator_norm(W), torch.tensor(1.0, dtype=D64))
    with pytest.raises(ValueError, match="fans"):
        spectral_scale(0, 3)
    with pytest.raises(ValueError, match="matrix"):
        rms_operator_norm(torch.ones(3))


def test_modular_norm_of_two_linear_layers_by_hand():
    net = compose(linear_atom(mass=3.0), nonlinearity(torch.relu, 0.5),
                  linear_atom(mass=1.0))
    W1 = torch.randn(8, 4, generator=gen(3), dtype=D64)
    W2 = torch.randn(5, 8, generator=gen(4), dtype=D64)
    n1, n2 = rms_operator_norm(W1), rms_operator_norm(W2)
    # total mass 4; the inner weight is seen through sensitivity 0.5 * 1
    expected = max(4 / 1 * 0.5 * n1, 4 / 3 * n2)
    assert torch.isclose(modular_norm(net, [W1, W2]), expected)
    assert net.mass == 4.0 and net.sensitivity == 0.5
    with pytest.raises(ValueError, match="weights"):
        modular_norm(net, [W1])


def _unit_ball(W):
    return W / rms_operator_norm(W)


@pytest.mark.parametrize("masses", [(1.0, 1.0, 1.0), (0.2, 3.0, 1.0)])
def test_composite_is_well_normed(masses):
    """|| D_w f . dw ||_RMS <= || dw ||_M on the unit balls (the theorem)."""
    widths = [16, 64, 64, 8]
    mods = []
    for k, mass in enumerate(masses):
        mods.append(linear_atom(mass))
        if k < len(masses) - 1:
            mods.append(nonlinearity(torch.relu))
    net = compose(*reversed(mods))
    worst = 0.0
    for trial in range(20):
        g = gen(10 + trial)
        W = [_unit_ball(torch.randn(o, i, generator=g, dtype=D64))
             for i, o in zip(widths[:-1], widths[1:])]
        dW = [torch.randn_like(w) for w in W]
        x = torch.randn(5, widths[0], generator=g, dtype=D64)
        x = x / rms_norm(x)[:, None]  # inputs on the unit RMS sphere
        _, tangent = jvp(lambda *w: net.forward(x, w), tuple(W), tuple(dW))
        ratio = (rms_norm(tangent).max() / modular_norm(net, dW)).item()
        worst = max(worst, ratio)
    assert worst <= 1 + 1e-10


def test_linear_atom_bound_is_attained_by_an_aligned_update():
    x = torch.randn(1, 30, generator=gen(20), dtype=D64)
    x = x / rms_norm(x)
    u = torch.randn(12, generator=gen(21), dtype=D64)
    dW = torch.outer(u, x[0])  # rank one, aligned with the input
    atom = linear_atom()
    ratio = rms_norm(atom.forward(x, dW)) / modular_norm(atom, [dW])
    assert torch.isclose(ratio[0], torch.tensor(1.0, dtype=D64))


# -- parameterizations -------------------------------------------------------

def test_mup_equals_sp_at_base_width_and_scales_like_the_table():
    for role in ("input", "hidden", "output"):
        sp = layer_scales("sp", 32, 32, role, base_width=32, width=32)
        mup = layer_scales("mup", 32, 32, role, base_width=32, width=32)
        assert math.isclose(sp.std, mup.std) and math.isclose(sp.lr_scale,
                                                              mup.lr_scale)
    r = 8
    adam = {role: layer_scales("mup", 256, 256, role, base_width=32, width=256)
            for role in ("input", "hidden", "output")}
    assert math.isclose(adam["hidden"].lr_scale, 1 / r)
    assert math.isclose(adam["output"].std ** 2, 1 / (256 * r))
    sgd = {role: layer_scales("mup", 256, 256, role, base_width=32, width=256,
                              optimizer="sgd") for role in ("input", "output")}
    assert math.isclose(sgd["input"].lr_scale, r)
    assert math.isclose(sgd["output"].lr_scale, 1 / r)
    with pytest.raises(ValueError, match="kind"):
        layer_scales("xyz", 2, 2, "hidden", base_width=1, width=1)


def test_width_mlp_shapes_and_groups():
    model = WidthMLP(64, 128, 10, kind="mup", generator=gen())
    out, (h1, h2) = model(torch.zeros(3, 64), return_hidden=True)
    assert out.shape == (3, 10) and h1.shape == h2.shape == (3, 128)
    lrs = [g["lr"] for g in param_groups(model, 0.01)]
    assert lrs == pytest.approx([0.01, 0.0025, 0.0025])
    ntk = WidthMLP(64, 128, 10, kind="ntk", generator=gen())
    # NTK: unit-variance entries, multiplier 1/sqrt(fan_in)
    assert abs(ntk.layers[1].weight.std().item() - 1) < 0.05


def test_ntk_equals_sp_at_base_width_under_sgd():
    X = torch.randn(16, 64, generator=gen(30))
    y = torch.randint(10, (16,), generator=gen(31))
    outs = []
    for kind in ("sp", "ntk"):
        model = WidthMLP(64, 32, 10, kind=kind, optimizer="sgd", base_width=32,
                         generator=gen(32))
        opt = torch.optim.SGD(param_groups(model, 0.1))
        F.cross_entropy(model(X), y).backward()
        opt.step()
        outs.append(model(X).detach())
    assert torch.allclose(outs[0], outs[1], atol=1e-5)


def _data():
    from dlbook.data import digits
    return digits(seed=0).train


def _slope(widths, values):
    x = torch.log(torch.tensor(widths, dtype=D64))
    y = torch.log(values.to(D64))
    xc = x - x.mean()
    return ((xc * (y - y.mean())).sum() / (xc ** 2).sum()).item()


def test_coordinate_check_claim():
    """SP's updates grow with width under Adam, muP's stay flat."""
    X, y = _data()
    widths = [32, 128, 512]
    sp = coord_check("sp", widths, X[:256], y[:256], lr=0.01, steps=4, seeds=1)
    mup = coord_check("mup", widths, X[:256], y[:256], lr=0.01, steps=4, seeds=1)
    assert _slope(widths, sp["logits"]) > 0.4
    assert _slope(widths, sp["hidden"]) > 0.15
    assert abs(_slope(widths, mup["logits"])) < 0.15
    assert abs(_slope(widths, mup["hidden"])) < 0.1


@pytest.mark.slow
def test_sp_features_under_sgd_grow_at_large_width():
    """The spectral count: SP's hidden update under SGD has RMS-to-RMS norm of
    order lr * sqrt(n), so the feature change grows once the width is large,
    although it looks level up to width 1024."""
    X, y = _data()
    r = coord_check("sp", [1024, 4096], X[:256], y[:256], lr=0.2, steps=4,
                    seeds=1, optimizer="sgd")
    assert r["hidden"][1] > 2 * r["hidden"][0]
    mup = coord_check("mup", [1024, 4096], X[:256], y[:256], lr=0.2, steps=4,
                      seeds=1, optimizer="sgd")
    assert mup["hidden"][1] < 1.5 * mup["hidden"][0]


@pytest.mark.slow
def test_learning_rate_transfer_claim():
    X, y = _data()
    widths, lrs = [32, 512], [2.0 ** k for k in range(-10, -3)]
    best = {k: [lrs[j] for j in lr_sweep(k, widths, lrs, X, y, steps=80).argmin(1)]
            for k in ("sp", "mup")}
    assert best["sp"][1] <= best["sp"][0] / 4   # SP's optimum moves
    assert best["mup"][0] / 2 <= best["mup"][1] <= best["mup"][0] * 2


# -- steepest descent, Newton-Schulz and Muon ---------------------------------

@pytest.mark.parametrize("shape", [(20, 50), (50, 20), (30, 30)])
def test_newton_schulz_converges_to_the_polar_factor(shape):
    G = torch.randn(*shape, generator=gen(5), dtype=D64)
    assert torch.allclose(newton_schulz(G, 40), polar_factor(G), atol=1e-10)


def test_newton_schulz_on_a_rank_deficient_matrix():
    # zero singular values stay zero: the result is U V^T of the reduced SVD
    A = torch.randn(12, 3, generator=gen(6), dtype=D64)
    B = torch.randn(3, 9, generator=gen(7), dtype=D64)
    G = A @ B
    X = newton_schulz(G, 30)  # rounding-level values grow like 1.5^k
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    P = U[:, :3] @ Vh[:3]
    assert torch.allclose(X, P, atol=1e-8)
    assert torch.allclose(polar_factor(G, rtol=1e-10), P, atol=1e-10)
    assert torch.linalg.matrix_rank(polar_factor(G)) > 3  # noise directions kept


def test_cubic_map_interval():
    s = torch.linspace(1e-3, math.sqrt(3) - 1e-3, 500, dtype=D64)
    p = cubic_map(s)
    assert (p > 0).all() and (p <= 1 + 1e-15).all()
    assert (p[s < 1] > s[s < 1]).all()  # increasing toward one below one
    assert cubic_map(torch.tensor(math.sqrt(3) + 0.01)) < 0  # outside: sign flips
    for _ in range(60):
        s = cubic_map(s)
    assert torch.allclose(s, torch.ones_like(s), atol=1e-12)


def test_quintic_lands_near_one_but_does_not_converge():
    G = torch.randn(64, 128, generator=gen(8), dtype=D64)
    s5 = torch.linalg.svdvals(newton_schulz(G, 5, NS_MUON))
    assert s5.min() > 0.5 and s5.max() < 1.5
    s50 = torch.linalg.svdvals(newton_schulz(G, 50, NS_MUON))
    assert (s50 - 1).abs().max() > 0.1  # no convergence to one


def test_polar_factor_is_the_steepest_direction():
    G = torch.randn(15, 25, generator=gen(9), dtype=D64)
    best = -(G * polar_factor(G)).sum()
    nuclear = torch.linalg.matrix_norm(G, ord="nuc")
    assert torch.isclose(best, -nuclear)
    for k in range(50):
        D = torch.randn(15, 25, generator=gen(100 + k), dtype=D64)
        D = D / torch.linalg.matrix_norm(D, ord=2)
        assert (G * D).sum() >= best


def test_muon_step_matches_its_definition_and_rejects_vectors():
    W = torch.nn.Parameter(torch.randn(40, 10, generator=gen(11)))
    W0 = W.detach().clone()
    W.grad = torch.randn(40, 10, generator=gen(12))
    Muon([W], lr=0.1, momentum=0.0, nesterov=False, ns_steps=5).step()
    expected = W0 - 0.1 * 2.0 * newton_schulz(W.grad, 5, NS_MUON)
    assert torch.allclose(W.detach(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="matrix"):
        Muon([torch.nn.Parameter(torch.zeros(3))])


def test_muon_trains_least_squares():
    g = gen(13)
    X = torch.randn(200, 20, generator=g)
    W_star = torch.randn(5, 20, generator=g)
    Y = X @ W_star.T
    W = torch.nn.Parameter(torch.zeros(5, 20))
    opt = Muon([W], lr=0.05, momentum=0.9)
    first = None
    for t in range(200):
        loss = F.mse_loss(X @ W.T, Y)
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
        for group in opt.param_groups:  # linear decay: a fixed-norm step
            group["lr"] = 0.05 * (1 - (t + 1) / 200)
    assert loss.item() < 0.01 * first
