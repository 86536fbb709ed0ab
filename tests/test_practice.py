"""Tests of dlbook.practice: normalization layers against torch in float64,
the checklist functions against closed forms and scipy, and the chapter's key
claims rerun at small size."""
from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch import nn

from dlbook import practice as P
from dlbook.data import digits
from dlbook.nn import init_, mlp
from dlbook.seed import torch_generator
from dlbook.train import accuracy, evaluate, fit

F = nn.functional
torch.set_num_threads(1)
D64 = torch.float64


@pytest.fixture(scope="module")
def data():
    return digits(seed=0, val_size=0.2)


# --- normalization layers against torch ----------------------------------------

def _randomize_affine(m: nn.Module, seed: int) -> None:
    g = torch_generator(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("shape", [(16, 5), (6, 5, 4)])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batchnorm_matches_torch_train_and_eval(shape, momentum):
    ours = P.BatchNorm1d(5, momentum=momentum, dtype=D64)
    _randomize_affine(ours, 0)
    ref = nn.BatchNorm1d(5, momentum=momentum, dtype=D64)
    ref.load_state_dict(ours.state_dict())  # same keys, loadable into torch
    g = torch_generator(1)
    for _ in range(4):  # training mode, forward and backward
        x = (3 * torch.randn(shape, generator=g, dtype=D64) + 2).requires_grad_()
        cot = torch.randn(shape, generator=g, dtype=D64)
        ya, yb = ours(x), ref(x)
        ga = torch.autograd.grad((ya * cot).sum(), [x, *ours.parameters()])
        gb = torch.autograd.grad((yb * cot).sum(), [x, *ref.parameters()])
        assert torch.allclose(ya, yb, atol=1e-12)
        for a, b in zip(ga, gb):
            assert torch.allclose(a, b, atol=1e-10)
    for k, v in ref.state_dict().items():  # running statistics, unbiased var
        assert torch.allclose(ours.state_dict()[k].double(), v.double(), atol=1e-12), k
    ours.eval(), ref.eval()
    x = torch.randn(shape, generator=g, dtype=D64).requires_grad_()
    ya, yb = ours(x), ref(x)
    assert torch.allclose(ya, yb, atol=1e-12)
    ga, = torch.autograd.grad(ya.sum(), x)
    gb, = torch.autograd.grad(yb.sum(), x)
    assert torch.allclose(ga, gb, atol=1e-12)


def test_batchnorm_without_affine_or_running_stats_matches_torch():
    ours = P.BatchNorm1d(3, affine=False, track_running_stats=False, dtype=D64)
    ref = nn.BatchNorm1d(3, affine=False, track_running_stats=False, dtype=D64)
    assert list(ours.state_dict()) == list(ref.state_dict()) == []
    x = torch.randn(10, 3, generator=torch_generator(0), dtype=D64)
    ours.eval(), ref.eval()
    assert torch.allclose(ours(x), ref(x), atol=1e-12)


def test_batchnorm_state_dict_keys_and_bad_input():
    assert list(P.BatchNorm1d(4).state_dict()) == list(nn.BatchNorm1d(4).state_dict())
    with pytest.raises(ValueError, match="more than one value"):
        P.BatchNorm1d(4)(torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        P.BatchNorm1d(4)(torch.randn(3, 5))


@pytest.mark.parametrize("shape,normalized", [((7, 6), 6), ((3, 4, 5), (4, 5))])
def test_layernorm_matches_torch(shape, normalized):
    ours = P.LayerNorm(normalized, dtype=D64)
    _randomize_affine(ours, 2)
    ref = nn.LayerNorm(normalized, dtype=D64)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(shape, generator=torch_generator(3), dtype=D64).requires_grad_()
    cot = torch.randn(shape, generator=torch_generator(4), dtype=D64)
    for mode in (True, False):
        ours.train(mode), ref.train(mode)
        ya, yb = ours(x), ref(x)
        assert torch.allclose(ya, yb, atol=1e-12)
        ga = torch.autograd.grad((ya * cot).sum(), [x, *ours.parameters()])
        gb = torch.autograd.grad((yb * cot).sum(), [x, *ref.parameters()])
        for a, b in zip(ga, gb):
            assert torch.allclose(a, b, atol=1e-10)
    with pytest.raises(ValueError, match="last dims"):
        ours(torch.randn(3, 2, dtype=D64))


def test_hand_written_backward_passes_gradcheck_and_a_bug_fails():
    x = torch.randn(6, 3, generator=torch_generator(0), dtype=D64)
    assert P.module_gradcheck(P.BatchNorm1d(3), x)
    assert P.module_gradcheck(P.LayerNorm(3), x)

    class Buggy(P.BatchNormFunction):
        @staticmethod
        def backward(ctx, g):  # forgets the x_hat projection
            x_hat, s, w = ctx.saved_tensors
            gh = g * w
            return (gh - gh.mean(0)) / s, (g * x_hat).sum(0), g.sum(0), None

    xs = x.clone().requires_grad_()
    w = torch.ones(3, dtype=D64, requires_grad=True)
    b = torch.zeros(3, dtype=D64, requires_grad=True)
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        torch.autograd.gradcheck(lambda *a: Buggy.apply(*a, 1e-5), (xs, w, b))


def test_normalized_mlp_structure():
    net = P.normalized_mlp([4, 8, 8, 3], norm="batch", generator=torch_generator(0))
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear"]
    assert net[0].bias is None and net[-1].bias is not None
    with pytest.raises(ValueError, match="norm"):
        P.normalized_mlp([4, 3], norm="group")


# --- scale invariance ---------------------------------------------------------------

def _bn_layer_loss(W, X, y, head):
    z = P.batch_norm_train(X @ W.T, torch.ones(W.shape[0], dtype=D64),
                           torch.zeros(W.shape[0], dtype=D64), eps=0.0)
    return F.cross_entropy(torch.relu(z) @ head.T, y)


def test_scale_invariance_gradient_orthogonal_and_inverse_scaling(data):
    g = torch_generator(0)
    X, y = data.X_train[:64].double(), data.y_train[:64]
    W = torch.randn(16, 64, generator=g, dtype=D64)
    head = torch.randn(10, 16, generator=g, dtype=D64)
    grads = {}
    for alpha in (0.1, 1.0, 10.0):
        Wa = (alpha * W).requires_grad_()
        loss = _bn_layer_loss(Wa, X, y, head)
        grads[alpha], = torch.autograd.grad(loss, Wa)
        # each row's gradient is orthogonal to that row (per-unit invariance)
        dots = (grads[alpha] * Wa.detach()).sum(1)
        assert dots.abs().max() < 1e-10 * grads[alpha].norm() * Wa.norm()
    assert torch.allclose(10 * grads[10.0], grads[1.0], rtol=1e-8, atol=1e-12)
    assert torch.allclose(0.1 * grads[0.1], grads[1.0], rtol=1e-8, atol=1e-12)


# --- initialization -------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["lecun", "glorot", "he", "pytorch"])
def test_weight_variance_matches_dlbook_nn(scheme):
    layer = nn.Linear(300, 200, dtype=D64)
    P_var = P.weight_variance(scheme, 300, 200)
    from dlbook.nn import init_layer_
    init_layer_(layer, scheme, generator=torch_generator(0))
    assert abs(layer.weight.var().item() / P_var - 1) < 0.02


def test_predicted_second_moments_closed_form():
    q = P.predicted_second_moments([10, 20, 20, 5], "he", input_moment=2.0)
    # q1 = n0 * (2 / n0) * m = 2 m; then He keeps it: 20 * (2/20) / 2 = 1
    assert q == pytest.approx([4.0, 4.0, 4.0])
    q = P.predicted_second_moments([10, 20, 20], "lecun", 1.0, activation="linear")
    assert q == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="scheme"):
        P.weight_variance("xavier", 3, 3)


@pytest.mark.parametrize("scheme,rate", [("he", 1.0), ("lecun", 0.5)])
def test_variance_propagation_claim_through_depth(scheme, rate):
    """The chapter's claim: E[z_l^2] (expectation over the weights) follows
    the recursion, geometric in l. The mean over many networks must match
    the prediction within four standard errors at every layer."""
    X = torch.randn(64, 64, generator=torch_generator(0), dtype=D64)
    sizes = [64] + [64] * 8
    pred = torch.tensor(P.predicted_second_moments(sizes, scheme,
                                                   X.pow(2).mean().item()))
    ratios = torch.stack([
        torch.tensor(P.second_moments(
            mlp(sizes, init=scheme, generator=torch_generator(s), dtype=D64), X))
        / pred for s in range(300)])
    se = ratios.std(0) / math.sqrt(len(ratios))
    assert torch.all((ratios.mean(0) - 1).abs() < 4 * se + 1e-3)
    assert P.geometric_rate(pred.tolist()) == pytest.approx(rate, rel=1e-9)
    assert P.geometric_rate(ratios.mean(0) * pred) == pytest.approx(rate, rel=0.05)


def test_gradient_moments_vanish_backward_under_lecun():
    X = torch.randn(128, 64, generator=torch_generator(0), dtype=D64)
    y = torch.randint(10, (128,), generator=torch_generator(1))
    net = mlp([64] + [128] * 15 + [10], init="lecun", generator=torch_generator(2),
              dtype=D64)
    g = P.gradient_second_moments(net, X, y, F.cross_entropy)
    # moving one layer towards the input multiplies by about n v / 2 = 1/2
    assert P.geometric_rate(g[1:-1]) == pytest.approx(2.0, rel=0.15)


def test_mean_cosine_similarity():
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert P.mean_cosine_similarity(h) == pytest.approx(1 / 3)
    u = torch.randn(500, 50, generator=torch_generator(0))
    assert abs(P.mean_cosine_similarity(u)) < 0.01


# --- the checklist -----------------------------------------------------------------

def test_initial_loss_is_log_c_and_its_expansion(data):
    net = mlp([64, 64, 10], init="zero-output", generator=torch_generator(0))
    assert P.initial_loss(net, F.cross_entropy, data.train) == pytest.approx(
        math.log(10), abs=1e-6)
    g = torch_generator(1)
    z = 0.1 * torch.randn(4000, 10, generator=g, dtype=D64)
    y = torch.randint(10, (4000,), generator=g)
    measured = F.cross_entropy(z, y).item()
    assert measured == pytest.approx(P.predicted_initial_loss(z), abs=3e-3)


def test_t_interval_matches_scipy():
    v = [0.91, 0.93, 0.95, 0.92, 0.96]
    mean, half = P.t_interval(v, 0.9)
    lo, hi = stats.t.interval(0.9, df=4, loc=sum(v) / 5, scale=stats.sem(v))
    assert mean - half == pytest.approx(lo) and mean + half == pytest.approx(hi)
    with pytest.raises(ValueError, match="two"):
        P.t_interval([1.0])


def test_cross_split_duplicates():
    a = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    b = torch.tensor([[2.0, 3.0], [4.0, 5.0], [0.0, 1.0]])
    assert P.cross_split_duplicates(a, b) == 2


def test_update_ratio_callback(data):
    net = mlp([64, 16, 10], generator=torch_generator(0))
    w0 = [net[0].weight.detach().clone(), net[2].weight.detach().clone()]
    cb = P.UpdateRatio(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    h = fit(net, F.cross_entropy, opt, data.train, epochs=1, callback=cb)
    expect = [((net[i].weight.detach() - w).norm() / w.norm()).item()
              for i, w in zip((0, 2), w0)]
    assert [r[0] for r in cb.ratios] == pytest.approx(expect, rel=1e-6)
    assert h["update_ratio"][0] == pytest.approx(sorted(expect)[0], rel=1e-6)
    fit(net, F.cross_entropy, opt, data.train, epochs=1, callback=cb)
    assert len(cb.ratios[0]) == 2 and cb.ratios[0][1] > 0


def test_overfit_one_batch_and_its_failures(data):
    batch = (data.X_train[:32], data.y_train[:32])
    ok = P.overfit_batch(mlp([64, 64, 10], generator=torch_generator(0)),
                         F.cross_entropy, batch, steps=200)
    assert ok.final["train_loss"] < 0.01
    probs = P.overfit_batch(mlp([64, 64, 10], generator=torch_generator(0)),
                            P.cross_entropy_on_probabilities, batch, steps=200)
    assert probs.final["train_loss"] > P.probability_loss_floor(10)
    shuffled = (batch[0], P.shuffle_labels(batch[1], torch_generator(1)))
    mem = P.overfit_batch(mlp([64, 64, 10], generator=torch_generator(0)),
                          F.cross_entropy, shuffled, steps=200)
    assert mem.final["train_loss"] < 0.05  # one batch is memorized anyway


# --- bugs -------------------------------------------------------------------------------

def test_probability_loss_floor_is_the_infimum():
    c = 10
    z = torch.full((1, c), -1e4)
    z[0, 3] = 1e4  # the softmax is one-hot: the best the buggy loss can do
    got = P.cross_entropy_on_probabilities(z, torch.tensor([3])).item()
    assert got == pytest.approx(P.probability_loss_floor(c), rel=1e-6)
    r = torch.randn(200, c, generator=torch_generator(0))
    y = torch.randint(c, (200,), generator=torch_generator(1))
    losses = F.cross_entropy(F.softmax(r, 1), y, reduction="none")
    assert losses.min().item() > P.probability_loss_floor(c)


def test_wrong_axis_loss_starts_at_log_batch_size():
    z = torch.zeros(32, 10)
    y = torch.arange(32) % 10
    assert P.cross_entropy_wrong_axis(z, y).item() == pytest.approx(math.log(32))
    assert F.cross_entropy(z, y).item() == pytest.approx(math.log(10))


def test_index_leak_and_train_mode_evaluation(data):
    X, y = data.X_train[:100], data.y_train[:100]
    XL, yL = P.index_leak(X, y)
    assert XL.shape == (100, 65) and torch.equal(yL, y.sort(stable=True).values)
    assert torch.all(XL[1:, -1] >= XL[:-1, -1])  # id increases with the label
    net = P.normalized_mlp([64, 32, 10], generator=torch_generator(0))
    net.eval()
    before = net[1].running_mean.clone()
    P.evaluate_in_train_mode(net, F.cross_entropy, (X, y), {"acc": accuracy})
    assert net.training and not torch.equal(before, net[1].running_mean)


def test_lr_range_test_increases_geometrically_and_stops(data):
    net = mlp([64, 32, 10], generator=torch_generator(0))
    opt = torch.optim.SGD(net.parameters(), lr=1.0, momentum=0.9)
    rt = P.lr_range_test(net, F.cross_entropy, opt, data.train, lr_min=1e-3,
                         lr_max=100.0, steps=120, batch_size=32,
                         generator=torch_generator(0))
    ratios = [b / a for a, b in zip(rt.lrs[:-1], rt.lrs[1:])]
    assert max(ratios) == pytest.approx(min(ratios)) and ratios[0] > 1
    assert len(rt.lrs) < 120  # the loss blew up before lr_max
    assert 1e-3 < rt.suggestion() < rt.lr_at_minimum < 100
    with pytest.raises(ValueError, match="lr_min"):
        P.lr_range_test(net, F.cross_entropy, opt, data.train, lr_min=1.0,
                        lr_max=0.1, steps=10, batch_size=32)


# --- key claims of the chapter at small size -----------------------------------------

@pytest.mark.slow
def test_claim_deep_net_trains_with_batchnorm_not_without(data):
    deep = [64] + [64] * 20 + [10]
    accs = {}
    for name, make in [("plain", lambda: mlp(deep, generator=torch_generator(0))),
                       ("batch", lambda: P.normalized_mlp(
                           deep, "batch", generator=torch_generator(0)))]:
        net = make()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        fit(net, F.cross_entropy, opt, data.train, epochs=6, batch_size=64,
            generator=torch_generator(0))
        accs[name] = evaluate(net, F.cross_entropy, data.val, {"acc": accuracy})["acc"]
    assert accs["plain"] < 0.2 and accs["batch"] > 0.7


def test_claim_forgotten_eval_with_batchnorm_on_sorted_batches(data):
    net = P.normalized_mlp([64, 64, 10], generator=torch_generator(0))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    fit(net, F.cross_entropy, opt, data.train, epochs=5, batch_size=32,
        generator=torch_generator(0))
    order = torch.argsort(data.y_test)
    sorted_test = (data.X_test[order], data.y_test[order])
    good = evaluate(net, F.cross_entropy, sorted_test, {"acc": accuracy})["acc"]
    bad = P.evaluate_in_train_mode(net, F.cross_entropy, sorted_test,
                                   {"acc": accuracy})["acc"]
    assert good > 0.9 and bad < good - 0.2


@pytest.mark.slow
def test_claim_layernorm_failure_is_a_learning_rate_artefact(data):
    """The chapter's reading of the LN run: at BN's rate (0.01) and at 0.1 the
    20-layer LN network ends at chance; at 0.001, with Adam, or with He's
    initialization (six times the weight variance, so a sixth of the effective
    rate of every scale-invariant layer) it trains."""
    deep = [64] + [64] * 20 + [10]

    def run(lr, init="pytorch", adam=False):
        net = P.normalized_mlp(deep, "layer", init=init, generator=torch_generator(0))
        opt = (torch.optim.Adam(net.parameters(), lr=lr) if adam else
               torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9))
        fit(net, F.cross_entropy, opt, data.train, epochs=8, batch_size=64,
            generator=torch_generator(0))
        return evaluate(net, F.cross_entropy, data.val, {"acc": accuracy})["acc"]

    assert run(0.01) < 0.2 and run(0.1) < 0.2
    assert run(0.001) > 0.5
    assert run(1e-3, adam=True) > 0.5
    assert run(0.01, init="he") > 0.4


def test_paired_interval_is_shorter_when_seeds_are_shared():
    """Seed noise shared by two configurations cancels in the per-seed
    differences: the paired t-interval (the chapter's schedule comparison) is
    much shorter than the unpaired ones, and matches scipy's paired test."""
    g = torch_generator(0)
    seed_effect = torch.randn(6, generator=g, dtype=D64)
    a = (1.0 + seed_effect + 0.01 * torch.randn(6, generator=g, dtype=D64)).tolist()
    b = (0.9 + seed_effect + 0.01 * torch.randn(6, generator=g, dtype=D64)).tolist()
    diff = [x - y for x, y in zip(a, b)]
    m, half = P.t_interval(diff)
    assert half < 0.1 * P.t_interval(a)[1]
    assert m - half > 0  # the paired interval resolves the difference
    assert P.t_interval(b)[0] + P.t_interval(b)[1] > P.t_interval(a)[0] - P.t_interval(a)[1]
    p = stats.ttest_rel(a, b).pvalue
    assert p < 0.05
