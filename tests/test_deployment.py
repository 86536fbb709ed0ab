"""Tests of dlbook.deployment (chapter deployment): oracles from scipy,
scikit-learn, closed forms and the earlier chapters' code, and the chapter's
claims rerun at small size."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from scipy.spatial.distance import pdist
from sklearn.metrics import confusion_matrix

from dlbook import deployment as D
from dlbook.generative.metrics import mmd2, mmd_permutation_test
from dlbook.seed import torch_generator

torch.set_num_threads(1)


# --- shift -----------------------------------------------------------------

def test_batched_permutation_test_equals_the_loop():
    g = torch_generator(0)
    x = torch.randn(25, 3, generator=g, dtype=torch.float64)
    y = torch.randn(35, 3, generator=g, dtype=torch.float64) + 0.3
    fast = D.mmd_permutation_pvalue(x, y, 1.2, 60, generator=torch_generator(1))
    loop = mmd_permutation_test(x, y, 1.2, 60, generator=torch_generator(1))
    assert fast == pytest.approx(loop, abs=1e-12)


def test_batched_statistic_equals_mmd2():
    g = torch_generator(2)
    z = torch.randn(30, 4, generator=g, dtype=torch.float64)
    k = torch.exp(-torch.cdist(z, z) ** 2 / 2)
    a = torch.zeros(1, 30, dtype=torch.float64)
    perm = torch.randperm(30, generator=g)
    a[0, perm[:12]] = 1
    stat = D.shift._unbiased_stats(k, a)[0]
    ref = mmd2(z[perm[:12]], z[perm[12:]], 1.0)
    assert stat.item() == pytest.approx(ref.item(), rel=1e-10, abs=1e-12)


def test_permutation_test_level_and_power():
    g = torch_generator(3)
    null = alt = 0
    reps = 150
    for _ in range(reps):
        x = torch.randn(20, 2, generator=g, dtype=torch.float64)
        y = torch.randn(20, 2, generator=g, dtype=torch.float64)
        null += D.mmd_permutation_pvalue(x, y, 1.0, 40, generator=g) <= 0.05
        alt += D.mmd_permutation_pvalue(x, y + 1.0, 1.0, 40, generator=g) <= 0.05
    se = math.sqrt(0.05 * 0.95 / reps)
    assert null / reps <= 0.05 + 3 * se
    assert alt / reps > 0.8


def test_median_bandwidth_matches_scipy():
    g = torch_generator(4)
    x, y = torch.randn(10, 3, generator=g), torch.randn(7, 3, generator=g)
    ref = np.median(pdist(torch.cat([x, y]).double().numpy()))
    assert D.median_bandwidth(x, y) == pytest.approx(ref, rel=1e-9)


def test_confusion_joint_matches_sklearn():
    g = torch_generator(5)
    y = torch.randint(4, (200,), generator=g)
    pred = torch.where(torch.rand(200, generator=g) < 0.7, y,
                       torch.randint(4, (200,), generator=g))
    ref = confusion_matrix(y.numpy(), pred.numpy(), labels=range(4)).T / 200
    assert np.allclose(D.confusion_joint(pred, y, 4).numpy(), ref)


def test_bbse_identity_and_consistency():
    # a synthetic black box: p(f = i | y = j) = M[i, j], fixed across domains
    K = 3
    M = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.1, 0.2, 0.7]],
                     dtype=torch.float64)
    p_s = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    p_t = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    C = M * p_s  # C[i, j] = p(f = i, y = j)
    assert torch.allclose(C @ (p_t / p_s), M @ p_t)  # mu = C w

    def draw(prior, n, g):
        y = torch.multinomial(prior, n, replacement=True, generator=g)
        f = torch.stack([torch.multinomial(M[:, j], 1, generator=g)[0]
                         for j in y.tolist()])
        return f, y

    g = torch_generator(6)
    errs = []
    for n in (300, 30_000):
        f_s, y_s = draw(p_s, n, g)
        f_t, _ = draw(p_t, n, g)
        q = D.bbse_prior(f_s, y_s, f_t, K)
        errs.append((q - p_t).abs().sum().item())
    assert errs[1] < 0.05 and errs[1] < errs[0]
    naive = torch.bincount(f_t, minlength=K).double() / len(f_t)
    assert (naive - p_t).abs().sum() > 3 * errs[1]  # naive is biased


def test_claim_bbse_floor_is_the_source_confusion_and_naive_is_biased():
    # an accurate box (90% on the diagonal); the target reweights a finite pool
    g = torch_generator(16)
    K, n_pool = 4, 2000
    y_pool = torch.arange(n_pool) % K
    right = torch.rand(n_pool, generator=g) < 0.9
    other = (y_pool + 1 + torch.randint(K - 1, (n_pool,), generator=g)) % K
    f_pool = torch.where(right, y_pool, other)
    p_t = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    p_pool = torch.full((K,), 1.0 / K, dtype=torch.float64)
    mu = (D.confusion_joint(f_pool, y_pool, K) / p_pool) @ p_t  # m -> infinity
    # exactly m -> infinity: a target sample whose predictions have frequencies mu
    m = 100_000
    f_t = torch.repeat_interleave(torch.arange(K), (mu * m).round().long())
    q_oracle = D.bbse_prior(f_pool, y_pool, f_t, K)  # C of the pool itself
    assert (q_oracle - p_t).abs().max() < 1e-4  # exact up to the rounding
    assert 0.5 * (mu - p_t).abs().sum() > 0.02  # the naive limit is biased
    # a small labelled source set leaves a floor that more target data keeps
    small = torch.randperm(n_pool, generator=g)[:200]
    q_small = D.bbse_prior(f_pool[small], y_pool[small], f_t, K)
    assert 0.5 * (q_small - p_t).abs().sum() > 0.01


def test_bbse_rejects_a_singular_confusion_matrix():
    y = torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="singular"):
        D.bbse_weights(torch.zeros(4, dtype=torch.long), y,
                       torch.zeros(3, dtype=torch.long), 2)


def test_label_shift_subsample_has_no_repeats_and_follows_the_prior():
    y = torch.arange(1000) % 4
    prior = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    idx = D.label_shift_subsample(y, prior, 400, torch_generator(7))
    assert len(idx.unique()) == 400
    freq = torch.bincount(y[idx], minlength=4).double() / 400
    assert (freq - prior).abs().max() < 0.07
    with pytest.raises(ValueError, match="class"):
        D.label_shift_subsample(y, torch.tensor([1.0, 0, 0, 0]), 300)


# --- calibration -----------------------------------------------------------

def _ece_loop(conf, correct, M):
    total = 0.0
    for m in range(M):
        lo, hi = m / M, (m + 1) / M
        sel = [(c, k) for c, k in zip(conf, correct)
               if (lo < c <= hi) or (m == 0 and c == 0)]
        if sel:
            gap = np.mean([k for _, k in sel]) - np.mean([c for c, _ in sel])
            total += len(sel) / len(conf) * abs(gap)
    return total


def test_ece_matches_a_loop_and_bins_are_right_closed():
    g = torch_generator(8)
    probs = torch.softmax(3 * torch.randn(300, 5, generator=g,
                                          dtype=torch.float64), 1)
    y = torch.randint(5, (300,), generator=g)
    conf, pred = probs.max(1)
    ref = _ece_loop(conf.tolist(), (pred == y).double().tolist(), 15)
    assert D.expected_calibration_error(probs, y, 15) == pytest.approx(ref, abs=1e-12)
    counts, _, _ = D.reliability_bins(
        torch.tensor([0.2, 0.2 + 1e-9, 1.0], dtype=torch.float64), torch.ones(3), 5)
    assert counts.tolist() == [1, 1, 0, 0, 1]


def test_fit_temperature_matches_scipy():
    g = torch_generator(9)
    y = torch.randint(4, (400,), generator=g)
    logits = 4 * torch.randn(400, 4, generator=g, dtype=torch.float64)
    logits[torch.arange(400), y] += 3  # informative but overconfident
    nll = lambda t: F.cross_entropy(logits / t, y).item()  # noqa: E731
    ref = minimize_scalar(nll, bounds=(0.05, 20), method="bounded",
                          options={"xatol": 1e-8}).x
    tau = D.fit_temperature(logits, y)
    assert tau == pytest.approx(ref, rel=1e-4)
    assert tau > 1  # overconfident logits need cooling
    assert torch.equal((logits / tau).argmax(1), logits.argmax(1))


def test_ece_bias_of_a_calibrated_model_matches_the_gaussian_rate():
    g = torch_generator(10)
    for n in (200, 3200):
        est = []
        for _ in range(100):
            c = 0.5 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
            ok = torch.rand(n, generator=g, dtype=torch.float64) < c
            counts, mc, acc = D.reliability_bins(c, ok, 15)
            est.append((counts / n * (acc - mc).abs()).sum().item())
        # bins of width 1/15 over [0.5, 1]: about 8 bins of n/8 inputs
        approx = math.sqrt(2 / math.pi) * math.sqrt(8 * 0.15 / n)
        assert np.mean(est) == pytest.approx(approx, rel=0.35)


def test_risk_coverage_matches_brute_force():
    g = torch_generator(11)
    conf = torch.rand(50, generator=g, dtype=torch.float64)
    correct = torch.rand(50, generator=g) < conf
    cov, risk = D.risk_coverage(conf, correct)
    order = np.argsort(-conf.numpy(), kind="stable")
    for k in (1, 10, 50):
        kept = correct.numpy()[order[:k]]
        assert risk[k - 1].item() == pytest.approx(1 - kept.mean())
        assert cov[k - 1].item() == pytest.approx(k / 50)


@pytest.mark.slow
def test_claim_temperature_scaling_helps_the_digits_network():
    from dlbook.data import digits
    from dlbook.nn import mlp
    from dlbook.train import fit
    data = digits(seed=0, test_size=0.3, val_size=0.2)
    net = mlp([64, 256, 10], generator=torch_generator(0))
    fit(net, F.cross_entropy, torch.optim.Adam(net.parameters(), lr=1e-2),
        data.train, epochs=100, batch_size=128, generator=torch_generator(1))
    with torch.no_grad():
        lv, lt = net(data.val[0]).double(), net(data.test[0]).double()
    tau = D.fit_temperature(lv, data.val[1])
    y = data.test[1]
    assert tau > 1.2
    assert F.cross_entropy(lt / tau, y) < F.cross_entropy(lt, y)
    assert (D.expected_calibration_error(F.softmax(lt / tau, 1), y)
            < D.expected_calibration_error(F.softmax(lt, 1), y))


# --- fairness --------------------------------------------------------------

def test_group_rates_match_sklearn_and_chouldechova_identity():
    g = torch_generator(12)
    y = (torch.rand(2000, generator=g) < 0.4).long()
    grp = torch.arange(2000) % 2
    dec = torch.where(torch.rand(2000, generator=g) < 0.7, y, 1 - y)
    r = D.group_rates(y, dec, grp)
    for a in range(2):
        tn, fp, fn, tp = confusion_matrix(y[grp == a], dec[grp == a]).ravel()
        assert r["tpr"][a].item() == pytest.approx(tp / (tp + fn))
        assert r["fpr"][a].item() == pytest.approx(fp / (fp + tn))
        assert r["ppv"][a].item() == pytest.approx(tp / (tp + fp))
    fpr = D.chouldechova_fpr(r["base_rate"], r["ppv"], r["tpr"])
    assert torch.allclose(fpr, r["fpr"], atol=1e-12)


def test_claim_calibrated_score_violates_equalized_odds_and_mitigation_costs():
    score, y, grp = D.risk_population(40_000, (0.3, 0.5), seed=0)
    assert D.calibration_within_groups(score, y, grp).max() < 0.02
    neg, pos = D.score_balance(score, y, grp)
    assert neg[1] - neg[0] > 0.05 and pos[1] - pos[0] > 0.05  # not balanced
    dec = (score >= 0.5).long()
    r = D.group_rates(y, dec, grp)
    assert abs(r["tpr"][0] - r["tpr"][1]) > 0.1
    t = D.equal_opportunity_thresholds(score, y, grp, float(r["tpr"][1]))
    dec_eo = (score >= t[grp]).long()
    r_eo = D.group_rates(y, dec_eo, grp)
    assert abs(r_eo["tpr"][0] - r_eo["tpr"][1]) < 0.01
    assert (dec_eo == y).double().mean() < (dec == y).double().mean()
    assert abs(r_eo["ppv"][0] - r_eo["ppv"][1]) > abs(r["ppv"][0] - r["ppv"][1])


def test_risk_population_rejects_bad_base_rates():
    with pytest.raises(ValueError, match="base rates"):
        D.risk_population(10, (0.0, 0.5))


# --- monitoring ------------------------------------------------------------

def test_cusum_is_the_max_over_change_points():
    g = torch_generator(13)
    z = torch.randn(40, generator=g, dtype=torch.float64)
    s = D.cusum(z, 0.3)
    for t in (0, 5, 39):
        incr = (z[: t + 1] - 0.3).tolist()
        best = max([0.0] + [sum(incr[j:]) for j in range(t + 1)])
        assert s[t].item() == pytest.approx(best, abs=1e-12)
    alarms = D.first_alarm(torch.tensor([[0.0, 2.0, 3.0], [0.0, 0.1, 0.2]]), 1.5)
    assert alarms.tolist() == [1, -1]


def test_claim_threshold_controls_false_alarms_and_cusum_beats_shewhart():
    g = torch_generator(14)
    ref = torch.randn(5000, generator=g, dtype=torch.float64)
    H, alpha = 200, 0.1
    h = D.cusum_threshold(ref, 0.5, H, alpha, 3000, generator=g)
    fresh = torch.randn(2000, H, generator=g, dtype=torch.float64)
    fa = (D.first_alarm(D.cusum(fresh, 0.5), h) >= 0).double().mean().item()
    assert abs(fa - alpha) < 0.03
    shifted = fresh.clone()
    shifted[:, 50:] += 1.0
    a_c = D.first_alarm(D.cusum(shifted, 0.5), h)
    h_s = torch.quantile(ref[torch.randint(5000, (3000, H), generator=g)]
                         .amax(1), 1 - alpha).item()
    a_s = D.first_alarm(shifted, h_s)
    delay = lambda a: torch.where(a >= 50, a - 50, torch.full_like(a, H)  # noqa
                                  ).double().mean().item()
    assert delay(a_c) < delay(a_s) / 2


def test_cusum_threshold_rejects_bad_alpha():
    with pytest.raises(ValueError):
        D.cusum_threshold(torch.randn(10), 0.5, 10, 1.5)


# --- export ----------------------------------------------------------------

@pytest.mark.slow
def test_export_and_onnx_agree_with_eager(tmp_path):
    import warnings

    from dlbook.nn import mlp
    net = mlp([64, 32, 10], generator=torch_generator(15)).eval()
    x = torch.rand(7, 64, generator=torch_generator(16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = D.export_program(net, x)
        path = D.export_onnx(net, x, tmp_path / "m.onnx")
    sess = D.onnx_session(path)
    x2 = torch.rand(3, 64, generator=torch_generator(17))  # a new batch size
    with torch.no_grad():
        ref = net(x2)
        assert torch.allclose(prog.module()(x2), ref, atol=1e-6)
    out = torch.from_numpy(sess.run(None, {"x": x2.numpy()})[0])
    assert torch.allclose(out, ref, atol=1e-5)
    assert D.median_latency(lambda: net(x2), 5, 1) > 0


def test_export_onnx_rejects_a_bad_path(tmp_path):
    net = torch.nn.Linear(4, 2)
    with pytest.raises(ValueError, match="onnx"):
        D.export_onnx(net, torch.rand(2, 4), tmp_path / "m.txt")


def test_model_card_markdown_has_the_sections():
    card = D.ModelCard("m", "d", "u", {"f": "1"}, {"acc": "0.9"}, "data", "e",
                       ("c1", "c2"))
    md = card.to_markdown()
    for part in ("Model details", "Intended use", "Metrics", "Factors",
                 "Ethical considerations", "Caveats", "| acc | 0.9 |", "- c2"):
        assert part in md
