"""Tests of dlbook.robustness: attacks against closed forms and brute force,
randomized smoothing against the exact smoothed linear classifier and binomial
coverage, group losses against loops, and the chapter's key claims rerun small."""
from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch
from scipy import stats
from torch import nn

from dlbook import robustness as R
from dlbook.data import digits, rot90_images, rotate_images
from dlbook.nn import mlp
from dlbook.seed import torch_generator
from dlbook.train import fit

F = nn.functional
torch.set_num_threads(1)
D64 = torch.float64


@pytest.fixture(scope="module")
def data():
    return digits(seed=0)


def _linear_two_class(D: int, seed: int) -> nn.Linear:
    """A 2-logit linear model; its margin for label 1 is <w1 - w0, x> + b1 - b0."""
    lin = nn.Linear(D, 2, dtype=D64)
    g = torch_generator(seed)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(2, D, generator=g, dtype=D64))
        lin.bias.copy_(torch.randn(2, generator=g, dtype=D64))
    return lin


def _margin_params(lin: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    w = (lin.weight[1] - lin.weight[0]).detach()
    return w, (lin.bias[1] - lin.bias[0]).detach()


# --- projection and attacks ------------------------------------------------------

def test_projection_is_the_nearest_feasible_point():
    g = torch_generator(0)
    x = torch.rand(20, 6, generator=g, dtype=D64)
    z = x + 0.5 * torch.randn(20, 6, generator=g, dtype=D64)
    p = R.project_linf(z, x, 0.1)
    assert ((p - x).abs() <= 0.1 + 1e-12).all() and (p >= 0).all() and (p <= 1).all()
    for _ in range(200):  # no feasible point is closer (projection oracle)
        u = torch.rand(20, 6, generator=g, dtype=D64)
        q = R.project_linf(x + 0.2 * (2 * u - 1), x, 0.1)
        assert ((z - p).norm(dim=1) <= (z - q).norm(dim=1) + 1e-12).all()
    assert torch.allclose(R.project_linf(p, x, 0.1), p)


def test_linear_worst_case_matches_vertex_enumeration():
    """A linear function on a box attains its minimum at a vertex: enumerate."""
    g = torch_generator(1)
    w = torch.randn(3, generator=g, dtype=D64)
    x = torch.rand(10, 3, generator=g, dtype=D64)
    y = torch.where(torch.rand(10, generator=g) < 0.5, -1, 1)
    eps = 0.15
    _, margin = R.linear_worst_case(w, 0.3, x, y, eps)
    lo, hi = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    for i in range(10):
        corners = [torch.tensor([lo[i, j] if s[j] else hi[i, j] for j in range(3)])
                   for s in itertools.product([0, 1], repeat=3)]
        brute = min(float(y[i] * (c @ w + 0.3)) for c in corners)
        assert math.isclose(float(margin[i]), brute, abs_tol=1e-12)


def test_linear_worst_case_without_box_is_margin_minus_l1():
    g = torch_generator(2)
    w = torch.randn(5, generator=g, dtype=D64)
    x = torch.randn(7, 5, generator=g, dtype=D64)
    y = torch.tensor([1, -1, 1, 1, -1, -1, 1])
    delta, margin = R.linear_worst_case(w, -0.2, x, y, 0.3, box=None)
    assert torch.allclose(margin, y * (x @ w - 0.2) - 0.3 * w.abs().sum())
    assert torch.allclose(delta.abs().amax(1), torch.full((7,), 0.3, dtype=D64))


@pytest.mark.parametrize("random_start", [True, False])
def test_fgsm_and_pgd_attain_the_linear_closed_form(random_start):
    lin = _linear_two_class(8, 3)
    w, b = _margin_params(lin)
    g = torch_generator(4)
    x = torch.rand(30, 8, generator=g, dtype=D64)
    y = (torch.rand(30, generator=g) < 0.5).long()
    eps = 0.1
    _, margin = R.linear_worst_case(w, b, x, 2 * y - 1, eps)
    exact = torch.logaddexp(torch.zeros_like(margin), -margin)  # log(1 + e^-m)
    x_f = R.fgsm(lin, x, y, eps)
    x_p = R.pgd(lin, x, y, eps, alpha=eps / 4, steps=10, random_start=random_start,
                generator=torch_generator(5))
    for x_adv in (x_f, x_p):
        loss = F.cross_entropy(lin(x_adv), y, reduction="none").detach()
        assert torch.allclose(loss, exact, atol=1e-10)


def test_pgd_stays_feasible_and_beats_clean_loss(data):
    net = mlp([64, 32, 10], generator=torch_generator(0))
    x, y = data.X_test[:100], data.y_test[:100]
    x_p = R.pgd(net, x, y, 0.1, alpha=0.02, steps=10, generator=torch_generator(1))
    assert ((x_p - x).abs().max() <= 0.1 + 1e-6) and x_p.min() >= 0 and x_p.max() <= 1
    again = R.pgd(net, x, y, 0.1, alpha=0.02, steps=10, generator=torch_generator(1))
    assert torch.equal(x_p, again), "the random start comes from the generator"
    with torch.no_grad():
        clean, adv = F.cross_entropy(net(x), y), F.cross_entropy(net(x_p), y)
    assert adv > clean


def test_input_gradient_matches_float64_autograd_reference():
    lin = _linear_two_class(4, 6)
    x = torch.rand(5, 4, generator=torch_generator(7), dtype=D64)
    y = torch.tensor([0, 1, 1, 0, 1])
    w, b = _margin_params(lin)
    s = 2 * y - 1
    # d/dx softplus(-s (w.x + b)) = -s sigmoid(-s m) w, written out by hand
    m = s * (x @ w + b)
    ref = (-s * torch.sigmoid(-m)).unsqueeze(1) * w
    assert torch.allclose(R.input_gradient(lin, x, y), ref, atol=1e-12)


def test_attacks_reject_bad_arguments():
    lin = _linear_two_class(3, 0)
    x, y = torch.rand(2, 3, dtype=D64), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="eps"):
        R.fgsm(lin, x, y, -0.1)
    with pytest.raises(ValueError, match="alpha"):
        R.pgd(lin, x, y, 0.1, alpha=0.0, steps=3)
    with pytest.raises(ValueError, match="steps"):
        R.pgd(lin, x, y, 0.1, alpha=0.1, steps=0)
    with pytest.raises(ValueError, match="y must"):
        R.linear_worst_case(torch.ones(3), 0.0, x, torch.tensor([0, 1]), 0.1)


# --- randomized smoothing ---------------------------------------------------------

def test_clopper_pearson_closed_form_and_coverage():
    n, alpha = 50, 0.1
    assert math.isclose(float(R.clopper_pearson_lower(torch.tensor([n]), n, alpha)[0]),
                        alpha ** (1 / n), rel_tol=1e-9)  # k = n: p^n = alpha
    assert float(R.clopper_pearson_lower(torch.tensor([0]), n, alpha)[0]) == 0.0
    k = torch.as_tensor(stats.binom.rvs(n, 0.7, size=4000, random_state=0))
    cover = (R.clopper_pearson_lower(k, n, alpha) <= 0.7).double().mean()
    assert cover >= 1 - alpha - 0.01, "the bound holds with probability >= 1 - alpha"


def test_certify_on_a_linear_classifier_is_sound_and_nearly_tight():
    """For a linear base classifier the smoothed classifier is the same half-space
    and the exact certified radius is the distance to the boundary."""
    lin = _linear_two_class(5, 8)
    w, b = _margin_params(lin)
    x = torch.rand(40, 5, generator=torch_generator(9), dtype=D64)
    dist = (x @ w + b).abs() / w.norm()
    cert = R.certify(lin, x, sigma=0.5, n0=50, n=20_000, alpha=0.001,
                     num_classes=2, generator=torch_generator(10))
    ok = cert.prediction >= 0
    assert torch.equal(cert.prediction[ok], (x @ w + b > 0).long()[ok])
    assert (cert.radius[ok] <= dist[ok] + 1e-9).all(), "certificates are sound"
    cap = 0.5 * stats.norm.ppf(0.001 ** (1 / 20_000))  # the largest certifiable radius
    close = dist < 0.9 * cap
    assert ((dist - cert.radius)[ok & close] < 0.15).all(), "and nearly tight"


def test_noise_counts_and_certified_accuracy(data):
    net = mlp([64, 16, 10], generator=torch_generator(0))
    c = R.noise_counts(net, data.X_test[:7], 0.3, 123, 10, torch_generator(1))
    assert c.shape == (7, 10) and (c.sum(1) == 123).all()
    cert = R.Certificate(torch.tensor([0, 1, -1, 2]),
                         torch.tensor([0.5, 0.1, 0.0, 1.0]), torch.zeros(4))
    acc = R.certified_accuracy(cert, torch.tensor([0, 1, 1, 0]),
                               torch.tensor([0.0, 0.2, 0.6]))
    assert torch.allclose(acc, torch.tensor([0.5, 0.25, 0.0], dtype=D64))


# --- groups, shortcuts and label shift --------------------------------------------

def test_group_losses_and_accuracies_match_loops():
    g = torch_generator(0)
    logits = torch.randn(50, 3, generator=g, dtype=D64)
    y = torch.randint(3, (50,), generator=g)
    groups = torch.randint(4, (50,), generator=g)
    got = R.group_losses(logits, y, groups, 5)
    for k in range(4):
        m = groups == k
        assert math.isclose(float(got[k]), float(F.cross_entropy(logits[m], y[m])),
                            rel_tol=1e-12)
    assert float(got[4]) == 0.0
    with pytest.raises(ValueError, match="groups"):
        R.group_losses(logits, y, groups, 3)


def test_group_dro_weights_move_to_the_worst_group():
    net = nn.Linear(2, 2)
    with torch.no_grad():  # a fixed model that favours class 0 (no global RNG)
        net.weight.copy_(0.1 * torch.randn(2, 2, generator=torch_generator(2)))
        net.bias.copy_(torch.tensor([1.0, 0.0]))
    X = torch.randn(40, 2, generator=torch_generator(1))
    y = torch.zeros(40, dtype=torch.long)
    y[:10] = 1  # group 1 is the minority the linear model fits worst at first
    groups = (y == 1).long()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)  # frozen: q alone moves
    q = R.group_dro_train(net, opt, (X, y), groups, 2, epochs=50, eta_q=0.5)
    losses = R.group_losses(net(X), y, groups, 2)
    assert q[losses.argmax()] > 0.9


def test_shortcut_tools(data):
    y = R.binary_digits_label(data.y_train)
    a = R.spurious_attribute(y, 0.9, torch_generator(0))
    agree = (a == y).double().mean()
    n = len(y)
    assert abs(agree - 0.9) < 4 * math.sqrt(0.09 / n)
    Xs = R.plant_shortcut(data.X_train, a, 0.4)
    other = [i for i in range(64) if i not in R.SHORTCUT_PIXELS]
    assert torch.equal(Xs[:, other], data.X_train[:, other])
    assert torch.allclose(Xs[:, R.SHORTCUT_PIXELS[0]], 0.4 * a.float())
    assert torch.equal(R.groups_of(y, a).unique(), torch.arange(4))


def test_prior_shift_indices_follow_the_prior(data):
    prior = torch.tensor([0.5, 0.3] + [0.025] * 8)
    idx = R.prior_shift_indices(data.y_test, prior, 4000, torch_generator(0))
    freq = torch.bincount(data.y_test[idx], minlength=10).double() / 4000
    assert (freq - prior.double()).abs().max() < 0.03


def test_label_shift_correction_is_bayes_rule():
    """Two Gaussian classes: the exact posterior under the new prior is known."""
    x = torch.linspace(-3, 3, 25, dtype=D64)
    lik = torch.stack([torch.exp(-(x + 1) ** 2 / 2), torch.exp(-(x - 1) ** 2 / 2)], 1)
    qs, qt = torch.tensor([0.5, 0.5], dtype=D64), torch.tensor([0.9, 0.1], dtype=D64)
    post_s = lik * qs / (lik * qs).sum(1, keepdim=True)
    post_t = lik * qt / (lik * qt).sum(1, keepdim=True)
    assert torch.allclose(R.correct_label_shift(post_s, qs, qt), post_t, atol=1e-12)


def test_auroc_matches_sklearn_and_score_is_max_probability():
    from sklearn.metrics import roc_auc_score
    g = torch_generator(0)
    s_in = torch.randn(300, generator=g, dtype=D64) + 1
    s_out = torch.round(torch.randn(200, generator=g, dtype=D64) * 4) / 4  # ties
    s_in[:50] = s_out[:50]
    ref = roc_auc_score([1] * 300 + [0] * 200, torch.cat([s_in, s_out]).numpy())
    assert math.isclose(R.auroc(s_in, s_out), ref, rel_tol=1e-12)
    logits = torch.randn(7, 4, generator=g, dtype=D64)
    ref_msp = F.softmax(logits, 1).max(1).values
    assert torch.allclose(R.max_softmax_score(logits), ref_msp)
    with pytest.raises(ValueError, match="non-empty"):
        R.auroc(s_in, s_out[:0])


# --- extrapolation ----------------------------------------------------------------

def test_linearity_helpers():
    t = torch.linspace(0, 5, 11, dtype=D64)
    assert math.isclose(R.linearity_r2(t, 3 * t - 1), 1.0, abs_tol=1e-12)
    assert R.linearity_r2(t, (t - 2.5) ** 2) < 0.1
    assert torch.allclose(R.second_differences(2 * t + 1), torch.zeros(9, dtype=D64),
                          atol=1e-12)


def test_relu_network_is_exactly_affine_far_along_a_ray():
    """The proposition of the chapter: finitely many kinks, then affine."""
    net = mlp([3, 32, 32, 1], generator=torch_generator(0), dtype=D64)
    v = torch.tensor([0.3, -0.5, 0.8], dtype=D64)
    t = torch.linspace(1e3, 2e3, 50, dtype=D64)
    vals = R.along_ray(net, v, t)
    assert R.second_differences(vals).abs().max() < 1e-9 * vals.abs().max()


# --- the chapter's claims, small ---------------------------------------------------

def _train_std(data, seed=0):
    net = mlp([64, 128, 10], generator=torch_generator(seed))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    fit(net, F.cross_entropy, opt, data.train, epochs=30, batch_size=128,
        generator=torch_generator(1))
    return net


def test_claim_adversarial_training_buys_pgd_robustness(data):
    std = _train_std(data)
    adv = mlp([64, 128, 10], generator=torch_generator(0))
    opt = torch.optim.Adam(adv.parameters(), lr=1e-2)
    attack = functools.partial(R.pgd, eps=0.1, alpha=0.1 / 3, steps=5,
                               generator=torch_generator(3))
    losses = R.adversarial_train(adv, opt, data.train, attack, epochs=30,
                                 batch_size=128, generator=torch_generator(1))
    assert losses[-1] < losses[0]
    test = functools.partial(R.pgd, eps=0.1, alpha=0.025, steps=20,
                             generator=torch_generator(2))
    X, y = data.X_test, data.y_test
    assert R.robust_accuracy(std, X, y) > 0.95
    assert R.robust_accuracy(std, X, y, test) < 0.5
    robust_std = R.robust_accuracy(std, X, y, test)
    assert R.robust_accuracy(adv, X, y, test) > robust_std + 0.3


def _shortcut_flipped_acc(data, strength):
    y, yt = R.binary_digits_label(data.y_train), R.binary_digits_label(data.y_test)
    Xs = R.plant_shortcut(data.X_train, y, strength)  # rho = 1: a perfect shortcut
    net = mlp([64, 64, 2], generator=torch_generator(0))
    fit(net, F.cross_entropy, torch.optim.Adam(net.parameters(), lr=0.01),
        (Xs, y), epochs=150)
    return R.robust_accuracy(net, R.plant_shortcut(data.X_test, 1 - yt, strength), yt)


def test_claim_salient_shortcut_wins_faint_one_does_not(data):
    assert _shortcut_flipped_acc(data, 1.0) < 0.1
    assert _shortcut_flipped_acc(data, 0.02) > 0.85


@pytest.mark.slow
def test_claim_group_dro_beats_erm_on_worst_group_when_regularized(data):
    y, yt = R.binary_digits_label(data.y_train), R.binary_digits_label(data.y_test)
    a = R.spurious_attribute(y, 0.95, torch_generator(10))
    at = R.spurious_attribute(yt, 0.5, torch_generator(99))
    Xs = R.plant_shortcut(data.X_train, a, 0.5)
    Xt = R.plant_shortcut(data.X_test, at, 0.5)
    g, gt = R.groups_of(y, a), R.groups_of(yt, at)
    worst = {}
    for method in ("erm", "dro"):
        net = mlp([64, 64, 2], generator=torch_generator(0))
        opt = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-2)
        if method == "erm":
            fit(net, F.cross_entropy, opt, (Xs, y), epochs=200)
        else:
            R.group_dro_train(net, opt, (Xs, y), g, 4, epochs=200, eta_q=0.05)
        worst[method] = R.group_accuracies(net, Xt, yt, gt, 4).min().item()
    assert worst["dro"] > worst["erm"] + 0.2


def test_claim_relu_mlp_extrapolates_linearly_not_quadratically():
    X = 2 * torch.rand(256, 1, generator=torch_generator(3)) - 1
    net = mlp([1, 64, 64, 1], generator=torch_generator(0))
    fit(net, F.mse_loss, torch.optim.Adam(net.parameters(), lr=1e-2), (X, X ** 2),
        epochs=400)
    t = torch.linspace(2, 5, 31)
    vals = R.along_ray(net, torch.ones(1), t)
    assert R.linearity_r2(t, vals) > 0.99
    assert ((vals - t ** 2).abs() / t ** 2).mean() > 0.2


def test_claim_max_softmax_detects_mild_shift_but_not_quarter_turns(data):
    net = _train_std(data).eval()
    with torch.no_grad():
        s_in = R.max_softmax_score(net(data.X_test))
        s_rot20 = R.max_softmax_score(net(rotate_images(data.X_test, 20.0)))
        s_rot90 = R.max_softmax_score(net(rot90_images(data.X_test, 1)))
    assert R.auroc(s_in, s_rot20) > 0.75
    assert R.auroc(s_in, s_rot90) < 0.5, "more confident on rotated digits"


def test_arithmetic_task_and_relative_error_against_closed_forms():
    ops = [("add", lambda a, b: a + b), ("max", max), ("mul", lambda a, b: a * b)]
    for op, fn in ops:
        X, y = R.arithmetic_task(op, 50, 2.0, 4.0, torch_generator(0))
        assert X.shape == (50, 2) and y.shape == (50, 1)
        assert X.min() >= 2.0 and X.max() <= 4.0
        expect = torch.tensor([[fn(float(a), float(b))] for a, b in X.tolist()])
        assert torch.allclose(y, expect, atol=1e-6)
    t = torch.tensor([1.0, -2.0, 3.0])
    assert math.isclose(R.relative_error(t + 0.6, t), 0.6 / 2.0, rel_tol=1e-6)
    with pytest.raises(ValueError):
        R.arithmetic_task("div", 5)
    with pytest.raises(ValueError):
        R.relative_error(t, t[:2])


def test_claim_mlp_continues_addition_and_max_but_not_product():
    errs = {}
    for op in R.ARITHMETIC_OPS:
        X, y = R.arithmetic_task(op, 256, generator=torch_generator(20))
        Xf, yf = R.arithmetic_task(op, 512, 2.0, 4.0, torch_generator(30))
        net = mlp([2, 64, 1], generator=torch_generator(0))
        fit(net, F.mse_loss, torch.optim.Adam(net.parameters(), lr=1e-2), (X, y),
            epochs=300)
        with torch.no_grad():
            assert R.relative_error(net(X), y) < 0.05
            errs[op] = R.relative_error(net(Xf), yf)
    assert errs["add"] < 0.2 and errs["max"] < 0.2
    assert errs["mul"] > 3 * max(errs["add"], errs["max"])
