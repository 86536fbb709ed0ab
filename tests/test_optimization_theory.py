"""Tests for dlbook.optimization_theory (chapter optimization-theory)."""
import itertools
import math

import pytest
import torch
from torch import nn

from dlbook import optimization_theory as ot
from dlbook.data import digits
from dlbook.nn import mlp

F64 = torch.float64


def _small_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    model = mlp([3, 4, 2], activation="tanh", generator=g, dtype=F64)
    X = torch.randn(7, 3, generator=g, dtype=F64)
    y = torch.randn(7, 2, generator=g, dtype=F64)
    return model, X, y


def _full_hessian(model, X, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = ot.flat_params(model)

    def f(t):
        return ot.loss_at(model, t, nn.functional.mse_loss, (X, y))

    assert len(names) == len(shapes)
    return torch.autograd.functional.hessian(f, theta)


def test_hvp_matches_autograd_hessian():
    model, X, y = _small_problem()
    H = _full_hessian(model, X, y)
    closure, params = ot.training_loss_closure(model, nn.functional.mse_loss, X, y)
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(1), dtype=F64)
    assert torch.allclose(ot.hvp(closure, params, v), H @ v, atol=1e-10)


def test_sharpness_matches_top_eigenvalue_of_autograd_hessian():
    model, X, y = _small_problem()
    H = _full_hessian(model, X, y)
    ev = torch.linalg.eigvalsh(H)
    top = ev[ev.abs().argmax()]
    closure, params = ot.training_loss_closure(model, nn.functional.mse_loss, X, y)
    lam, v = ot.sharpness(closure, params, 500, return_vector=True,
                          generator=torch.Generator().manual_seed(0))
    assert lam == pytest.approx(float(top), rel=1e-5)
    assert torch.allclose(H @ v, lam * v, atol=1e-4)


def test_sharpness_rejects_bad_input():
    model, X, y = _small_problem()
    closure, params = ot.training_loss_closure(model, nn.functional.mse_loss, X, y)
    with pytest.raises(ValueError, match="iters"):
        ot.sharpness(closure, params, 0)
    with pytest.raises(ValueError, match="shape"):
        ot.hvp(closure, params, torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="requires_grad"):
        ot.sharpness(closure, [torch.zeros(2)], 3)


def test_second_moment_operator_matches_enumeration_of_batches():
    g = torch.Generator().manual_seed(0)
    n, d, B, lr = 5, 3, 2, 0.3
    X = torch.randn(n, d, generator=g, dtype=F64)
    T = ot.second_moment_operator(X, lr, B)
    eye = torch.eye(d, dtype=F64)
    mats = []
    for S in itertools.combinations(range(n), B):
        M = eye - lr * X[list(S)].T @ X[list(S)] / B
        mats.append(torch.kron(M, M))
    assert torch.allclose(T, torch.stack(mats).mean(0), atol=1e-12)


def test_full_batch_stability_limit_is_two_over_lambda_max():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(12, 4, generator=g, dtype=F64)
    lam = float(torch.linalg.eigvalsh(X.T @ X / 12)[-1])
    assert ot.max_stable_lr(X, 12) == pytest.approx(2 / lam, rel=1e-4)


def test_one_dimensional_stability_condition_closed_form():
    # d = 1: stable iff (1 - lr a)^2 + lr^2 c s^2 < 1 (Wu, Ma and E 2018)
    g = torch.Generator().manual_seed(2)
    n, B = 10, 3
    X = torch.randn(n, 1, generator=g, dtype=F64)
    h = X[:, 0] ** 2
    a, s2 = float(h.mean()), float(h.var(unbiased=False))
    c = (n - B) / (B * (n - 1))
    lr_star = 2 * a / (a ** 2 + c * s2)  # root of the quadratic in lr
    assert ot.max_stable_lr(X, B) == pytest.approx(lr_star, rel=1e-4)


@pytest.mark.slow
def test_measured_stable_lr_tracks_theory_and_grows_with_batch():
    g = torch.Generator().manual_seed(0)
    n, d = 32, 6
    s = torch.exp(0.6 * torch.randn(n, 1, generator=g, dtype=F64))
    X = s * torch.randn(n, d, generator=g, dtype=F64) / d ** 0.5
    theory, measured = [], []
    for B in (1, 4, 32):
        theory.append(ot.max_stable_lr(X, B))
        measured.append(ot.empirical_max_stable_lr(X, B, steps=200, runs=300,
                                                   seed=1, rounds=8))
    for t, m in zip(theory, measured):
        assert 0.9 < m / t < 1.4
    assert theory[0] < theory[1] < theory[2]


def _hardt_data(n=200):
    d = digits(seed=0)

    def feats(X):
        Z = torch.cat([X, torch.ones(len(X), 1)], 1).to(F64)
        return Z / Z.norm(dim=1, keepdim=True)

    X = feats(d.train[0][:n])
    y = (d.train[1][:n] % 2 == 0).to(F64) * 2 - 1
    X2, y2 = X.clone(), y.clone()
    X2[0], y2[0] = feats(d.test[0][:1])[0], -y[0]
    return X, y, X2, y2


def test_hardt_bound_holds_and_identical_data_give_zero_gap():
    X, y, X2, y2 = _hardt_data()
    lr, T, n = 0.5, 400, len(y)
    g = torch.Generator().manual_seed(0)
    _, _, gaps = ot.logistic_sgd_pair(X, y, X2, y2, lr=lr, steps=T, runs=300,
                                      generator=g)
    bound = 2 * 1.0 * lr * torch.arange(T + 1, dtype=F64) / n  # L = 1
    assert torch.all(gaps.mean(0) <= bound + 1e-12)
    assert gaps.mean(0)[-1] > 0.05 * bound[-1]  # not trivially zero
    _, _, same = ot.logistic_sgd_pair(X, y, X, y, lr=lr, steps=50, runs=5,
                                      generator=g)
    assert float(same.abs().max()) < 1e-12


def _ls(n=40, P=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, P, generator=g, dtype=F64) * torch.linspace(
        0.05, 1, P, dtype=F64)
    return A, torch.randn(n, generator=g, dtype=F64)


def test_gd_rates_hold_on_problems_with_known_constants():
    A, b = _ls()
    ls = ot.LeastSquares(A, b)
    x0 = torch.zeros(A.shape[1], dtype=F64)
    eta, K = 1 / ls.L, 300
    k = torch.arange(K + 1, dtype=F64)
    gap = ls.f(ot.gradient_descent(ls.grad, x0, eta, K)) - ls.f_star
    assert torch.all(gap <= (1 - eta * ls.mu) ** k * gap[0] + 1e-12)  # PL
    r2 = ((x0 - ls.nearest_minimizer(x0)) ** 2).sum()
    assert torch.all(gap[1:] <= r2 / (2 * eta * k[1:]))  # convex
    cr = ot.CauchyRegression(A, 3 * b)
    xs = ot.gradient_descent(cr.grad, x0, 1 / cr.L, K)
    best = torch.cummin((cr.grad(xs) ** 2).sum(1), 0).values
    assert torch.all(best[:-1] <= 2 * cr.f(x0) * cr.L / k[1:])  # non-convex


def test_least_squares_constants_against_numpy_style_oracles():
    A, b = _ls()
    ls = ot.LeastSquares(A, b)
    s = torch.linalg.svdvals(A) ** 2 / len(b)
    assert ls.L == pytest.approx(float(s.max()))
    assert ls.mu == pytest.approx(float(s.min()))  # rank n < P: no zero in s
    x = torch.randn(A.shape[1], dtype=F64)
    xt = x.clone().requires_grad_(True)
    ls.f(xt).backward()
    assert torch.allclose(xt.grad, ls.grad(x))
    cr = ot.CauchyRegression(A, b)
    xt.grad = None
    cr.f(xt).backward()
    assert torch.allclose(xt.grad, cr.grad(x))


def test_sgd_floor_and_decaying_steps_rate():
    g = torch.Generator().manual_seed(3)
    A = torch.randn(80, 20, generator=g, dtype=F64) * torch.linspace(
        0.3, 1, 20, dtype=F64)
    b = torch.randn(80, generator=g, dtype=F64)
    ls = ot.LeastSquares(A, b)
    x0 = torch.zeros(20, dtype=F64)
    sigma, T, R = 1.0, 1500, 200
    L, mu = ls.L, ls.mu
    const = torch.full((T,), 1 / L, dtype=F64)
    xs = ot.noisy_gradient_descent(ls.grad, x0, const, sigma, R, generator=g)
    tail = float((ls.f(xs[-300:]) - ls.f_star).mean())
    lam = torch.linalg.eigvalsh(A.T @ A / 80)
    exact = float((1 / L) * sigma ** 2 / (2 * 20) * (1 / (2 - lam / L)).sum())
    assert tail == pytest.approx(exact, rel=0.15)
    assert tail <= (1 / L) * L * sigma ** 2 / (2 * mu)
    k0 = 2 * L / mu
    dec = 2 / (mu * (torch.arange(T, dtype=F64) + k0))
    xs = ot.noisy_gradient_descent(ls.grad, x0, dec, sigma, R, generator=g)
    gap = (ls.f(xs) - ls.f_star).mean(1)
    nu = max(k0 * float(ls.f(x0) - ls.f_star), 2 * L * sigma ** 2 / mu ** 2)
    assert torch.all(gap <= nu / (torch.arange(T + 1, dtype=F64) + k0))
    assert float(gap[-1]) < tail  # decaying steps go below the floor


def test_tangent_kernel_matches_jacobian_and_bounds_pl_ratio():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(6, 3, generator=g, dtype=F64)
    y = torch.randn(6, 1, generator=g, dtype=F64)
    model = ot.TwoLayerTanhNTK(3, 8, generator=g)
    theta = ot.flat_params(model)
    J = torch.autograd.functional.jacobian(
        lambda t: ot.loss_at(model, t, lambda o, _: o[:, 0], (X, y)), theta)
    K = ot.tangent_kernel(model, X)
    assert torch.allclose(K, J @ J.T, atol=1e-10)
    loss = 0.5 * ((model(X) - y) ** 2).mean()
    grads = torch.autograd.grad(loss, list(model.parameters()))
    gn = sum((gr ** 2).sum() for gr in grads)
    mu = ot.pl_ratio(gn, loss.detach())
    assert float(mu) >= float(torch.linalg.eigvalsh(K)[0]) / 6 - 1e-12
    with pytest.raises(ValueError, match="loss_star"):
        ot.pl_ratio(gn, loss.detach(), loss_star=10.0)


def test_tangent_kernel_moves_less_for_wider_nets():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(20, 8, generator=g, dtype=F64)
    y = torch.sin(X[:, :1])
    changes = []
    for m in (20, 2000):
        model = ot.TwoLayerTanhNTK(8, m, generator=torch.Generator().manual_seed(1))
        K0 = ot.tangent_kernel(model, X)
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        for _ in range(100):
            opt.zero_grad()
            (0.5 * ((model(X) - y) ** 2).mean()).backward()
            opt.step()
        changes.append(float((ot.tangent_kernel(model, X) - K0).norm() / K0.norm()))
    assert changes[1] < 0.2 * changes[0]


def test_paths_unflatten_bezier_and_barrier():
    model, X, y = _small_problem()
    theta = ot.flat_params(model)
    d = ot.unflatten(model, theta)
    for (name, p) in model.named_parameters():
        assert torch.equal(d[name], p.detach())
    with pytest.raises(ValueError, match="shape"):
        ot.unflatten(model, theta[:-1])
    a, c, b = torch.zeros(3), torch.ones(3), 2 * torch.ones(3)
    assert torch.allclose(ot.bezier(a, c, b, 0.0), a)
    assert torch.allclose(ot.bezier(a, c, b, 1.0), b)
    assert ot.path_barrier(torch.tensor([1.0, 3.0, 2.0])) == pytest.approx(1.5)
    assert ot.path_barrier(torch.tensor([1.0, 1.5, 2.0])) == pytest.approx(0.0)
    lp = ot.linear_path_losses(model, theta, theta, torch.linspace(0, 1, 3),
                               nn.functional.mse_loss, (X, y))
    assert torch.allclose(lp, lp[0].expand(3))


@pytest.mark.slow
def test_bezier_curve_removes_the_linear_barrier():
    from dlbook.train import fit
    d = digits(seed=0)
    ce = nn.functional.cross_entropy
    thetas = []
    for seed in (0, 1):
        m = mlp([64, 16, 10], generator=torch.Generator().manual_seed(seed))
        fit(m, ce, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9), d.train,
            epochs=15, batch_size=64, generator=torch.Generator().manual_seed(seed))
        thetas.append(ot.flat_params(m))
    t = torch.linspace(0, 1, 11)
    lin = ot.path_barrier(ot.linear_path_losses(m, *thetas, t, ce, d.train))
    c = ot.fit_bezier(m, *thetas, ce, d.train, steps=200,
                      generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        bz = torch.stack([ot.loss_at(m, ot.bezier(thetas[0], c, thetas[1], s), ce,
                                     d.train) for s in t])
    assert lin > 0.05
    assert ot.path_barrier(bz) < 0.2 * lin


@pytest.mark.slow
def test_edge_of_stability_sharpness_settles_near_two_over_lr():
    d = digits(seed=0)
    X = d.train[0][:200]
    Y = nn.functional.one_hot(d.train[1][:200], 10).float()

    def mse(o, t):
        return 0.5 * ((o - t) ** 2).sum(1).mean()

    lr = 0.2
    m = mlp([64, 64, 64, 10], activation="tanh",
            generator=torch.Generator().manual_seed(0))
    h = ot.train_tracking_sharpness(m, mse, (X, Y), lr=lr, steps=600, every=50,
                                    generator=torch.Generator().manual_seed(1))
    s = [r["sharpness"] for r in h.epochs if not math.isnan(r["sharpness"])]
    losses = [r["train_loss"] for r in h.epochs]
    assert s[0] < 0.8 * (2 / lr)  # starts below the threshold
    late = s[len(s) // 2:]
    assert all(0.8 * (2 / lr) < v < 1.3 * (2 / lr) for v in late)
    assert any(b > a for a, b in zip(losses, losses[1:]))  # non-monotone


def test_train_tracking_sharpness_rejects_bad_input():
    model, X, y = _small_problem()
    with pytest.raises(ValueError, match="lr"):
        ot.train_tracking_sharpness(model, nn.functional.mse_loss, (X, y),
                                    lr=-1.0, steps=3)


def test_random_batches_are_uniform_subsets_without_replacement():
    idx = ot.random_batches(10, 3, 2000, 5, generator=torch.Generator().manual_seed(0))
    assert idx.shape == (2000, 5, 3)
    flat = idx.reshape(-1, 3)
    assert all(len(set(row.tolist())) == 3 for row in flat[:500])
    freq = torch.bincount(flat.reshape(-1), minlength=10).double() / len(flat)
    assert torch.allclose(freq, torch.full((10,), 0.3, dtype=F64), atol=0.02)
    with pytest.raises(ValueError, match="batch_size"):
        ot.random_batches(10, 11, 1, 1)


def test_mean_square_rate_is_one_at_the_threshold():
    g = torch.Generator().manual_seed(4)
    X = torch.randn(9, 3, generator=g, dtype=F64)
    lr = ot.max_stable_lr(X, 2)
    assert ot.mean_square_rate(X, 0.99 * lr, 2) < 1
    assert ot.mean_square_rate(X, 1.01 * lr, 2) > 1


def test_sharpness_warm_start_and_bad_v0():
    model, X, y = _small_problem()
    closure, params = ot.training_loss_closure(model, nn.functional.mse_loss, X, y)
    lam, v = ot.sharpness(closure, params, 300, return_vector=True,
                          generator=torch.Generator().manual_seed(0))
    # warm-started from the converged vector, one iteration already agrees
    lam1, v1 = ot.sharpness(closure, params, 1, v0=v, return_vector=True)
    assert lam1 == pytest.approx(lam, rel=1e-6)
    assert float(v1 @ v) > 0.999  # the sign is kept
    with pytest.raises(ValueError, match="v0"):
        ot.sharpness(closure, params, 3, v0=torch.zeros_like(v))


def test_track_top_direction_oscillates_on_a_quadratic_past_two_over_lr():
    # f(w) = 0.5 mean (x_i^T w)^2 with H = diag(4, 1): at lr = 0.55 > 2/4 the
    # top coordinate flips sign every step and grows by |1 - 4 lr| = 1.2
    X = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=F64) * 2 ** 0.5
    model = nn.Linear(2, 1, bias=False).to(F64)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1e-3, 1.0]], dtype=F64))
    y = torch.zeros(2, 1, dtype=F64)

    def loss(o, t):
        return 0.5 * ((o - t) ** 2).mean()

    h = ot.track_top_direction(model, loss, (X, y), lr=0.55, steps=20,
                               generator=torch.Generator().manual_seed(0))
    s = [r["sharpness"] for r in h.epochs]
    g = torch.tensor([r["grad_top"] for r in h.epochs])
    assert all(v == pytest.approx(4.0, rel=1e-8) for v in s)
    assert torch.all(g[1:] * g[:-1] < 0)
    ratio = (g[1:] / g[:-1]).abs()
    assert torch.allclose(ratio, torch.full_like(ratio, 1.2), rtol=1e-6)
    with pytest.raises(ValueError, match="iters"):
        ot.track_top_direction(model, loss, (X, y), lr=0.1, steps=2, iters=0)
