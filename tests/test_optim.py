"""Tests of dlbook.optim against torch.optim (float64) and the chapter's claims."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlbook import optim
from dlbook.seed import torch_generator

STEPS = 25
RTOL = 1e-12


def _problem(seed: int = 0):
    """A small float64 MLP regression: parameters, data and a loss closure."""
    g = torch_generator(seed)
    X = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = torch.randn(40, 2, generator=g, dtype=torch.float64)
    W1 = torch.randn(8, 5, generator=g, dtype=torch.float64) / 2
    b1 = torch.randn(8, generator=g, dtype=torch.float64) / 5
    W2 = torch.randn(2, 8, generator=g, dtype=torch.float64) / 3
    init = [W1, b1, W2]

    def loss(ps, batch):
        W1, b1, W2 = ps
        out = torch.tanh(X[batch] @ W1.T + b1) @ W2.T
        return ((out - y[batch]) ** 2).mean()

    return init, loss


def _run(make, steps: int = STEPS, groups: bool = False):
    init, loss = _problem()
    ps = [p.clone().requires_grad_(True) for p in init]
    params = ([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.003}]
              if groups else ps)
    opt = make(params)
    for k in range(steps):
        batch = torch.arange(40)[(k % 4) * 10:(k % 4) * 10 + 10]  # vary grads
        opt.zero_grad()
        loss(ps, batch).backward()
        opt.step()
    return [p.detach() for p in ps]


def _assert_same(ours, theirs, rtol=RTOL):
    for a, b in zip(ours, theirs):
        err = ((a - b).norm() / b.norm()).item()
        assert err < rtol, f"relative error {err:.2e}"


CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    ("SGD", dict(lr=0.002, momentum=0.9, nesterov=True, weight_decay=0.1,
                 maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.002, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.3)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.003, alpha=0.9, eps=1e-6)),
    ("RMSprop", dict(lr=0.003, centered=True)),
    ("RMSprop", dict(lr=0.003, momentum=0.9)),
    ("RMSprop", dict(lr=0.003, momentum=0.9, centered=True, weight_decay=0.1)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    ("Adagrad", dict(lr=0.01, weight_decay=0.1, maximize=True)),
]


@pytest.mark.parametrize("name,kw", CASES,
                         ids=[f"{n}-{'-'.join(kw) or 'default'}" for n, kw in CASES])
def test_matches_torch_optim(name, kw):
    lr = {} if "lr" in kw or name in {"Adam", "AdamW", "RMSprop", "Adagrad"} \
        else {"lr": 1e-3}
    ours = _run(lambda ps: getattr(optim, name)(ps, **lr, **kw))
    theirs = _run(lambda ps: getattr(torch.optim, name)(ps, **lr, **kw))
    moved = sum((a - b).norm() for a, b in zip(ours, _problem()[0]))
    assert moved > 1e-3  # the test is not vacuous: parameters changed
    _assert_same(ours, theirs)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_param_groups_match_torch(name):
    kw = {"lr": 0.02, "momentum": 0.9} if name == "SGD" else {"lr": 0.02}
    ours = _run(lambda ps: getattr(optim, name)(ps, **kw), groups=True)
    theirs = _run(lambda ps: getattr(torch.optim, name)(ps, **kw), groups=True)
    _assert_same(ours, theirs)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_defaults_match_torch(name):
    import inspect
    ours = inspect.signature(getattr(optim, name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    for arg, p in ours.items():
        if arg in {"params", "lr"} and name == "SGD":
            continue  # torch's SGD lr default changed across versions
        assert arg in theirs, arg
        assert p.default == theirs[arg].default, arg


def test_state_dict_round_trip_resumes_exactly():
    init, loss = _problem()

    def steps(opt, ps, ks):
        for k in ks:
            opt.zero_grad()
            loss(ps, torch.arange(40)[(k % 4) * 10:(k % 4) * 10 + 10]).backward()
            opt.step()

    ps = [p.clone().requires_grad_(True) for p in init]
    opt = optim.Adam(ps, lr=0.01, amsgrad=True)
    steps(opt, ps, range(20))
    ref = [p.detach().clone() for p in ps]
    ps = [p.clone().requires_grad_(True) for p in init]
    opt = optim.Adam(ps, lr=0.01, amsgrad=True)
    steps(opt, ps, range(10))
    saved, snapshot = opt.state_dict(), [p.detach().clone() for p in ps]
    ps2 = [p.clone().requires_grad_(True) for p in snapshot]
    opt2 = optim.Adam(ps2, lr=0.5)  # hyper-parameters come back too
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == 0.01
    steps(opt2, ps2, range(10, 20))
    _assert_same([p.detach() for p in ps2], ref)


def test_zero_grad_and_closure():
    w = torch.ones(3, requires_grad=True)
    opt = optim.SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert math.isclose(loss.item(), 3.0)
    assert torch.allclose(w.detach(), torch.full((3,), 0.8))
    opt.zero_grad(set_to_none=False)
    assert w.grad is not None and w.grad.abs().sum() == 0
    opt.zero_grad()
    assert w.grad is None
    opt.step()  # no gradient: nothing moves
    assert torch.allclose(w.detach(), torch.full((3,), 0.8))


@pytest.mark.parametrize("make,match", [
    (lambda w: optim.SGD([w], lr=-1.0), "lr"),
    (lambda w: optim.SGD([w], lr=0.1, nesterov=True), "nesterov"),
    (lambda w: optim.Adam([w], betas=(1.0, 0.9)), r"betas\[0\]"),
    (lambda w: optim.RMSprop([w], alpha=1.5), "alpha"),
    (lambda w: optim.Adagrad([w], eps=-1.0), "eps"),
    (lambda w: optim.Adam([]), "empty"),
    (lambda w: optim.Adam([{"params": [w]}, {"params": [w]}]), "two"),
])
def test_bad_arguments_fail_early(make, match):
    with pytest.raises(ValueError, match=match):
        make(torch.zeros(2, requires_grad=True))


def test_works_with_nn_module_and_repr():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = optim.AdamW(model.parameters(), lr=0.1)
    X, y = torch.randn(32, 3), torch.randn(32, 1)
    first = None
    for _ in range(50):
        opt.zero_grad()
        loss = ((model(X) - y) ** 2).mean()
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first
    assert "AdamW(lr=0.1" in repr(opt)


# --- claims of the chapter -------------------------------------------------

def _gd_quadratic(lams, eta, steps):
    x = torch.ones(len(lams), dtype=torch.float64)
    lam = torch.tensor(lams, dtype=torch.float64)
    losses = []
    for _ in range(steps):
        losses.append(0.5 * (lam * x * x).sum().item())
        x = x - eta * lam * x
    return losses


@pytest.mark.parametrize("factor,outcome", [
    (1.0, "converges"), (1.9, "converges"), (2.0, "stalls"), (2.1, "diverges")])
def test_gd_on_quadratic_threshold_two_over_L(factor, outcome):
    L = 10.0
    losses = _gd_quadratic([1.0, L], factor / L, 200)
    if outcome == "converges":
        assert losses[-1] < 1e-6 * losses[0]
    elif outcome == "stalls":  # the top mode keeps its amplitude
        assert math.isclose(losses[-1], 0.5 * L, rel_tol=1e-6)
    else:
        assert losses[-1] > 1e6 * losses[0]


def test_gd_convergence_bound_holds():
    """f(x_k) - f* <= ||x0 - x*||^2 / (2 eta k) for eta <= 1/L (convex, L-smooth)."""
    lams = [1.0 / (i + 1) ** 2 for i in range(50)]
    for eta in [1.0, 0.5]:
        losses = _gd_quadratic(lams, eta, 300)
        for k in range(1, 300):
            assert losses[k] <= len(lams) / (2 * eta * k) + 1e-12


def test_minibatch_variance_matches_finite_population_formula():
    g = torch_generator(0)
    G = torch.randn(200, 7, generator=g, dtype=torch.float64) + 3.0
    N = len(G)
    sigma2 = (G - G.mean(0)).pow(2).sum(1).mean().item()
    for B in [1, 10, 100]:
        est = optim.minibatch_gradient_variance(G, B, 3000, generator=g)
        exact = sigma2 / B * (N - B) / (N - 1)
        assert abs(est - exact) < 0.08 * exact
        est_r = optim.minibatch_gradient_variance(G, B, 3000, generator=g,
                                                  replace=True)
        assert abs(est_r - sigma2 / B) < 0.08 * sigma2 / B


def test_per_example_gradients_match_autograd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    X, y = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 2, 1, 1, 0])
    G = optim.per_example_gradients(model, nn.functional.cross_entropy, X, y)
    assert G.shape == (5, sum(p.numel() for p in model.parameters()))
    for i in range(5):
        model.zero_grad()
        nn.functional.cross_entropy(model(X[i:i + 1]), y[i:i + 1]).backward()
        ref = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        assert torch.allclose(G[i], ref, rtol=1e-10, atol=1e-12)
    # unbiasedness: their mean is the full-batch gradient
    model.zero_grad()
    nn.functional.cross_entropy(model(X), y).backward()
    full = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.allclose(G.mean(0), full, rtol=1e-10, atol=1e-12)


def test_l2_equals_decoupled_decay_for_sgd_not_for_adam():
    init, loss = _problem()

    def run(make, decay_by_hand=0.0):
        ps = [p.clone().requires_grad_(True) for p in init]
        opt = make(ps)
        for k in range(20):
            opt.zero_grad()
            loss(ps, torch.arange(40)).backward()
            if decay_by_hand:
                with torch.no_grad():
                    for p in ps:
                        p.mul_(1 - decay_by_hand)
            opt.step()
        return [p.detach() for p in ps]

    lr, wd = 0.05, 0.1
    l2 = run(lambda ps: optim.SGD(ps, lr=lr, weight_decay=wd))
    decoupled = run(lambda ps: optim.SGD(ps, lr=lr), decay_by_hand=lr * wd)
    _assert_same(l2, decoupled)
    adam_l2 = run(lambda ps: optim.Adam(ps, lr=lr, weight_decay=wd))
    adamw = run(lambda ps: optim.AdamW(ps, lr=lr, weight_decay=wd))
    gap = sum((a - b).norm() for a, b in zip(adam_l2, adamw)).item()
    assert gap > 1e-3


def test_adam_l2_decay_depends_on_gradient_scale_adamw_does_not():
    """Pure-noise gradients (scale 10 vs 0.01) plus weight decay, 400 runs."""
    g = torch_generator(1)
    lr, wd, T = 0.01, 0.1, 300
    scale = torch.tensor([10.0, 0.01], dtype=torch.float64)
    out = {}
    for name in ["Adam", "AdamW"]:
        theta = torch.ones(400, 2, dtype=torch.float64, requires_grad=True)
        opt = getattr(optim, name)([theta], lr=lr, weight_decay=wd)
        for _ in range(T):
            theta.grad = scale * torch.randn(400, 2, generator=g,
                                             dtype=torch.float64)
            opt.step()
        out[name] = theta.detach().mean(0)
    expected = (1 - lr * wd) ** T
    assert torch.allclose(out["AdamW"],
                          torch.full((2,), expected, dtype=torch.float64), atol=0.03)
    # noisy coordinate: v_hat ~ 100, so the decay per step is lr * wd / 10
    assert abs(out["Adam"][0] - (1 - T * lr * wd / 10)) < 0.03
    assert out["Adam"][0] > expected + 0.15  # decays far less than AdamW's
    assert out["Adam"][1] < 0.1  # quiet coordinate: driven to zero at rate lr


def test_adam_first_step_has_size_lr():
    """Bias correction makes |theta_1 - theta_0| = lr |g| / (|g| + eps) ~ lr."""
    for scale in [1e-4, 1.0, 1e4]:
        w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        opt = optim.Adam([w], lr=0.01)
        w.grad = scale * torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
        opt.step()
        assert torch.allclose(w.detach().abs(), torch.full((3,), 0.01,
                                                      dtype=torch.float64), rtol=1e-3)


# --- the SGD theorems: RegressionObjective and sgd_paths -------------------------

def _regression_data(n: int = 120, P: int = 6, seed: int = 0):
    g = torch_generator(seed)
    X = torch.randn(n, P, generator=g, dtype=torch.float64)
    y = X @ torch.randn(P, generator=g, dtype=torch.float64) \
        + torch.randn(n, generator=g, dtype=torch.float64)
    return X, y


@pytest.mark.parametrize("loss,ridge", [("squared", 0.0), ("squared", 0.3),
                                        ("geman-mcclure", 0.0)])
def test_regression_objective_matches_autograd(loss, ridge):
    X, y = _regression_data()
    obj = optim.RegressionObjective(X, y, loss, ridge=ridge)
    W = torch.randn(3, X.shape[1], generator=torch_generator(1),
                    dtype=torch.float64, requires_grad=True)

    def phi(r):  # an independent transcription of the two losses
        return 0.5 * r**2 if loss == "squared" else 0.5 * r**2 / (1 + r**2)

    per_example = phi(W @ X.T - y) + 0.5 * ridge * (W**2).sum(1, keepdim=True)
    f = per_example.mean(1)
    assert torch.allclose(obj.value(W.detach()), f.detach(), rtol=1e-12)
    (grad,) = torch.autograd.grad(f.sum(), W, retain_graph=True)
    assert torch.allclose(obj.gradient(W.detach()), grad, rtol=1e-10)
    # mini-batch gradient = mean of autograd per-example gradients on the batch
    idx = torch.randint(len(y), (3, 7), generator=torch_generator(2))
    g_batch = obj.gradient(W.detach(), idx)
    for r in range(3):
        rows = [torch.autograd.grad(per_example[r, i], W, retain_graph=True)[0][r]
                for i in idx[r]]
        assert torch.allclose(g_batch[r], torch.stack(rows).mean(0), rtol=1e-10)
    # sigma^2 = spread of all n per-example gradients around their mean
    G = torch.stack([torch.autograd.grad(per_example[0, i], W, retain_graph=True)
                     [0][0] for i in range(len(y))])
    spread = (G - G.mean(0)).pow(2).sum(1).mean()
    assert torch.isclose(obj.gradient_variance(W.detach())[0], spread, rtol=1e-9)


def test_regression_objective_is_L_smooth_and_robust_loss_is_not_convex():
    X, y = _regression_data()
    for loss in ["squared", "geman-mcclure"]:
        obj = optim.RegressionObjective(X, y, loss, ridge=0.1)
        L = obj.smoothness()
        A = 3 * torch.randn(200, X.shape[1], generator=torch_generator(3),
                            dtype=torch.float64)
        Bm = A + torch.randn(A.shape, generator=torch_generator(4),
                             dtype=torch.float64)
        ratio = ((obj.gradient(A) - obj.gradient(Bm)).norm(dim=1)
                 / (A - Bm).norm(dim=1))
        assert ratio.max() <= L * (1 + 1e-12)
    robust = optim.RegressionObjective(X, y, "geman-mcclure")
    w = 5 * torch.ones(X.shape[1], dtype=torch.float64)
    H = torch.autograd.functional.hessian(lambda v: robust.value(v[None])[0], w)
    assert torch.linalg.eigvalsh(H)[0] < 0  # negative curvature: not convex


def test_sgd_paths_obey_the_two_theorems_small():
    """The chapter's claims at small size: both bounds hold with the measured
    variance, and the PL noise floor falls like 1/B."""
    X, y = _regression_data(n=200, P=5)
    ridge = optim.RegressionObjective(X, y, "squared", ridge=0.5)
    H = X.T @ X / len(y) + 0.5 * torch.eye(5, dtype=torch.float64)
    mu, L = torch.linalg.eigvalsh(H)[0].item(), ridge.smoothness()
    w_star = torch.linalg.solve(H, X.T @ y / len(y))
    f_star = ridge.value(w_star[None]).item()
    w0 = torch.zeros(5, dtype=torch.float64)
    gap0 = ridge.value(w0[None]).item() - f_star
    eta, floors = 0.25 / L, {}
    for B in [1, 16]:
        p = optim.sgd_paths(ridge, w0, lr=eta, batch_size=B, steps=400, runs=200,
                            generator=torch_generator(B), every=4)
        s2 = p["variance"].max().item()
        gap = p["value"].mean(1) - f_star
        bound = (1 - eta * mu) ** p["step"].double() * gap0 \
            + eta * L * s2 / (2 * mu * B)
        assert torch.all(gap <= bound)
        floors[B] = gap[-25:].mean().item()
    assert 6 < floors[1] / floors[16] < 40
    robust = optim.RegressionObjective(X, y, "geman-mcclure")
    Lg, delta, T = robust.smoothness(), robust.value(w0[None]).item(), 200
    for B in [1, 8]:
        p = optim.sgd_paths(robust, w0, lr=1 / Lg, batch_size=B, steps=T, runs=40,
                            generator=torch_generator(10 + B))
        avg = p["grad_sq"][:-1].mean().item()
        assert avg <= 2 * delta * Lg / T + p["variance"].max().item() / B


def test_sgd_paths_validates_and_is_reproducible():
    X, y = _regression_data()
    obj = optim.RegressionObjective(X, y)
    w0 = torch.zeros(X.shape[1], dtype=torch.float64)
    a = optim.sgd_paths(obj, w0, lr=0.01, batch_size=4, steps=10, runs=2,
                        generator=torch_generator(0), every=3)
    b = optim.sgd_paths(obj, w0, lr=0.01, batch_size=4, steps=10, runs=2,
                        generator=torch_generator(0), every=3)
    assert a["step"].tolist() == [0, 3, 6, 9, 10]
    assert torch.equal(a["value"], b["value"])
    with pytest.raises(ValueError, match="batch_size"):
        optim.sgd_paths(obj, w0, lr=0.01, batch_size=0, steps=10, runs=2)
    with pytest.raises(ValueError, match="loss must be"):
        optim.RegressionObjective(X, y, "hinge")
    with pytest.raises(ValueError, match="need X"):
        optim.RegressionObjective(X, y[:-1])


def test_nesterov_schedule_obeys_its_bound_and_beats_gd():
    """beta_k = (k-1)/(k+2): f(x_k) - f* <= 2 L ||x0 - x*||^2 / (k+1)^2."""
    X, y = _regression_data(n=60, P=20)
    X = X * torch.linspace(0.05, 1.0, 20, dtype=torch.float64)  # ill-conditioned
    n = len(y)
    L = torch.linalg.eigvalsh(X.T @ X / n)[-1].item()
    w_star = torch.linalg.lstsq(X, y[:, None]).solution[:, 0]

    def f(w):
        return 0.5 * ((X @ w - y) ** 2).mean().item()

    def grad(w):
        return X.T @ (X @ w - y) / n

    f_star, r2 = f(w_star), w_star.norm().item() ** 2
    x_prev = x = w_gd = torch.zeros(20, dtype=torch.float64)
    for k in range(1, 401):
        y_k = x + (k - 2) / (k + 1) * (x - x_prev)
        x_prev, x = x, y_k - grad(y_k) / L
        w_gd = w_gd - grad(w_gd) / L
        assert f(x) - f_star <= 2 * L * r2 / (k + 1) ** 2 * (1 + 1e-9)
    assert f(x) - f_star < 0.2 * (f(w_gd) - f_star)


def test_sgd_noise_floor_matches_local_prediction():
    """Near the minimizer, E f - f* -> eta sigma^2(theta*) / (4B) for small eta."""
    X, y = _regression_data(n=200, P=5)
    ridge = optim.RegressionObjective(X, y, "squared", ridge=0.5)
    H = X.T @ X / len(y) + 0.5 * torch.eye(5, dtype=torch.float64)
    w_star = torch.linalg.solve(H, X.T @ y / len(y))
    f_star = ridge.value(w_star[None]).item()
    s2_star = ridge.gradient_variance(w_star[None]).item()
    eta = 0.1 / ridge.smoothness()
    for B in [1, 4]:
        p = optim.sgd_paths(ridge, w_star, lr=eta, batch_size=B, steps=600,
                            runs=400, generator=torch_generator(20 + B))
        floor = (p["value"][100:].mean() - f_star).item()
        assert abs(floor / (eta * s2_star / (4 * B)) - 1) < 0.2
