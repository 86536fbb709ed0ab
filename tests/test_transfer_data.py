"""Tests of dlbook.transfer's data-side submodules (chapter transfer-data):
density ratios against scipy, importance-weighted least squares against
numpy, gradient reversal against autograd, the LSA = gradient descent
construction in float64, ridge against scikit-learn, MAML's inner and outer
gradients against plain autograd, and the chapter's claims at small size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.linear_model import LogisticRegression, Ridge
from torch import nn

from dlbook import transfer as T
from dlbook.data import digits, rotate_images
from dlbook.nn import mlp
from dlbook.seed import torch_generator
from dlbook.train import accuracy

torch.set_num_threads(1)
D64 = torch.float64


# --- domain adaptation -------------------------------------------------------
def test_gaussian_log_ratio_matches_scipy():
    x = torch.linspace(-3, 3, 41, dtype=D64)
    ours = T.gaussian_log_ratio(x, 0.5, 0.5, 0.0, 0.3)
    xn = x.numpy()
    ref = stats.norm(0.0, 0.3).logpdf(xn) - stats.norm(0.5, 0.5).logpdf(xn)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="std"):
        T.gaussian_log_ratio(x, 0.0, -1.0, 0.0, 1.0)


def test_effective_sample_size_closed_forms():
    assert abs(T.effective_sample_size(torch.ones(50)).item() - 50) < 1e-9
    assert abs(T.effective_sample_size(torch.eye(7)[2]).item() - 1) < 1e-9
    w = torch.tensor([1.0, 2.0, 3.0], dtype=D64)
    assert abs(T.effective_sample_size(w).item() - 36 / 14) < 1e-12
    with pytest.raises(ValueError, match="non-negative"):
        T.effective_sample_size(torch.tensor([1.0, -1.0]))


def test_weighted_least_squares_matches_numpy():
    g = torch_generator(0)
    X = torch.randn(30, 4, generator=g, dtype=D64)
    y = torch.randn(30, generator=g, dtype=D64)
    w = torch.rand(30, generator=g, dtype=D64)
    s = w.sqrt().numpy()
    ref = np.linalg.lstsq(X.numpy() * s[:, None], y.numpy() * s, rcond=None)[0]
    np.testing.assert_allclose(T.weighted_least_squares(X, y, w).numpy(), ref,
                               rtol=1e-9)
    with pytest.raises(ValueError, match="y must be"):
        T.weighted_least_squares(X, y[:5])


def test_importance_weighting_is_unbiased():
    """E_S[w(x) l(x)] = E_T[l(x)] for the true ratio (Monte Carlo)."""
    g = torch_generator(1)
    xs = 0.5 + 0.5 * torch.randn(400_000, generator=g, dtype=D64)
    loss = lambda x: (x - 0.2) ** 2 + torch.sin(3 * x)
    w = T.gaussian_log_ratio(xs, 0.5, 0.5, 0.0, 0.3).exp()
    xt = 0.3 * torch.randn(400_000, generator=g, dtype=D64)
    assert abs((w * loss(xs)).mean() - loss(xt).mean()) < 0.01
    assert abs(w.mean() - 1) < 0.01  # E_S[w] = 1
    assert abs(loss(xs).mean() - loss(xt).mean()) > 0.1  # the shift matters


def test_domain_classifier_recovers_gaussian_ratio():
    g = torch_generator(2)
    xs = 0.5 + 0.5 * torch.randn(4000, generator=g, dtype=D64)
    xt = 0.3 * torch.randn(2000, generator=g, dtype=D64)
    quad = lambda x: torch.stack([x, x ** 2], 1)
    ratio = T.domain_classifier_ratio(quad(xs), quad(xt), C=100.0)
    grid = torch.linspace(-0.5, 1.0, 31, dtype=D64)
    est, true = ratio(quad(grid)).log(), T.gaussian_log_ratio(grid, 0.5, 0.5, 0, 0.3)
    assert (est - true).abs().max() < 0.35


def test_grad_reverse_against_autograd():
    x = torch.randn(5, 3, dtype=D64, requires_grad=True)
    c = torch.randn(5, 3, dtype=D64)
    y = T.grad_reverse(x, 0.7)
    assert torch.allclose(y, x)
    (y * c).sum().backward()
    assert torch.allclose(x.grad, -0.7 * c)
    with pytest.raises(ValueError, match="lambd"):
        T.grad_reverse(x, -1.0)


def test_dann_features_ascend_the_domain_loss():
    """Through the reversal, the feature gradient of the domain loss is minus
    lambd times the ordinary one, while the domain head's is unchanged."""
    torch.manual_seed(0)
    net = T.DANN([4, 6], 3, 5, generator=torch_generator(0)).double()
    x = torch.randn(8, 4, dtype=D64)
    d = torch.randint(0, 2, (8,)).to(D64)
    grads = []
    for lam in [0.0, 0.5]:
        net.zero_grad()
        z = (net.domain_logits(x, lam) if lam else
             net.domain_head(net.features(x))[:, 0])
        nn.functional.binary_cross_entropy_with_logits(z, d).backward()
        grads.append([p.grad.clone() for p in net.features.parameters()]
                     + [p.grad.clone() for p in net.domain_head.parameters()])
    n_feat = len(list(net.features.parameters()))
    for g0, g1 in zip(grads[0][:n_feat], grads[1][:n_feat]):
        assert torch.allclose(g1, -0.5 * g0)
    for g0, g1 in zip(grads[0][n_feat:], grads[1][n_feat:]):
        assert torch.allclose(g1, g0)
    assert all(p.grad is None for p in net.label_head.parameters())


def test_importance_weighting_claim_small():
    """Weighted least squares beats unweighted on the target (Shimodaira)."""
    f = lambda x: -x + x ** 3
    err = {"plain": [], "true": [], "dc": []}
    for s in range(20):
        g = torch_generator(s)
        xs = 0.5 + 0.5 * torch.randn(100, generator=g, dtype=D64)
        ys = f(xs) + 0.3 * torch.randn(100, generator=g, dtype=D64)
        xt = 0.3 * torch.randn(100, generator=g, dtype=D64)
        feat = lambda x: torch.stack([torch.ones_like(x), x], 1)
        quad = lambda x: torch.stack([x, x ** 2], 1)
        w = {"plain": None,
             "true": T.gaussian_log_ratio(xs, 0.5, 0.5, 0.0, 0.3).exp(),
             "dc": T.domain_classifier_ratio(quad(xs), quad(xt))(quad(xs))}
        for k in err:
            b = T.weighted_least_squares(feat(xs), ys, w[k])
            err[k].append(((feat(xt) @ b - f(xt)) ** 2).mean().item())
    m = {k: np.mean(v) for k, v in err.items()}
    assert m["true"] < 0.5 * m["plain"] and m["dc"] < 0.6 * m["plain"]


def test_proxy_a_distance_orders_shifts():
    g = torch_generator(3)
    a = torch.randn(400, 2, generator=g)
    near = torch.randn(400, 2, generator=g)
    far = torch.randn(400, 2, generator=g) + 3.0
    assert T.proxy_a_distance(a, near) < 0.3 < 1.5 < T.proxy_a_distance(a, far)


@pytest.mark.slow
def test_dann_beats_source_only_on_rotated_digits():
    data = digits(seed=0, val_size=0.25)
    Xt, Xt_test = rotate_images(data.X_val, 30.0), rotate_images(data.X_test, 30.0)
    acc = {}
    for lam in [0.0, 0.1]:
        a = []
        for s in range(3):
            m = T.DANN([64, 64], 10, generator=torch_generator(s))
            T.train_dann(m, data.train, Xt, T.DANNConfig(lambd=lam, steps=500),
                         generator=torch_generator(s))
            with torch.no_grad():
                a.append(accuracy(m(Xt_test), data.y_test))
        acc[lam] = np.mean(a)
    assert acc[0.1] > acc[0.0] + 0.03


# --- in-context learning -----------------------------------------------------
def _naive_lsa(E, W_KQ, W_PV, n):
    out = E.clone()
    for t in range(E.shape[0]):
        for j in range(E.shape[1]):
            acc = torch.zeros(E.shape[2], dtype=E.dtype)
            for i in range(n):
                acc += W_PV @ E[t, i] * (E[t, i] @ W_KQ @ E[t, j])
            out[t, j] = E[t, j] + acc / n
    return out


def test_lsa_layer_matches_loops():
    g = torch_generator(4)
    E = torch.randn(3, 6, 4, generator=g, dtype=D64)
    A, B = (torch.randn(4, 4, generator=g, dtype=D64) for _ in range(2))
    assert torch.allclose(T.lsa_layer(E, A, B, 5), _naive_lsa(E, A, B, 5))
    with pytest.raises(ValueError, match="W_KQ"):
        T.lsa_layer(E, A[:3, :3], B, 5)


@pytest.mark.parametrize("layers", [1, 2, 5])
def test_lsa_equals_gradient_descent(layers):
    X, y = T.regression_tasks(50, 12, 4, noise=0.3, generator=torch_generator(5),
                              dtype=D64)
    W_KQ, W_PV = T.lsa_gd_weights(4, 0.3, D64)
    lsa = T.lsa_predict(X, y, W_KQ, W_PV, layers)
    gd = T.gd_predictions(X, y, 0.3, layers)
    assert (lsa - gd).abs().max() < 1e-12
    # a perturbed construction is not gradient descent
    W_bad = W_PV.clone()
    W_bad[0, -1] = 0.1
    assert (T.lsa_predict(X, y, W_KQ, W_bad, 2) - T.gd_predictions(X, y, 0.3, 2)
            ).abs().max() > 1e-3


def test_gd_converges_to_least_squares():
    X, y = T.regression_tasks(20, 30, 3, generator=torch_generator(6), dtype=D64)
    gd = T.gd_predictions(X, y, 0.5, 400)
    assert (gd - T.ridge_predictions(X, y, 0.0)).abs().max() < 1e-8


def test_ridge_predictions_match_sklearn():
    X, y = T.regression_tasks(4, 8, 3, noise=0.5, generator=torch_generator(7),
                              dtype=D64)
    ours = T.ridge_predictions(X, y, 0.7)
    for t in range(4):
        clf = Ridge(alpha=0.7, fit_intercept=False).fit(X[t, :-1], y[t, :-1])
        assert abs(clf.predict(X[t, -1:].numpy())[0] - ours[t].item()) < 1e-10


def test_in_context_regressor_ignores_context_order_and_query_label():
    model = T.InContextRegressor(3, 16, 1, 2, generator=torch_generator(8)).double()
    X, y = T.regression_tasks(5, 7, 3, generator=torch_generator(9), dtype=D64)
    p = model(X, y)
    perm = torch.cat([torch.randperm(7, generator=torch_generator(1)),
                      torch.tensor([7])])
    assert torch.allclose(model(X[:, perm], y[:, perm]), p)
    y2 = y.clone()
    y2[:, -1] = 100.0
    assert torch.allclose(model(X, y2), p)
    assert p.shape == (5,)


def _train_icl(seed: int, steps: int = 2000, d: int = 2, noise: float = 0.1):
    icl = T.InContextRegressor(d, 32, 2, 2, generator=torch_generator(seed))
    opt = torch.optim.Adam(icl.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps,
                                                pct_start=0.1)
    g = torch_generator(seed + 1)
    for _ in range(steps):
        n = int(torch.randint(1, 11, (1,), generator=g))
        Xb, yb = T.regression_tasks(64, n, d, noise=noise, generator=g)
        loss = ((icl(Xb, yb) - yb[:, -1]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return icl


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_in_context_orderings_hold_for_other_seeds(seed):
    """The chapter's orderings (seed 0) rerun with two other training seeds."""
    icl, d, noise = _train_icl(seed), 2, 0.1
    g = torch_generator(99)
    tf, gd, ridge, ls = [], [], [], []
    for n in [1, 2, 3, 4, 6, 8, 10]:
        X, y = T.regression_tasks(2000, n, d, noise=noise, generator=g)
        with torch.no_grad():
            for out, p in [(tf, icl(X, y)), (gd, T.gd_predictions(X, y, n / (n + d + 1))),
                           (ridge, T.ridge_predictions(X, y, noise ** 2)),
                           (ls, T.ridge_predictions(X, y, 0.0))]:
                out.append(((p - y[:, -1]) ** 2).mean().item())
    tf, gd, ridge, ls = map(np.array, (tf, gd, ridge, ls))
    assert (tf[1:] < gd[1:]).all()
    assert tf[-1] > 2 * ridge[-1]
    assert ls[1] > 3 * tf[1]
    assert np.all(np.diff(tf) < 0)


@pytest.mark.slow
def test_reverse_validation_prefers_some_adaptation():
    """Reverse validation (no target labels) scores a positive lambda above
    source-only training and above a too-large lambda, as in the chapter."""
    data = digits(seed=0, val_size=0.25)
    perm = torch.randperm(len(data.y_train), generator=torch_generator(5))
    nv = len(perm) // 5
    Xs, ys = data.X_train[perm[nv:]], data.y_train[perm[nv:]]
    Xv, yv = data.X_train[perm[:nv]], data.y_train[perm[:nv]]
    pool = rotate_images(data.X_val, 30.0)
    score = {}
    for lam in [0.0, 0.03, 0.3]:
        r = []
        for s in range(2):
            m = T.DANN([64, 64], 10, generator=torch_generator(s))
            T.train_dann(m, (Xs, ys), pool, T.DANNConfig(lambd=lam, steps=400),
                         generator=torch_generator(s))
            with torch.no_grad():
                pseudo = m(pool).argmax(1)
            rev = T.DANN([64, 64], 10, generator=torch_generator(s + 10))
            T.train_dann(rev, (pool, pseudo), Xs, T.DANNConfig(lambd=lam, steps=400),
                         generator=torch_generator(s + 10))
            with torch.no_grad():
                r.append(accuracy(rev(Xv), yv))
        score[lam] = np.mean(r)
    assert score[0.03] > score[0.0] and score[0.03] > score[0.3]


# --- meta-learning -----------------------------------------------------------
def test_sinusoid_tasks_shapes_and_ranges():
    xs, ys, xq, yq = T.sinusoid_tasks(6, 4, generator=torch_generator(0))
    assert xs.shape == ys.shape == xq.shape == yq.shape == (6, 4, 1)
    assert xs.abs().max() <= 5 and ys.abs().max() <= 5
    with pytest.raises(ValueError, match="n_tasks"):
        T.sinusoid_tasks(0, 4)


def _net():
    return mlp([1, 8, 1], generator=torch_generator(0)).double()


def test_adapt_matches_manual_gradient_step():
    net = _net()
    x, y = torch.randn(5, 1, dtype=D64), torch.randn(5, 1, dtype=D64)
    params = dict(net.named_parameters())
    fast = T.adapt(net, params, x, y, 0.1, 1)
    loss = ((net(x) - y) ** 2).mean()
    grads = torch.autograd.grad(loss, list(params.values()))
    for (n, p), g in zip(params.items(), grads):
        assert torch.allclose(fast[n], p - 0.1 * g)


def test_maml_gradient_second_and_first_order():
    """Outer gradients through one inner step against autograd with
    create_graph (second order) and with the inner gradient detached."""
    net = _net()
    g = torch_generator(1)
    xs, ys, xq, yq = (torch.randn(5, 1, generator=g, dtype=D64) for _ in range(4))
    params = dict(net.named_parameters())
    outs = {}
    for fo in [False, True]:
        fast = T.adapt(net, params, xs, ys, 0.1, 1, first_order=fo)
        q = torch.func.functional_call(net, fast, (xq,))
        outs[fo] = torch.autograd.grad(((q - yq) ** 2).mean(), list(params.values()))
    loss = ((net(xs) - ys) ** 2).mean()
    gs = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    for fo in [False, True]:
        fast = [p - 0.1 * (gi.detach() if fo else gi)
                for p, gi in zip(params.values(), gs)]
        q = torch.func.functional_call(net, dict(zip(params, fast)), (xq,))
        ref = torch.autograd.grad(((q - yq) ** 2).mean(), list(params.values()),
                                  retain_graph=True)
        for a, b in zip(outs[fo], ref):
            assert torch.allclose(a, b)
    assert any((a - b).abs().max() > 1e-6 for a, b in zip(outs[False], outs[True]))


@pytest.mark.slow
def test_maml_beats_pretrained_after_one_step():
    test = T.sinusoid_tasks(200, 10, generator=torch_generator(123))
    maml = mlp([1, 40, 40, 1], generator=torch_generator(0))
    T.maml_train(maml, T.MAMLConfig(iterations=600, meta_batch=10, outer_lr=3e-3),
                 generator=torch_generator(1))
    pre = mlp([1, 40, 40, 1], generator=torch_generator(0))
    T.pretrain_all_tasks(pre, 600, meta_batch=10, lr=3e-3,
                         generator=torch_generator(1))
    best_pre = min(T.adapted_mse(pre, test, lr, 1).mean().item()
                   for lr in [0.003, 0.01, 0.02])
    assert T.adapted_mse(maml, test, 0.01, 1).mean().item() < 0.8 * best_pre


# --- generated training data -------------------------------------------------
def test_sample_labelled_shapes_and_checks():
    from dlbook.conditional import CVAE
    vae = CVAE(64, 10, 4, 16, generator=torch_generator(0))
    X, y = T.sample_labelled(vae, 3, generator=torch_generator(1), mean=False)
    assert X.shape == (30, 64) and torch.equal(torch.bincount(y), torch.full((10,), 3))
    assert set(X.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="n_per_class"):
        T.sample_labelled(vae, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        T.train_class_conditional_vae(2 * torch.ones(4, 64), torch.zeros(4).long(), 10)


@pytest.mark.slow
def test_generated_data_trains_a_useful_but_worse_classifier():
    data = digits(seed=0, val_size=0.25)
    vae = T.train_class_conditional_vae(*data.train, 10, epochs=200,
                                        generator=torch_generator(0))
    Xg, yg = T.sample_labelled(vae, 90, generator=torch_generator(1), mean=False)
    score = lambda X, y: LogisticRegression(max_iter=1000).fit(
        X.numpy(), y.numpy()).score(data.X_test.numpy(), data.y_test.numpy())
    gen, real = score(Xg, yg), score(*data.train)
    assert 0.75 < gen < real
