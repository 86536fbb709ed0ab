"""Tests of dlbook.generalization against independent oracles and the
chapter's headline claims, rerun at a small size."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from dlbook.data import digits
from dlbook.generalization import (
    MemorizeConfig, PacBayesConfig, TwoLayerNTK, corrupt_labels, double_descent,
    empirical_ntk, finite_class_bound, fit_to_zero_error, gaussian_kl,
    gp_log_evidence, gp_posterior, kl_bernoulli, kl_inverse, linearized_predict,
    lz76_phrases, lz_complexity, min_norm_lstsq, mlp_forward, nngp_relu_kernel,
    pac_bayes_kl_bound, pac_bayes_optimize, random_net_truth_tables,
    width_sweep,
    random_relu_net_outputs, ridge, spectral_complexity, train_gd,
    function_frequencies, init_params, all_bit_strings, augment_bias,
    rademacher_linear, two_layer_norm, ramp_risk, rademacher_margin_bound,
    effective_ranks, max_margin_direction, logistic_gd_directions,
    normalized_margin, vc_bound, mcallester_bound)
from dlbook.nn import mlp


# ---------------------------------------------------------------- labels
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.37, 0.5, 1.0])
@pytest.mark.parametrize("exclude_true", [False, True])
def test_corruption_fraction_is_exact(fraction, exclude_true):
    y = torch.arange(1000) % 10
    g = torch.Generator().manual_seed(3)
    y2, mask = corrupt_labels(y, fraction, 10, generator=g, exclude_true=exclude_true)
    assert int(mask.sum()) == round(fraction * 1000)
    assert torch.equal(y2[~mask], y[~mask])          # untouched outside the mask
    if exclude_true:                                  # every corrupted label is wrong
        assert int((y2 != y).sum()) == round(fraction * 1000)


def test_corrupted_labels_are_uniform():
    y = torch.zeros(20000, dtype=torch.long)
    y2, _ = corrupt_labels(y, 1.0, 10, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(y2, minlength=10).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3


def test_corrupt_labels_rejects_bad_fraction():
    with pytest.raises(ValueError, match="fraction"):
        corrupt_labels(torch.zeros(5, dtype=torch.long), 1.5, 10)


@pytest.mark.slow
def test_network_fits_random_labels_and_test_accuracy_falls():
    s = digits(seed=0, test_size=0.25)
    X, y = s.X_train[:400], s.y_train[:400]
    res = {}
    for f in (0.0, 1.0):
        g = torch.Generator().manual_seed(0)
        yc, _ = corrupt_labels(y, f, 10, generator=g)
        res[f] = fit_to_zero_error((X, yc), s.test, 10, MemorizeConfig(lr=1e-2),
                                   generator=g)
    assert res[0.0].train_acc == 1.0 and res[1.0].train_acc == 1.0
    assert res[0.0].test_acc > 0.9
    assert res[1.0].test_acc < 0.2                    # chance is 0.1
    assert res[1.0].steps > res[0.0].steps            # random labels take longer


# ---------------------------------------------------------------- bounds
def test_kl_bernoulli_matches_scipy_entropy():
    for q, p in [(0.1, 0.3), (0.0, 0.2), (0.5, 0.5), (0.9, 0.4)]:
        ref = stats.entropy([q, 1 - q], [p, 1 - p])
        assert kl_bernoulli(q, p) == pytest.approx(ref, abs=1e-12)


def test_kl_inverse_inverts_kl():
    for q, c in [(0.05, 0.1), (0.0, 0.01), (0.3, 0.5)]:
        p = kl_inverse(q, c)
        assert kl_bernoulli(q, p) == pytest.approx(c, abs=1e-8)
        assert p >= q


def test_pac_bayes_kl_is_tighter_than_pinsker_relaxation():
    kl_b = pac_bayes_kl_bound(0.02, 50.0, 1000, 0.05)
    rhs = (50 + math.log(2 * math.sqrt(1000) / 0.05)) / 1000
    assert kl_b <= 0.02 + math.sqrt(rhs / 2) + 1e-12    # Pinsker's inequality


def test_finite_class_bound_holds_for_thresholds_on_a_grid():
    # 21 thresholds on [0, 1]; labels 1[x > 0.5] flipped with prob 0.1
    rng = np.random.default_rng(0)
    ts = np.linspace(0, 1, 21)
    eps = finite_class_bound(200, math.log(len(ts)), 0.05)
    fails = 0
    for _ in range(200):
        x = rng.uniform(size=200)
        y = (x > 0.5) ^ (rng.uniform(size=200) < 0.1)
        emp = np.array([((x > t) != y).mean() for t in ts])
        true = 0.1 + 0.8 * np.abs(ts - 0.5)           # exact risk of each threshold
        fails += np.any(np.abs(emp - true) > eps)
    assert fails / 200 <= 0.05


def test_spectral_complexity_of_identity_chain():
    # ||I||_2 = 1 and ||I^T||_{2,1} = d, so R = (L d^{2/3})^{3/2}
    Ws = [torch.eye(4)] * 3
    assert spectral_complexity(Ws) == pytest.approx((3 * 4 ** (2 / 3)) ** 1.5)


# ---------------------------------------------------------------- min-norm LS
@pytest.mark.parametrize("n,p", [(30, 10), (30, 30), (30, 80)])
def test_min_norm_equals_pseudo_inverse(n, p):
    rng = np.random.default_rng(n + p)
    Phi = rng.standard_normal((n, p))
    Y = rng.standard_normal((n, 3))
    w = min_norm_lstsq(torch.as_tensor(Phi), torch.as_tensor(Y)).numpy()
    np.testing.assert_allclose(w, np.linalg.pinv(Phi) @ Y, rtol=1e-6, atol=1e-8)
    w_ls = np.linalg.lstsq(Phi, Y, rcond=None)[0]
    np.testing.assert_allclose(w, w_ls, rtol=1e-6, atol=1e-8)


def test_min_norm_on_rank_deficient_matrix():
    rng = np.random.default_rng(1)
    Phi = rng.standard_normal((20, 5)) @ rng.standard_normal((5, 40))  # rank 5
    y = rng.standard_normal(20)
    w = min_norm_lstsq(torch.as_tensor(Phi), torch.as_tensor(y)).numpy()
    np.testing.assert_allclose(w, np.linalg.pinv(Phi) @ y, rtol=1e-5, atol=1e-7)


def test_ridge_matches_normal_equations_and_tends_to_min_norm():
    rng = np.random.default_rng(2)
    for p in (8, 40):
        Phi = rng.standard_normal((20, p))
        y = rng.standard_normal(20)
        w = ridge(torch.as_tensor(Phi), torch.as_tensor(y), 0.3).numpy()
        ref = np.linalg.solve(Phi.T @ Phi + 0.3 * np.eye(p), Phi.T @ y)
        np.testing.assert_allclose(w, ref, rtol=1e-8)
        w0 = ridge(torch.as_tensor(Phi), torch.as_tensor(y), 1e-9).numpy()
        np.testing.assert_allclose(w0, np.linalg.pinv(Phi) @ y, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_double_descent_peak_at_interpolation_threshold():
    s = digits(seed=0, test_size=0.25)
    n = 100
    X, y = s.X_train[:n], s.y_train[:n]
    ps = [10, 20, 40, 60, 80, 90, 100, 110, 125, 150, 200, 400, 800, 1600]
    r = double_descent(X, y, s.X_test, s.y_test, ps, num_classes=10, seeds=5)
    peak = r.widths[np.argmax(r.test_mse)]
    assert 0.8 * n <= peak <= 1.25 * n                # peak near p = n
    assert r.test_mse[-1] < r.test_mse[: ps.index(80)].min()  # second descent wins
    # the smallest singular value is smallest near the threshold
    assert 0.8 * n <= r.widths[np.argmin(r.sigma_min)] <= 1.25 * n
    rr = double_descent(X, y, s.X_test, s.y_test, ps, num_classes=10, seeds=5,
                        lam=1e-2)
    assert rr.test_mse.max() < 0.1 * r.test_mse.max()   # ridge tames the peak


# ---------------------------------------------------------------- NTK
def test_empirical_ntk_matches_autograd_jacobian():
    g = torch.Generator().manual_seed(0)
    net = TwoLayerNTK(3, 50, generator=g)
    X1 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    X2 = torch.randn(4, 3, generator=g, dtype=torch.float64)

    def jac(X):
        rows = []
        for x in X:
            grads = torch.autograd.grad(net(x[None])[0], [net.W, net.a])
            rows.append(torch.cat([gr.reshape(-1) for gr in grads]))
        return torch.stack(rows)

    ref = jac(X1) @ jac(X2).T
    torch.testing.assert_close(empirical_ntk(net, X1, X2), ref, rtol=1e-10, atol=1e-12)


def _circle(n, dtype=torch.float64):
    t = torch.linspace(0, 2 * math.pi, n + 1, dtype=dtype)[:-1] + 0.1
    X = torch.stack([torch.cos(t), torch.sin(t), torch.ones_like(t)], 1) / math.sqrt(2)
    return X, torch.sin(2 * t) + 0.5 * torch.cos(3 * t)


@pytest.mark.slow
def test_ntk_change_shrinks_with_width_and_linearization_predicts():
    X, y = _circle(12)
    widths, change, dev = [64, 256, 1024, 4096], [], []
    for m in widths:
        net = TwoLayerNTK(3, m, generator=torch.Generator().manual_seed(1))
        k0 = empirical_ntk(net, X, X)
        with torch.no_grad():
            f0 = net(X)
        lr = 1 / torch.linalg.eigvalsh(k0).max().item()
        train_gd(net, X, y, lr=lr, steps=300)
        change.append(((empirical_ntk(net, X, X) - k0).norm() / k0.norm()).item())
        lin = linearized_predict(k0, k0, f0, f0, y, lr=lr, steps=300)
        with torch.no_grad():
            dev.append(((net(X) - lin).norm() / lin.norm()).item())
    slope = np.polyfit(np.log(widths), np.log(change), 1)[0]
    assert all(a > b for a, b in zip(change, change[1:]))
    assert -1.2 < slope < -0.4                        # at least as fast as 1/sqrt(m)
    assert dev[-1] < 0.05 and dev[-1] < dev[0]


def test_linearized_predict_reaches_kernel_interpolant():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 6, generator=g, dtype=torch.float64)
    K = A @ A.T + 6 * torch.eye(6, dtype=torch.float64)
    y = torch.randn(6, generator=g, dtype=torch.float64)
    f0 = torch.zeros(6, dtype=torch.float64)
    lr = 1 / torch.linalg.eigvalsh(K).max().item()
    f = linearized_predict(K, K, f0, f0, y, lr=lr, steps=5000)
    torch.testing.assert_close(f, y, rtol=1e-8, atol=1e-8)
    # one step of kernel gradient descent, by hand
    f1 = linearized_predict(K, K, f0, f0, y, lr=lr, steps=1)
    torch.testing.assert_close(f1, f0 - lr * K @ (f0 - y))


# ---------------------------------------------------------------- NNGP / GP
def test_arccos_kernel_matches_monte_carlo_expectation():
    g = torch.Generator().manual_seed(0)
    X = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-0.8, 0.3]], dtype=torch.float64)
    K = nngp_relu_kernel(X, X, depth=1, sigma_w2=2.0, sigma_b2=0.0)
    # one-hidden-layer kernel = 2 E[relu(w.x/sqrt(d)*sqrt2) relu(w.x'...)]: draw w
    W = torch.randn(400000, 2, generator=g, dtype=torch.float64)
    H = torch.relu(X @ W.T * math.sqrt(2.0 / 2))
    ref = 2.0 * H @ H.T / W.shape[0]
    torch.testing.assert_close(K, ref, rtol=0.02, atol=0.01)


@pytest.mark.slow
def test_arccos_kernel_matches_empirical_covariance_of_random_networks():
    g = torch.Generator().manual_seed(0)
    ang = torch.linspace(0, math.pi, 8, dtype=torch.float64)
    X = torch.stack([torch.cos(ang), torch.sin(ang), torch.ones_like(ang)], 1)
    for depth in (1, 2):
        out = random_relu_net_outputs(X, width=256, depth=depth, nets=4000,
                                      sigma_b2=0.1, generator=g)
        C = out.T @ out / len(out)
        K = nngp_relu_kernel(X, X, depth, sigma_b2=0.1)
        se = K.diag().max() * math.sqrt(2 / len(out))  # Monte Carlo standard error
        assert (C - K).abs().max() < 4 * se


def test_gp_posterior_and_evidence_match_dense_formulas():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(7, 2, generator=g, dtype=torch.float64)
    Xs = torch.randn(3, 2, generator=g, dtype=torch.float64)
    y = torch.randn(7, generator=g, dtype=torch.float64)
    K, Ks = nngp_relu_kernel(X, X, 2), nngp_relu_kernel(Xs, X, 2)
    kss = nngp_relu_kernel(Xs, Xs, 2)
    mean, var = gp_posterior(K, Ks, kss.diag(), y, 0.1)
    A = torch.linalg.inv(K + 0.1 * torch.eye(7, dtype=torch.float64))
    torch.testing.assert_close(mean, Ks @ A @ y)
    torch.testing.assert_close(var, (kss - Ks @ A @ Ks.T).diag())
    cov = (K + 0.1 * torch.eye(7, dtype=K.dtype)).numpy()
    ref = stats.multivariate_normal(np.zeros(7), cov)
    assert gp_log_evidence(K, y, 0.1) == pytest.approx(ref.logpdf(y.numpy()),
                                                       rel=1e-10)


# ---------------------------------------------------------------- PAC-Bayes
def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, w0 = torch.randn(10, generator=g), torch.randn(10, generator=g)
    ls2 = torch.randn(10, generator=g) * 0.3
    lam = torch.tensor(0.7)
    q = torch.distributions.Normal(mu, (0.5 * ls2).exp())
    p = torch.distributions.Normal(w0, lam.sqrt().expand(10))
    ref = torch.distributions.kl_divergence(q, p).sum()
    torch.testing.assert_close(gaussian_kl(mu, ls2, w0, lam), ref)


def test_flat_mlp_forward_matches_torch_modules():
    g = torch.Generator().manual_seed(0)
    sizes = [5, 7, 1]
    theta = init_params(sizes, g)
    X = torch.randn(4, 5, generator=g)
    W1, b1 = theta[:35].reshape(7, 5), theta[35:42]
    W2, b2 = theta[42:49].reshape(1, 7), theta[49:50]
    ref = (torch.relu(X @ W1.T + b1) @ W2.T + b2)[:, 0]
    torch.testing.assert_close(mlp_forward(theta, X, sizes), ref)
    batched = mlp_forward(torch.stack([theta, theta]), X, sizes)
    torch.testing.assert_close(batched[1], ref)


@pytest.mark.slow
def test_pac_bayes_bound_is_non_vacuous_and_valid_on_test_data():
    s = digits(seed=0, test_size=0.25)
    train = (s.X_train, (s.y_train >= 5).long())
    test = (s.X_test, (s.y_test >= 5).long())
    r = pac_bayes_optimize(train, test, PacBayesConfig(),
                           generator=torch.Generator().manual_seed(0))
    assert r.n_params > 2 * len(s.X_train)            # overparameterized
    assert r.bound < 0.5                              # below the 0.5 of guessing
    assert r.test_err_q < r.bound                   # the bound holds on held-out data
    assert r.train_err_q <= r.train_err_q_upper
    assert len(r.lam) == 2 and all(0 < v <= 1 for v in r.lam)


def test_pinsker_form_is_looser_than_kl_form():
    for q, kl, n in [(0.02, 50.0, 1000), (0.3, 5.0, 200)]:
        assert pac_bayes_kl_bound(q, kl, n, 0.05) <= mcallester_bound(q, kl, n, 0.05)


# ---------------------------------------------------------------- simplicity
def test_lz76_on_kaspar_schuster_example():
    # 0 | 001 | 10 | 100 | 1000 | 101 (Kaspar and Schuster, 1987)
    assert lz76_phrases("0001101001000101") == 6
    assert lz76_phrases("0000") == 2 and lz76_phrases("01") == 2


def test_lz_complexity_orders_simple_below_random():
    rng = np.random.default_rng(0)
    rand = "".join(map(str, rng.integers(0, 2, 64)))
    assert lz_complexity("0" * 64) < lz_complexity("01" * 32) < lz_complexity(rand)


def test_truth_tables_agree_with_all_bit_strings_order():
    X = all_bit_strings(3)
    assert X.tolist()[5] == [1.0, 0.0, 1.0]


@pytest.mark.slow
def test_random_networks_prefer_simple_functions():
    tabs = random_net_truth_tables(5, 20000,
                                   generator=torch.Generator().manual_seed(0))
    fr = function_frequencies(tabs)
    c = np.array([lz_complexity(f) for f, _ in fr])
    p = np.array([q for _, q in fr])
    assert set(fr[0][0]) == {fr[0][0][0]}             # the most likely is constant
    assert stats.spearmanr(c, p).correlation < -0.2
    simple, complex_ = p[c <= np.quantile(c, 0.1)], p[c >= np.quantile(c, 0.9)]
    assert simple.max() > 100 * complex_.max()


@pytest.mark.slow
def test_width_double_descent_of_trained_network():
    s = digits(seed=0, test_size=0.25)
    n = 100
    g = torch.Generator().manual_seed(0)
    y, _ = corrupt_labels(s.y_train[:n], 0.2, 10, generator=g)
    eye = torch.eye(10)
    r = width_sweep(s.X_train[:n], eye[y], s.X_test, eye[s.y_test], [3, 25, 400],
                    steps=1000, seeds=1)
    assert r.test_mse[1] > 1.3 * max(r.test_mse[0], r.test_mse[2])   # a peak
    assert r.train_mse[1] < 0.1 and r.train_mse[0] > 0.3             # at interpolation


def test_width_m_relu_network_fits_any_labelling_of_m_points():
    """Zhang et al.'s construction, behind the chapter's d_VC >= width."""
    g = torch.Generator().manual_seed(0)
    m, d = 40, 6
    X = torch.randn(m, d, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 2, (m,), generator=g).double() * 2 - 1
    a = torch.randn(d, generator=g, dtype=torch.float64)
    z, order = torch.sort(X @ a)
    gaps = torch.cat([z[:1] - 1.0, (z[:-1] + z[1:]) / 2])     # b_j below z_j
    A = torch.relu(z[:, None] - gaps[None, :])                # lower triangular
    w = torch.linalg.solve_triangular(A, labels[order][:, None], upper=False)[:, 0]
    net = mlp([d, m, 1], dtype=torch.float64)
    with torch.no_grad():
        net[0].weight.copy_(a.expand(m, d))
        net[0].bias.copy_(-gaps)
        net[2].weight.copy_(w[None])
        net[2].bias.zero_()
        out = net(X)[:, 0]
    assert torch.equal(torch.sign(out), labels)


def test_width_sweep_trains_each_network_as_if_alone():
    """The block-diagonal joint training equals one Adam run per width."""
    g = torch.Generator().manual_seed(0)
    X, Xt = torch.rand(30, 5, generator=g), torch.rand(20, 5, generator=g)
    Y, Yt = torch.rand(30, 3, generator=g), torch.rand(20, 3, generator=g)
    widths = [2, 7, 16]
    r = width_sweep(X, Y, Xt, Yt, widths, steps=40, seeds=2)
    for k, m in enumerate(widths):
        errs = []
        for seed in range(2):
            net = mlp([5, m, 3], generator=torch.Generator().manual_seed(seed))
            opt = torch.optim.Adam(net.parameters(), lr=1e-2)
            for _ in range(40):
                opt.zero_grad()
                ((net(X) - Y) ** 2).sum(1).mean().backward()
                opt.step()
            with torch.no_grad():
                errs.append([((net(X) - Y) ** 2).sum(1).mean().item(),
                             ((net(Xt) - Yt) ** 2).sum(1).mean().item()])
        ref = np.median(np.array(errs), axis=0)
        assert r.train_mse[k] == pytest.approx(ref[0], rel=1e-4)
        assert r.test_mse[k] == pytest.approx(ref[1], rel=1e-4)
        assert r.n_params[k] == 5 * m + m + 3 * m + 3


# ---------------------------------------------------------------- Rademacher
def test_augment_bias_reproduces_the_network_with_biases():
    net = mlp([5, 7, 6, 3], generator=torch.Generator().manual_seed(0),
              dtype=torch.float64)
    layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    mats = augment_bias([m.weight for m in layers], [m.bias for m in layers])
    x = torch.randn(9, 5, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    h = torch.cat([x, torch.ones(9, 1, dtype=x.dtype)], 1)
    for i, A in enumerate(mats):
        h = h @ A.T
        if i < len(mats) - 1:
            h = torch.relu(h)
    with torch.no_grad():
        torch.testing.assert_close(h, net(x))
    assert [tuple(A.shape) for A in mats] == [(8, 6), (7, 8), (3, 7)]


def test_rademacher_linear_against_exhaustive_sign_average():
    X = torch.randn(10, 3, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    signs = torch.tensor(list(__import__("itertools").product([-1.0, 1.0], repeat=10)),
                         dtype=torch.float64)            # all 2^10 sign vectors
    exact = (signs @ X).norm(dim=1).mean().item() / 10
    mc, upper = rademacher_linear(X, draws=20000,
                                  generator=torch.Generator().manual_seed(1))
    assert mc == pytest.approx(exact, rel=0.02)
    assert exact <= upper + 1e-12                       # Jensen


def test_two_layer_class_complexity_is_below_the_proposition():
    # E_sigma sup over a finite family of norm-nu networks <= 2 nu E||sum sigma x~||/n
    g = torch.Generator().manual_seed(0)
    n, nu = 30, 3.0
    X = torch.randn(n, 4, generator=g, dtype=torch.float64)
    Xt = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], 1)
    outs = []
    for _ in range(300):
        W = torch.randn(8, 4, generator=g, dtype=X.dtype)
        b, a = torch.randn(8, generator=g, dtype=X.dtype), torch.randn(8, generator=g,
                                                                      dtype=X.dtype)
        c = torch.randn(1, generator=g, dtype=X.dtype)
        scale = nu / two_layer_norm(W, b, a, c)          # now the norm is exactly nu
        outs.append(scale * (torch.relu(X @ W.T + b) @ a + c))
    F_vals = torch.stack(outs)                           # (functions, n)
    sigma = torch.randint(0, 2, (4000, n), generator=g).double() * 2 - 1
    family = (sigma @ F_vals.T).max(1).values.mean().item() / n
    mc, upper = rademacher_linear(Xt, generator=g)
    assert 0 < family <= 2 * nu * upper


def test_ramp_risk_dominates_zero_one_and_bound_checks_grid():
    t = torch.tensor([-1.0, 0.0, 0.2, 0.5, 2.0])
    assert ramp_risk(t, 0.5) == pytest.approx((1 + 1 + 0.6 + 0 + 0) / 5)
    assert ramp_risk(t, 0.5) >= (t <= 0).double().mean().item()
    bound, gamma = rademacher_margin_bound(torch.full((100,), 4.0), 1.0, 0.01, 0.05)
    assert gamma == pytest.approx(1.0)                  # ramp is zero at gamma = B
    conf = 3 * math.sqrt(math.log(2 * 1600 / 0.05) / 200)
    assert bound == pytest.approx(0.04 + conf)
    with pytest.raises(ValueError, match="grid"):
        rademacher_margin_bound(torch.ones(10), 2.0 ** 40, 0.01, 0.05)


def test_vc_bound_is_not_applicable_when_dimension_exceeds_n():
    assert math.isinf(vc_bound(100, 200, 0.05))
    expected = math.sqrt((8 * 10 * math.log(2 * math.e * 1000 / 10)
                          + 8 * math.log(4 / 0.05)) / 1000)
    assert vc_bound(1000, 10, 0.05) == pytest.approx(expected)


# ---------------------------------------------------------------- benign overfitting
def test_effective_ranks_match_their_definitions():
    lam = torch.tensor([0.1, 3.0, 1.0, 0.5], dtype=torch.float64)
    r, R = effective_ranks(lam)
    srt = np.sort(lam.numpy())[::-1]
    for k in range(4):
        tail = srt[k:]
        assert r[k].item() == pytest.approx(tail.sum() / srt[k])
        assert R[k].item() == pytest.approx(tail.sum() ** 2 / (tail ** 2).sum())
    r_iso, R_iso = effective_ranks(torch.ones(50))
    assert r_iso[0].item() == pytest.approx(50)
    assert R_iso[0].item() == pytest.approx(50)


# ---------------------------------------------------------------- implicit bias
def _separable(n=30, seed=0):
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) < n // 2, 1.0, -1.0)
    X = 0.8 * rng.standard_normal((n, 2)) + y[:, None] * np.array([2.0, 0.5])
    return X, y


def test_max_margin_direction_satisfies_the_kkt_conditions():
    from scipy.optimize import nnls
    X, y = _separable()
    w = max_margin_direction(X, y)
    m = y * (X @ w)
    assert m.min() == pytest.approx(1.0, abs=1e-6)       # the constraints are tight
    support = m < 1 + 1e-5
    Z = (y[:, None] * X)[support]
    alpha, resid = nnls(Z.T, w)                         # w = sum alpha_i y_i x_i
    assert resid < 1e-6 and (alpha >= 0).all()
    with pytest.raises(ValueError, match="separating"):
        max_margin_direction(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([1.0, -1.0]))


def test_logistic_gd_step_matches_autograd_and_converges_to_the_svm():
    X, y = _separable()
    w0 = np.array([0.3, -0.2])
    w1 = logistic_gd_directions(X, y, lr=0.1, record=[1], w0=w0)[0]
    w = torch.tensor(w0, requires_grad=True)
    loss = torch.nn.functional.softplus(-torch.tensor(y) * (torch.tensor(X) @ w)).sum()
    loss.backward()
    np.testing.assert_allclose(w1, w0 - 0.1 * w.grad.numpy(), rtol=1e-12)
    u = max_margin_direction(X, y)
    u = u / np.linalg.norm(u)
    beta = np.linalg.norm(X, 2) ** 2 / 4
    W = logistic_gd_directions(X, y, lr=1 / beta, record=[1000, 4000, 16000])
    gaps = [np.linalg.norm(wt / np.linalg.norm(wt) - u) for wt in W]
    assert gaps[0] > gaps[1] > gaps[2]                  # slowly towards the SVM
    margins = [normalized_margin(wt, X, y) for wt in W]
    assert margins[0] < margins[2] <= 1 / np.linalg.norm(max_margin_direction(X, y))


# ---------------------------------------------------------------- the chapter
CHAPTER = (__import__("pathlib").Path(__file__).parents[1]
           / "book/foundations/generalization.md")


def guarded_claims(text: str) -> tuple[int, int]:
    """(asserts, asserts with a message) in the chapter's remove-cell cells."""
    import ast
    import re
    cells = re.findall(r"```\{code-cell\} ipython3\n:tags: \[remove-cell\]\n(.*?)```",
                       text, flags=re.S)
    nodes = [node for c in cells for node in ast.walk(ast.parse(c))
             if isinstance(node, ast.Assert)]
    return len(nodes), sum(node.msg is not None for node in nodes)


def test_chapter_guards_its_claims_and_has_an_index():
    import re
    text = CHAPTER.read_text()
    asserts, with_message = guarded_claims(text)
    assert asserts >= 40 and with_message == asserts, (asserts, with_message)
    n_index = (len(re.findall(r"\{index\}`", text))
               + len(re.findall(r":::\{index\}", text)))
    assert n_index >= 15
    for line in re.findall(r"^\s*alt: (.*)$", text, flags=re.M):
        assert not re.search(r"\d", line), f"alt text types a number: {line[:60]}"
