"""Tests of dlbook.geometry: group machinery, DeepSets, p4 group convolutions
and the EGNN layer, against independent oracles, and the chapter's claims at
a small size."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from torch.nn import functional as F

from dlbook import geometry as G
from dlbook.data import digits, rot90_images
from dlbook.nn import count_parameters, mlp
from dlbook.seed import torch_generator
from dlbook.train import accuracy, evaluate, fit

D = torch.float64


# --- groups and representations -------------------------------------------------

def test_cyclic_representations_are_homomorphisms():
    for kind in ("regular", "rotation"):
        for a, b in itertools.product(range(4), repeat=2):
            lhs = (G.cyclic_representation(a, kind=kind)
                   @ G.cyclic_representation(b, kind=kind))
            rhs = G.cyclic_representation((a + b) % 4, kind=kind)
            assert torch.allclose(lhs, rhs, atol=1e-12)
    R = G.cyclic_representation(1, kind="rotation")
    quarter = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=D)
    assert torch.allclose(R, quarter, atol=1e-12)
    # the regular representation is the shift of the p4 rotation axis
    v = torch.arange(4.0, dtype=D)
    assert torch.allclose(G.cyclic_representation(1) @ v, torch.roll(v, 1, 0))
    with pytest.raises(ValueError, match="kind"):
        G.cyclic_representation(1, kind="spin")


def test_permutation_matrices_act_by_indexing_and_compose_on_the_right():
    g = torch_generator(0)
    x = torch.randn(5, dtype=D, generator=g)
    a, b = torch.randperm(5, generator=g), torch.randperm(5, generator=g)
    Pa, Pb = G.permutation_matrix(a), G.permutation_matrix(b)
    assert torch.allclose(Pa @ x, x[a])
    assert torch.allclose(Pa @ Pb, G.permutation_matrix(b[a]))
    assert torch.allclose(Pa.T @ Pa, torch.eye(5, dtype=D))
    assert G.all_permutations(4).shape == (24, 4)
    assert len({tuple(p) for p in G.all_permutations(4).tolist()}) == 24
    with pytest.raises(ValueError, match="permutation"):
        G.permutation_matrix([0, 0, 1])


@pytest.mark.parametrize("det", [1, -1, None])
def test_random_orthogonal(det):
    Q = G.random_orthogonal(4, generator=torch_generator(3), det=det)
    assert torch.allclose(Q.T @ Q, torch.eye(4, dtype=D), atol=1e-12)
    if det is not None:
        assert abs(torch.det(Q).item() - det) < 1e-10


def test_random_orthogonal_is_haar_on_average():
    # E[Q] = 0 and E[Q_11^2] = 1/n for the Haar measure on O(n)
    g = torch_generator(1)
    Qs = torch.stack([G.random_orthogonal(3, generator=g) for _ in range(3000)])
    assert Qs.mean(0).abs().max() < 0.06
    assert abs((Qs[:, 0, 0] ** 2).mean().item() - 1 / 3) < 0.03


def _orbit_closed_sample(n=4, count=50, seed=0):
    X = torch.randn(count, n, dtype=D, generator=torch_generator(seed))
    perms = G.all_permutations(n)
    return X[:, perms].reshape(-1, n), perms


def test_symmetrization_is_the_orthogonal_projection_onto_invariants():
    """Theorem (symmetrization): on an invariant measure, S f is invariant,
    S is idempotent, and ||f - h||^2 = ||f - S f||^2 + ||S f - h||^2 for
    every invariant h."""
    X, perms = _orbit_closed_sample()
    f_net = mlp([4, 16, 1], "tanh", generator=torch_generator(0), dtype=D)
    f = lambda x: f_net(x)[:, 0]  # noqa: E731
    ts = [lambda x, p=p: x[:, p] for p in perms]
    Sf = G.symmetrize(f, ts)
    with torch.no_grad():
        assert G.invariance_error(Sf, X, ts) < 1e-12
        assert G.invariance_error(f, X, ts) > 1e-2
        SSf = G.symmetrize(Sf, ts)
        assert (SSf(X) - Sf(X)).abs().max() < 1e-12
        h = X.pow(2).sum(1).sin()        # an invariant function
        lhs = (f(X) - h).pow(2).mean()
        rhs = (f(X) - Sf(X)).pow(2).mean() + (Sf(X) - h).pow(2).mean()
        assert abs(lhs.item() - rhs.item()) < 1e-10
        # self-adjointness, <S f, g> = <f, S g>, on the orbit-closed sample
        g_fn = lambda x: torch.cos(x @ torch.arange(1.0, 5.0, dtype=D))  # noqa: E731
        Sg = G.symmetrize(g_fn, ts)
        assert abs((Sf(X) * g_fn(X)).mean() - (f(X) * Sg(X)).mean()) < 1e-12


def test_equivariant_symmetrization():
    X, perms = _orbit_closed_sample(n=3)
    net = mlp([3, 8, 3], "tanh", generator=torch_generator(1), dtype=D)
    ts = [lambda x, p=p: x[:, p] for p in perms]
    inv = [lambda y, p=p: y[:, torch.argsort(p)] for p in perms]
    Sf = G.symmetrize(net, ts, inverse_out=inv)
    with torch.no_grad():
        assert G.equivariance_error(Sf, X, ts, ts) < 1e-12
        assert G.equivariance_error(net, X, ts, ts) > 1e-2
    with pytest.raises(ValueError, match="inverse_out"):
        G.symmetrize(net, ts, inverse_out=inv[:2])


# --- sets --------------------------------------------------------------------------

def test_deepsets_is_exactly_invariant_and_takes_any_set_size():
    m = G.DeepSets(2, 3, latent=8, generator=torch_generator(0)).double()
    x = torch.randn(6, 7, 2, dtype=D, generator=torch_generator(1))
    perms = G.random_permutations(10, 7, generator=torch_generator(2))
    ts = [lambda x, p=p: x[:, p] for p in perms]
    with torch.no_grad():
        assert G.invariance_error(m, x, ts) < 1e-12
        assert m(x[:, :3]).shape == (6, 3)
        # sum pooling: the sum over a union of disjoint sets adds the latents
        z = m.phi(x).sum(1)
        assert torch.allclose(z, m.phi(x[:, :3]).sum(1) + m.phi(x[:, 3:]).sum(1))
    mlp_set = G.SetMLP(7, 2, 3, generator=torch_generator(0)).double()
    with torch.no_grad():
        assert G.invariance_error(mlp_set, x, ts) > 1e-3
    with pytest.raises(ValueError, match="sets of 7"):
        mlp_set(x[:, :3])
    with pytest.raises(ValueError, match="shape"):
        m(x[..., 0])


def test_set_task_targets_match_numpy():
    for target, fn in [("std", lambda v: v.std(1)),
                       ("range", lambda v: v.max(1) - v.min(1)),
                       ("sorted", lambda v: np.sort(v, 1))]:
        X, y = G.set_task(50, 5, target=target, seed=3, dtype=D)
        ref = fn(X[..., 0].numpy())
        assert np.allclose(y.numpy().reshape(ref.shape), ref, atol=1e-12)
    X, y = G.set_task(40, 5, target="median", seed=0, dtype=D)
    assert np.allclose(y[:, 0].numpy(), np.median(X[..., 0].numpy(), 1))
    with pytest.raises(ValueError, match="target"):
        G.set_task(3, 3, target="mode")


def test_power_sums_determine_the_set():
    x = torch.rand(20, 4, dtype=D, generator=torch_generator(0))
    p = G.power_sums(x)
    assert torch.allclose(p[:, 1], (x ** 2).sum(1))
    back = G.set_from_power_sums(p)
    assert torch.allclose(back, x.sort(1).values, atol=1e-6)
    # invariant: a permuted set has the same power sums
    assert torch.allclose(G.power_sums(x[:, [2, 0, 3, 1]]), p)


def test_spread_task_against_numpy():
    X, y = G.spread_task(30, 6, 3, seed=4, dtype=D)
    a = X.numpy()
    ref = np.sqrt(((a - a.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))
    assert np.allclose(y[:, 0].numpy(), ref) and (X.abs() <= 1).all()


@pytest.mark.slow
def test_claim_deepsets_beats_the_mlp_on_a_set_task():
    Xtr, ytr = G.spread_task(512, seed=0)
    Xte, yte = G.spread_task(1000, seed=1)
    errs = {}
    for name, m in [("ds", G.DeepSets(2, 1, latent=16, activation="silu",
                                      generator=torch_generator(0))),
                    ("mlp", G.SetMLP(16, 2, 1, generator=torch_generator(0)))]:
        fit(m, F.mse_loss, torch.optim.Adam(m.parameters(), lr=3e-3), (Xtr, ytr),
            epochs=60, batch_size=64, generator=torch_generator(0))
        with torch.no_grad():
            errs[name] = F.mse_loss(m(Xte), yte).item()
    assert errs["ds"] < 0.3 * errs["mlp"], errs
    assert errs["ds"] < 0.5 * yte.var().item(), errs  # beats the constant


# --- p4 group convolutions ----------------------------------------------------

def _rot_inv(z, r):
    """R^{-r} on integer offsets (row, col), R the counter-clockwise quarter
    turn of torch.rot90 in array coordinates: R^{-1}(a, b) = (b, -a)."""
    a, b = z
    for _ in range(r % 4):
        a, b = b, -a
    return a, b


def _oracle_correlation(x, w, p4_input):
    """Group cross-correlation on p4 from its definition, by explicit sums:
    out(t, r) = sum_{z, s} x(t + z, s) psi(R^{-r} z, s - r)."""
    N, C = x.shape[:2]
    H, W = x.shape[-2:]
    O, k = w.shape[0], w.shape[-1]
    c = k // 2
    out = torch.zeros(N, O, 4, H, W, dtype=x.dtype)
    for r, i, j in itertools.product(range(4), range(H), range(W)):
        acc = torch.zeros(N, O, dtype=x.dtype)
        for a, b in itertools.product(range(-c, c + 1), repeat=2):
            if not (0 <= i + a < H and 0 <= j + b < W):
                continue  # zero padding
            u, v = _rot_inv((a, b), r)
            if p4_input:
                for s in range(4):
                    acc = acc + x[:, :, s, i + a, j + b] @ w[:, :, (s - r) % 4,
                                                             u + c, v + c].T
            else:
                acc = acc + x[:, :, i + a, j + b] @ w[:, :, u + c, v + c].T
        out[:, :, r, i, j] = acc
    return out


@pytest.mark.parametrize("layer_cls,shape,p4_input", [
    ("P4ConvZ2", (2, 2, 5, 5), False), ("P4ConvP4", (2, 2, 4, 5, 5), True)])
def test_p4_layers_match_the_group_correlation_forward_and_backward(
        layer_cls, shape, p4_input):
    g = torch_generator(0 if not p4_input else 1)
    x = torch.randn(*shape, dtype=D, generator=g, requires_grad=True)
    layer = getattr(G, layer_cls)(2, 3, 3, padding=1, bias=False).double()
    ours = layer(x)
    ref = _oracle_correlation(x, layer.weight, p4_input=p4_input)
    assert torch.allclose(ours, ref, atol=1e-12)
    v = torch.randn_like(ours)
    g1 = torch.autograd.grad((ours * v).sum(), (x, layer.weight))
    g2 = torch.autograd.grad((ref * v).sum(), (x, layer.weight))
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-12)


def test_p4_layers_are_exactly_equivariant_and_p4cnn_invariant():
    g = torch_generator(2)
    x = torch.randn(3, 2, 8, 8, dtype=D, generator=g)
    lift = G.P4ConvZ2(2, 4, 3, padding=1, generator=g).double()
    group = G.P4ConvP4(4, 5, 5, padding=2, generator=g).double()
    even = G.P4ConvP4(4, 3, 2, padding=1, generator=g).double()  # even kernel
    net = G.P4CNN(4, in_channels=2, generator=g).double()
    plain = G.PlainCNN(8, in_channels=2, generator=g).double()
    with torch.no_grad():
        for k in range(1, 4):
            xr = torch.rot90(x, k, dims=(-2, -1))
            assert (lift(xr) - G.rotate_p4(lift(x), k)).abs().max() < 1e-12
            y = lift(x)
            err = group(G.rotate_p4(y, k)) - G.rotate_p4(group(y), k)
            assert err.abs().max() < 1e-12
            err = even(G.rotate_p4(y, k)) - G.rotate_p4(even(y), k)
            assert err.abs().max() < 1e-12
            assert (net(xr) - net(x)).abs().max() < 1e-12
            assert (plain(xr) - plain(x)).abs().max() > 1e-4  # no symmetry
        # the group action is an action: r^4 = e
        assert torch.equal(G.rotate_p4(G.rotate_p4(y, 2), 2), y)


def test_p4_layers_validate_input_and_count_parameters():
    with pytest.raises(ValueError, match="kernel_size"):
        G.P4ConvZ2(1, 2, 0)
    with pytest.raises(ValueError, match="shape"):
        G.P4ConvP4(2, 2, 3)(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        G.rotate_p4(torch.zeros(1, 2, 3, 4, 4))
    assert count_parameters(G.P4ConvP4(6, 5, 3)) == 5 * 6 * 4 * 9 + 5
    assert count_parameters(G.P4ConvZ2(6, 5, 3)) == 5 * 6 * 9 + 5
    # halving the channels of a group layer keeps its weight count
    assert (G.P4ConvP4(8, 8, 3).weight.numel()
            == torch.nn.Conv2d(16, 16, 3).weight.numel())


@pytest.mark.slow
def test_claim_p4cnn_keeps_its_accuracy_on_rotated_digits():
    data = digits(seed=0, images=True)
    (Xtr, ytr), (Xte, yte) = data.train, data.test
    accs = {}
    for name, m in [("plain", G.PlainCNN(16, generator=torch_generator(0))),
                    ("p4", G.P4CNN(8, generator=torch_generator(0)))]:
        fit(m, F.cross_entropy, torch.optim.Adam(m.parameters(), lr=1e-2),
            (Xtr, ytr), epochs=12, batch_size=128, generator=torch_generator(0))
        accs[name] = [evaluate(m, F.cross_entropy, (rot90_images(Xte, k), yte),
                               {"acc": accuracy})["acc"] for k in range(4)]
    assert max(accs["p4"]) - min(accs["p4"]) < 1e-6, accs     # invariant
    assert min(accs["p4"]) > 0.7, accs
    assert accs["plain"][0] > 0.8, accs
    assert max(accs["plain"][1:]) < 0.6, accs                  # collapses
    assert min(accs["p4"]) > max(accs["plain"][1:]) + 0.2, accs


@pytest.mark.slow
def test_claim_augmentation_needs_more_steps_than_the_p4cnn():
    """The chapter's budget point: with as many gradient steps as the p4-CNN,
    augmentation with the four turns is far behind; with four times the steps
    (the same number of epochs) it is nearly invariant and much better."""
    data = digits(seed=0, images=True)
    (Xtr, ytr), (Xte, yte) = data.train, data.test
    Xaug = torch.cat([rot90_images(Xtr, k) for k in range(4)])
    yaug = ytr.repeat(4)

    def poses(m):
        return [evaluate(m, F.cross_entropy, (rot90_images(Xte, k), yte),
                         {"acc": accuracy})["acc"] for k in range(4)]

    snapshots = []
    m = G.PlainCNN(16, generator=torch_generator(0))
    fit(m, F.cross_entropy, torch.optim.Adam(m.parameters(), lr=1e-2),
        (Xaug, yaug), epochs=16, batch_size=128, metrics={},
        callback=lambda model, rec: snapshots.append(poses(model)),
        generator=torch_generator(0))
    early, late = snapshots[3], snapshots[-1]      # 4 and 16 epochs
    assert max(early) < 0.7, snapshots
    assert min(late) > max(early) + 0.15, snapshots
    assert max(late) - min(late) < 0.12, late      # nearly invariant
    assert min(late) > 0.7, late


# --- EGNN ------------------------------------------------------------------------

def _egnn_layer_by_loops(layer, h, x):
    """The layer's equations evaluated edge by edge, as an oracle."""
    B, N, _ = x.shape
    h_new, x_new = h.clone(), x.clone()
    for b, i in itertools.product(range(B), range(N)):
        msum = 0
        shift = torch.zeros_like(x[b, i])
        for j in range(N):
            if j == i:
                continue
            d2 = ((x[b, i] - x[b, j]) ** 2).sum()[None]
            m = layer.phi_e(torch.cat([h[b, i], h[b, j], d2]))
            msum = msum + m
            shift = shift + (x[b, i] - x[b, j]) * layer.phi_x(m)
        x_new[b, i] = x[b, i] + shift / (N - 1)
        h_new[b, i] = h[b, i] + layer.phi_h(torch.cat([h[b, i], msum]))
    return h_new, x_new


def test_egnn_layer_matches_its_equations_edge_by_edge():
    g = torch_generator(0)
    layer = G.EGNNLayer(3, 8, generator=g).double()
    h = torch.randn(2, 4, 3, dtype=D, generator=g)
    x = torch.randn(2, 4, 3, dtype=D, generator=g)
    with torch.no_grad():
        h1, x1 = layer(h, x)
        h2, x2 = _egnn_layer_by_loops(layer, h, x)
    assert torch.allclose(h1, h2, atol=1e-12) and torch.allclose(x1, x2, atol=1e-12)


@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize("dim", [2, 3, 5])
def test_egnn_is_e_n_and_permutation_equivariant(det, dim):
    g = torch_generator(dim)
    net = G.EGNN(2, hidden=8, layers=2, generator=g).double()
    x = torch.randn(3, 6, dim, dtype=D, generator=g)
    h = torch.randn(3, 6, 2, dtype=D, generator=g)
    Q = G.random_orthogonal(dim, generator=g, det=det)
    t = torch.randn(dim, dtype=D, generator=g)
    perm = torch.randperm(6, generator=g)
    with torch.no_grad():
        E, V = net(x, h)
        E2, V2 = net(x[:, perm] @ Q.T + t, h[:, perm])
    assert (E2 - E).abs().max() < 1e-10                    # invariant energy
    assert (V2 - V[:, perm] @ Q.T).abs().max() < 1e-10     # equivariant vectors
    mlp_net = G.PointMLP(6, dim, hidden=16, generator=g).double()
    with torch.no_grad():
        assert (mlp_net(x @ Q.T)[0] - mlp_net(x)[0]).abs().max() > 1e-4


def test_potentials_and_forces_against_closed_forms():
    x = G.point_clouds(7, 5, min_distance=0.3, seed=2, dtype=D)
    d = np.stack([pdist(c) for c in x.numpy()])
    assert np.allclose(G.spring_energy(x, rest=1.2).numpy(),
                       0.5 * ((d - 1.2) ** 2).sum(1))
    assert np.allclose(G.lennard_jones_energy(x, sigma=0.5).numpy(),
                       (4 * ((0.5 / d) ** 12 - (0.5 / d) ** 6)).sum(1))
    # spring force: F_i = -sum_j (d_ij - r0) (x_i - x_j) / d_ij
    diff = x[:, :, None] - x[:, None]
    dist = diff.norm(dim=-1) + torch.eye(5, dtype=D)
    coef = (dist - 1.0) / dist * (1 - torch.eye(5, dtype=D))
    f_closed = -(coef[..., None] * diff).sum(2)
    assert torch.allclose(G.forces(G.spring_energy, x), f_closed, atol=1e-12)
    # Newton's third law: internal forces sum to zero
    f_lj = G.forces(G.lennard_jones_energy, x)
    assert (f_lj.sum(1).abs().max() / f_lj.abs().max()) < 1e-12
    assert (G.pairwise_distances(x) + 9 * torch.eye(5)).min() >= 0.3


@pytest.mark.slow
def test_claim_egnn_beats_the_mlp_on_forces_and_energy():
    N = 5
    Xtr, Xte = G.point_clouds(256, N, seed=0), G.point_clouds(500, N, seed=1)
    E_tr, F_tr = G.spring_energy(Xtr), G.forces(G.spring_energy, Xtr)
    E_te, F_te = G.spring_energy(Xte), G.forces(G.spring_energy, Xte)
    sE, sF = E_tr.std(), F_tr.pow(2).mean().sqrt()
    Y = torch.cat([E_tr[:, None] / sE, F_tr.flatten(1) / sF], 1)

    def loss(out, y):
        return ((out[0] - y[:, 0]).pow(2).mean()
                + (out[1].flatten(1) - y[:, 1:]).pow(2).mean())

    rel = {}
    for name, m in [("egnn", G.EGNN(hidden=16, layers=2,
                                    generator=torch_generator(0))),
                    ("mlp", G.PointMLP(N, hidden=64, generator=torch_generator(0)))]:
        fit(m, loss, torch.optim.Adam(m.parameters(), lr=3e-3), (Xtr, Y), epochs=25,
            batch_size=64, generator=torch_generator(0), metrics={})
        with torch.no_grad():
            E, V = m(Xte)
        rel[name] = ((V * sF - F_te).pow(2).mean() / F_te.pow(2).mean()).item()
        rel[name + "_E"] = ((E * sE - E_te).pow(2).mean() / E_te.var()).item()
    assert rel["egnn"] < 0.3 * rel["mlp"] and rel["egnn_E"] < 0.3 * rel["mlp_E"], rel
    assert rel["egnn"] < 0.1 and rel["egnn_E"] < 0.1, rel  # far below the trivial 1
