"""Tests for dlbook.rnn: the recurrent layers against torch.nn in float64
(forward and backward, state_dicts loaded across), backpropagation through
time against autograd, the scan against the loop, linear attention in its
three forms, the ABC grammar and checker, and the memory chapter's claims at
small size."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from dlbook import rnn
from dlbook.data import adding_problem

torch.set_num_threads(1)
DT = torch.float64
TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
OURS = {"rnn": rnn.RNN, "lstm": rnn.LSTM, "gru": rnn.GRU}


def _close(a, b, tol=1e-10):
    return (a - b).abs().max().item() < tol


def _flat(state):
    return list(state) if isinstance(state, tuple) else [state]


def _pair(cell, num_layers, batch_first=True, bias=True, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    ours = OURS[cell](3, 5, num_layers, bias=bias, batch_first=batch_first,
                      generator=g, dtype=DT, **kw)
    ref = TORCH[cell](3, 5, num_layers, bias=bias, batch_first=batch_first,
                      **kw).double()
    ref.load_state_dict(ours.state_dict())  # strict: names and shapes agree
    return ours, ref


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_layers_match_torch_forward_and_backward(cell, num_layers):
    ours, ref = _pair(cell, num_layers)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 9, 3, generator=g, dtype=DT, requires_grad=True)
    h0 = torch.randn(num_layers, 4, 5, generator=g, dtype=DT)
    hx = (h0, torch.randn_like(h0)) if cell == "lstm" else h0
    (y, s), (y_ref, s_ref) = ours(x, hx), ref(x, hx)
    assert y.shape == (4, 9, 5) and _close(y, y_ref)
    for a, b in zip(_flat(s), _flat(s_ref)):
        assert a.shape == (num_layers, 4, 5) and _close(a, b)
    u = torch.randn(y.shape, generator=g, dtype=DT)
    loss = (y * u).sum() + sum(t.sum() for t in _flat(s))
    loss_ref = (y_ref * u).sum() + sum(t.sum() for t in _flat(s_ref))
    ga = torch.autograd.grad(loss, [x, *ours.parameters()])
    gb = torch.autograd.grad(loss_ref, [x, *ref.parameters()])
    assert len(ga) == len(gb)
    for a, b in zip(ga, gb):
        assert _close(a, b)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_time_major_unbatched_and_no_bias(cell):
    ours, ref = _pair(cell, 1, batch_first=False, bias=False, seed=2)
    x = torch.randn(7, 3, dtype=DT)  # unbatched (L, H_in)
    (y, s), (y_ref, s_ref) = ours(x), ref(x)
    assert y.shape == (7, 5) and _close(y, y_ref)
    assert all(_close(a, b) for a, b in zip(_flat(s), _flat(s_ref)))
    xb = torch.randn(7, 2, 3, dtype=DT)  # (L, N, H_in)
    assert _close(ours(xb)[0], ref(xb)[0])
    assert not any("bias" in k for k in ours.state_dict())


def test_relu_rnn_and_parameter_layout():
    ours, ref = _pair("rnn", 1, nonlinearity="relu", seed=3)
    x = torch.randn(2, 6, 3, dtype=DT)
    assert _close(ours(x)[0], ref(x)[0])
    lstm = rnn.LSTM(3, 5, 2)
    shapes = {k: tuple(v.shape) for k, v in lstm.state_dict().items()}
    ref = nn.LSTM(3, 5, 2).state_dict()
    assert shapes == {k: tuple(v.shape) for k, v in ref.items()}
    assert shapes["weight_ih_l0"] == (20, 3) and shapes["weight_hh_l1"] == (20, 5)


def test_torch_weights_load_into_ours():
    ref = nn.GRU(3, 5, batch_first=True).double()
    ours = rnn.GRU(3, 5, batch_first=True, dtype=DT)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 5, 3, dtype=DT)
    assert _close(ours(x)[0], ref(x)[0])


def test_bad_input_fails_early():
    m = rnn.LSTM(3, 5, batch_first=True)
    with pytest.raises(ValueError, match="input must have shape"):
        m(torch.randn(2, 4, 7))
    with pytest.raises(ValueError, match="initial state"):
        m(torch.randn(2, 4, 3), (torch.zeros(1, 3, 5), torch.zeros(1, 3, 5)))
    with pytest.raises(ValueError, match="hidden_size"):
        rnn.GRU(3, 0)
    with pytest.raises(ValueError, match="nonlinearity"):
        rnn.RNN(3, 4, nonlinearity="sigmoid")


def test_forget_bias_sets_the_gate_and_initialization_is_seeded():
    a = rnn.LSTM(2, 4, 2, generator=torch.Generator().manual_seed(5))
    b = rnn.LSTM(2, 4, 2, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    bound = 1 / math.sqrt(4)
    assert all(p.abs().max() <= bound for p in a.parameters())
    rnn.set_forget_bias_(a, 1.0)
    for k in range(2):
        total = getattr(a, f"bias_ih_l{k}") + getattr(a, f"bias_hh_l{k}")
        assert torch.allclose(total[4:8], torch.ones(4))
        assert torch.equal(total[:4], (getattr(b, f"bias_ih_l{k}")
                                       + getattr(b, f"bias_hh_l{k}"))[:4])


def test_make_recurrent_backends_compute_the_same_function():
    for cell in ("rnn", "lstm", "gru"):
        ours = rnn.make_recurrent(cell, 2, 6,
                                  generator=torch.Generator().manual_seed(0))
        twin = rnn.make_recurrent(cell, 2, 6, backend="torch",
                                  generator=torch.Generator().manual_seed(0))
        assert isinstance(twin, TORCH[cell])
        x = torch.randn(3, 8, 2)
        assert _close(ours(x)[0], twin(x)[0], 1e-5)


def test_bptt_by_hand_matches_autograd():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, 12, 2, generator=g, dtype=DT)
    params = [torch.randn(5, 2, generator=g, dtype=DT, requires_grad=True),
              torch.randn(5, 5, generator=g, dtype=DT).mul(0.5).requires_grad_(),
              torch.randn(5, generator=g, dtype=DT, requires_grad=True),
              torch.randn(3, 5, generator=g, dtype=DT, requires_grad=True)]
    w_ih, w_hh, b, h0 = params
    go = torch.randn(3, 12, 5, generator=g, dtype=DT)
    hs, grads = rnn.rnn_bptt(x, h0.detach(), w_ih.detach(), w_hh.detach(),
                             b.detach(), go)
    ys = []
    h = h0
    for t in range(12):  # the unrolled graph, differentiated by autograd
        h = torch.tanh(x[:, t] @ w_ih.T + h @ w_hh.T + b)
        ys.append(h)
    y = torch.stack(ys, 1)
    auto = torch.autograd.grad((y * go).sum(), params)
    assert _close(hs, y)
    for name, a in zip(("weight_ih", "weight_hh", "bias", "h0"), auto):
        assert _close(grads[name], a)


def test_jacobian_norms_match_autograd_and_the_bound():
    W = rnn.scaled_orthogonal(6, 0.9, generator=torch.Generator().manual_seed(7))
    sv = torch.linalg.svdvals(W)
    assert torch.allclose(sv, torch.full((6,), 0.9, dtype=DT))
    norms = rnn.jacobian_norms(W, 10, generator=torch.Generator().manual_seed(8))
    lags = torch.arange(1, 11, dtype=DT)
    assert bool((norms <= 0.9 ** lags + 1e-12).all())  # the theorem's bound
    lin = rnn.jacobian_norms(W, 10, nonlinearity="linear")
    assert torch.allclose(lin, 0.9 ** lags)  # equality for a scaled isometry
    # oracle: autograd's Jacobian of h_T with respect to h_{T-k}
    g = torch.Generator().manual_seed(8)
    u = torch.randn(10, 6, generator=g, dtype=DT)
    hs = [torch.zeros(6, dtype=DT)]
    for t in range(10):
        hs.append(torch.tanh(W @ hs[-1] + u[t]))

    def h_T(h_start, k):
        h = h_start
        for t in range(10 - k, 10):
            h = torch.tanh(W @ h + u[t])
        return h

    for k in (1, 4, 10):
        J = torch.autograd.functional.jacobian(lambda h: h_T(h, k), hs[10 - k])
        assert abs(torch.linalg.matrix_norm(J, 2) - norms[k - 1]) < 1e-10


def test_gradient_vanishes_below_and_explodes_above_one_in_the_linear_case():
    g = torch.Generator().manual_seed(9)
    A = torch.randn(16, 16, generator=g, dtype=DT)
    A = A / torch.linalg.eigvals(A).abs().max()
    small = rnn.jacobian_norms(0.8 * A, 60, nonlinearity="linear")
    large = rnn.jacobian_norms(1.2 * A, 60, nonlinearity="linear")
    assert small[-1] < 1e-3 and large[-1] > 1e3
    # the growth rate tends to the spectral radius (Gelfand's formula)
    assert abs(large[-1] ** (1 / 60) - 1.2) < 0.1


@pytest.mark.parametrize("shape", [(3, 17, 4), (2, 3, 64, 5), (1, 1, 2)])
def test_scan_matches_sequential_loop(shape):
    g = torch.Generator().manual_seed(10)
    a = torch.rand(shape, generator=g, dtype=DT) * 1.1
    b = torch.randn(shape, generator=g, dtype=DT)
    h0 = torch.randn(shape[:-2] + shape[-1:], generator=g, dtype=DT)
    for init in (None, h0):
        assert _close(rnn.linear_recurrence_scan(a, b, init),
                      rnn.linear_recurrence(a, b, init), 1e-9)
    decay = torch.rand(shape[-1], generator=g, dtype=DT)  # time-invariant a
    assert _close(rnn.linear_recurrence_scan(decay, b),
                  rnn.linear_recurrence(decay, b))
    # closed form for a constant scalar decay: h_t = sum_s a^(t-s) b_s
    L = shape[-2]
    t = torch.arange(L, dtype=DT)
    M = torch.tril(0.7 ** (t[:, None] - t[None, :]).clamp(min=0))
    assert _close(rnn.linear_recurrence(torch.tensor(0.7, dtype=DT), b), M @ b)


def test_scan_gradients_match_the_loop():
    g = torch.Generator().manual_seed(11)
    a = torch.rand(2, 20, 3, generator=g, dtype=DT, requires_grad=True)
    b = torch.randn(2, 20, 3, generator=g, dtype=DT, requires_grad=True)
    u = torch.randn(2, 20, 3, generator=g, dtype=DT)
    ga = torch.autograd.grad((rnn.linear_recurrence_scan(a, b) * u).sum(), (a, b))
    gb = torch.autograd.grad((rnn.linear_recurrence(a, b) * u).sum(), (a, b))
    assert all(_close(x, y, 1e-9) for x, y in zip(ga, gb))
    with pytest.raises(ValueError, match="broadcast"):
        rnn.linear_recurrence_scan(torch.ones(4), torch.ones(2, 5, 3))


def test_causal_linear_attention_three_forms_agree():
    g = torch.Generator().manual_seed(12)
    q, k = (torch.randn(2, 15, 4, generator=g, dtype=DT) for _ in range(2))
    v = torch.randn(2, 15, 3, generator=g, dtype=DT)
    par = rnn.causal_linear_attention(q, k, v)
    for method in ("recurrent", "scan"):
        assert _close(par, rnn.causal_linear_attention(q, k, v, method=method), 1e-9)
    # causality: the output at t does not depend on inputs after t
    v2 = v.clone()
    v2[:, 10:] += 1.0
    assert _close(rnn.causal_linear_attention(q, k, v2)[:, :10], par[:, :10])
    # oracle: softmax-free attention with an explicit loop over prefixes
    fq, fk = rnn.elu_feature_map(q), rnn.elu_feature_map(k)
    t = 6
    w = fq[:, t:t + 1] @ fk[:, :t + 1].transpose(1, 2)
    ref = (w @ v[:, :t + 1]) / w.sum(-1, keepdim=True)
    assert _close(par[:, t], ref[:, 0], 1e-6)


def test_abc_grammar_corpus_parses_and_checker_catches_errors():
    tunes = rnn.abc_corpus(200, seed=3).split("\n\n")
    assert len(tunes) == 200
    scores = rnn.structure_scores(tunes)
    assert scores == {"parses": 1.0, "valid": 1.0, "bars_correct": 1.0}
    t = tunes[0]
    c = rnn.check_tune(t)
    assert c.valid and len(c.durations) == 8 and c.units in rnn.METERS.values()
    body_start = t.index("K:")
    body_start = t.index("\n", body_start) + 1
    broken_bar = t[:body_start] + "C" + t[body_start:]  # one extra eighth
    cb = rnn.check_tune(broken_bar)
    assert cb.parses and not cb.valid and cb.bars_correct == 7
    assert not rnn.check_tune(t.replace("L:1/8", "L:1/4")).parses
    assert not rnn.check_tune(t.replace("|]", "|")).parses
    assert not rnn.check_tune(t.replace("|", "|x", 1)).parses
    assert rnn.abc_corpus(5, seed=1) == rnn.abc_corpus(5, seed=1)
    assert rnn.abc_corpus(5, seed=1) != rnn.abc_corpus(5, seed=2)


def test_ngram_model_is_a_distribution_and_matches_counts():
    text = "abababababc" * 20
    m = rnn.NGramModel(text, order=3)
    for ctx in ("", "a", "ab", "zz"):
        p = m.prob(ctx)
        assert p.shape == (3,) and abs(p.sum() - 1) < 1e-12 and (p > 0).all()
    assert m.prob("ab").argmax() == m.index["a"]  # "ab" -> "a" mostly
    bpc = m.bits_per_char(text[:200])
    assert 0 < bpc < math.log2(3)
    s = m.sample("ab", 30, np.random.default_rng(0), stop="c")
    assert s.startswith("ab") and set(s) <= set("abc")


def test_char_windows_and_sampling_shapes():
    ids = torch.arange(50)
    X, Y = rnn.char_windows(ids, 10, 5)
    assert X.shape == Y.shape == (8, 10) and torch.equal(X[:, 1:], Y[:, :-1])
    vocab = rnn.models.CharVocab.from_text("X:|]abc\n")
    model = rnn.CharModel(len(vocab), 4, 8, generator=torch.Generator().manual_seed(0))
    out = rnn.sample_chars(model, vocab, "X:", 5, 20,
                           generator=torch.Generator().manual_seed(1))
    assert len(out) == 5 and all(s.startswith("X:") for s in out)
    assert all(len(s) <= 22 for s in out)


@pytest.mark.slow
def test_gating_beats_vanilla_rnn_on_the_adding_problem():
    """The chapter's claim at small size: within a fixed budget the GRU gets
    far below the constant predictor's MSE 1/6, the vanilla RNN does not."""
    kw = dict(length=30, hidden_size=16, n_train=1000, epochs=12, lr=2e-2)
    _, h_rnn = rnn.train_adding("rnn", **kw)
    _, h_gru = rnn.train_adding("gru", **kw)
    assert min(h_rnn["val_loss"]) > 0.1
    assert h_gru.final["val_loss"] < 0.05


def test_models_are_seeded_by_their_generator():
    def make(seed):
        return rnn.CharModel(7, 4, 8, generator=torch.Generator().manual_seed(seed))
    a, b, c = make(0), make(0), make(1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    r1 = rnn.SequenceRegressor("gru", 2, 4, generator=torch.Generator().manual_seed(3))
    r2 = rnn.SequenceRegressor("gru", 2, 4, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(r1.parameters(), r2.parameters()))


def test_forget_bias_slows_the_decay_of_the_gradient_at_initialization():
    """The chapter's claim: at init, a larger forget bias lets more gradient
    reach distant inputs; the vanilla RNN's gradient decays fastest."""
    def relative_gradient(cell, fb, lag=30, T=60):
        layer = rnn.make_recurrent(cell, 2, 16, forget_bias=fb,
                                   generator=torch.Generator().manual_seed(0))
        x = torch.randn(16, T, 2, generator=torch.Generator().manual_seed(1),
                        requires_grad=True)
        y, _ = layer(x)
        (gx,) = torch.autograd.grad(y[:, -1].sum(), x)
        norms = gx.norm(dim=-1).mean(0).flip(0)
        return (norms[lag] / norms[0]).item()

    r = [relative_gradient("lstm", fb) for fb in (0.0, 1.0, 3.0)]
    assert r[0] < r[1] < r[2]
    assert relative_gradient("rnn", None) < r[0]
    # the cell path decays like sigmoid(b_f) per step: check the order of magnitude
    assert r[2] > 0.1 * torch.sigmoid(torch.tensor(3.0)).item() ** 30


@pytest.mark.slow
def test_char_lstm_learns_bar_lengths_better_than_ngrams():
    """The chapter's claim at small size: a character LSTM gets more bars of
    sampled tunes right, and has lower validation bits per character, than
    a 5-gram model."""
    train, val = rnn.abc_corpus(300, seed=0), rnn.abc_corpus(30, seed=1)
    model, vocab, hist = rnn.train_char_model(train, val, hidden_size=64,
                                              epochs=8, lr=2e-2)
    samples = rnn.sample_chars(model, vocab, "X:", 60, 260, temperature=0.7,
                               generator=torch.Generator().manual_seed(0))
    ngram = rnn.NGramModel(train, order=5)
    rng = np.random.default_rng(0)
    ngram_samples = [ngram.sample("X:", 260, rng) for _ in range(60)]
    lstm_sc = rnn.structure_scores(samples)
    ngram_sc = rnn.structure_scores(ngram_samples)
    assert lstm_sc["bars_correct"] > ngram_sc["bars_correct"] + 0.1
    assert hist.final["val_bpc"] < ngram.bits_per_char(val)


def test_tanh_growth_rate_lies_below_the_bound_and_saturation_does_not_cap_it():
    """The chapter's reading of the figure: with tanh a scale a little above one
    still vanishes, a large scale still explodes, and every growth rate per
    step lies below log s (the bound)."""
    rates = {}
    for s in (1.1, 2.5):
        W = rnn.scaled_orthogonal(32, s, generator=torch.Generator().manual_seed(1))
        norms = rnn.jacobian_norms(W, 60, input_std=0.5,
                                   generator=torch.Generator().manual_seed(2))
        rates[s] = math.log(norms[-1]) / 60
        assert rates[s] < math.log(s)
    assert rates[1.1] < 0 < rates[2.5]


def test_adding_problem_baselines_are_one_sixth_and_one_twelfth():
    """Closed forms of the chapter's baselines: predicting 1 scores Var(U + V)
    = 1/6; knowing the second marked value scores Var(U) = 1/12."""
    X, y = adding_problem(20_000, 20, seed=3)
    assert X.shape == (20_000, 20, 2) and torch.equal(X[..., 1].sum(1),
                                                     torch.full((20_000,), 2.0))
    second = (X[..., 0] * X[..., 1])[:, 10:].sum(1)
    assert abs((y - 1).square().mean().item() - 1 / 6) < 0.01
    assert abs((y - second - 0.5).square().mean().item() - 1 / 12) < 0.005
