"""Tests of dlbook.generative: each implementation against an independent
oracle (closed forms, scipy, torch.autograd, brute-force counting) and the
chapter's key claims rerun at small size."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from dlbook import generative as G
from dlbook.data import digits, ring_of_gaussians, two_moons
from dlbook.seed import torch_generator as tg
from dlbook.train import fit

torch.set_num_threads(1)
D64 = torch.float64


def ring_centres(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    a = 2 * math.pi * torch.arange(modes) / modes
    return radius * torch.stack([a.cos(), a.sin()], 1)


# --- MMD ----------------------------------------------------------------------

def test_mmd_unbiased_matches_closed_form_between_gaussians():
    g = tg(0)
    est = [G.mmd2(torch.randn(400, 2, generator=g, dtype=D64),
                  torch.randn(400, 2, generator=g, dtype=D64) * 1.5 + 0.5,
                  bandwidth=1.0).item() for _ in range(40)]
    exact = G.mmd2_gaussians([0.0, 0.0], 1.0, [0.5, 0.5], 1.5, 1.0)
    se = np.std(est, ddof=1) / math.sqrt(len(est))
    assert abs(np.mean(est) - exact) < 4 * se + 1e-4


@pytest.mark.slow
def test_mmd_closed_form_against_numerical_integration():
    # E k(x, y) for x ~ N(0, 1), y ~ N(1, 0.5^2) in 1-D, by scipy quadrature
    h = 0.7
    f = lambda y, x: (math.exp(-(x - y) ** 2 / (2 * h * h)) * stats.norm.pdf(x)
                      * stats.norm.pdf(y, 1, 0.5))
    exy = integrate.dblquad(f, -10, 10, -10, 10)[0]
    from dlbook.generative.metrics import _gauss_expected_kernel
    assert abs(_gauss_expected_kernel([0.0], 1.0, [1.0], 0.5, h, 1) - exy) < 1e-6


def test_mmd_v_statistic_is_the_mean_embedding_distance_and_nonnegative():
    g = tg(1)
    x, y = torch.randn(30, 3, generator=g, dtype=D64), torch.randn(20, 3,
                                                                  generator=g,
                                                                  dtype=D64)
    k = lambda a, b: torch.exp(-torch.cdist(a, b) ** 2 / 2)
    brute = k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()
    v = G.mmd2(x, y, 1.0, unbiased=False)
    assert torch.allclose(v, brute) and v > 0
    u = G.mmd2(x, x[torch.randperm(30, generator=g)], 1.0)
    assert u < 0  # the unbiased estimate of MMD(P, P) = 0 can be negative


def test_mmd_permutation_test_level_and_power():
    g = tg(2)
    same = [G.mmd_permutation_test(torch.randn(40, 1, generator=g),
                                   torch.randn(40, 1, generator=g), 1.0, 99,
                                   generator=g) for _ in range(30)]
    assert 0.2 < np.mean(same) < 0.8  # p-values roughly uniform under H0
    diff = G.mmd_permutation_test(torch.randn(60, 1, generator=g),
                                  torch.randn(60, 1, generator=g) + 1, 1.0, 99,
                                  generator=g)
    assert diff <= 0.02


def test_mmd_bad_input():
    with pytest.raises(ValueError, match="same D"):
        G.mmd2(torch.randn(5, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="bandwidth"):
        G.gaussian_kernel(torch.randn(5, 2), torch.randn(5, 2), 0.0)


def test_mode_coverage_counts_modes():
    c = ring_centres()
    X, _ = ring_of_gaussians(800, std=0.05, seed=0)
    assert G.mode_coverage(X, c, 0.05)[0] == 8
    covered, quality, share = G.mode_coverage(X[_in_modes(X, c, [0, 1])], c, 0.05)
    assert covered == 2 and quality > 0.95 and abs(share.sum().item() - 1) < 1e-9


def _in_modes(X, c, modes):
    near = torch.cdist(X, c).argmin(1)
    return torch.isin(near, torch.tensor(modes))


# --- the Gaussian mixture and Langevin ----------------------------------------------

def test_mixture_log_prob_and_score_against_scipy_and_autograd():
    gm = G.GaussianMixture(torch.tensor([0.3, 0.7], dtype=D64),
                           torch.tensor([[-1.0, 0.0], [2.0, 1.0]], dtype=D64), 0.8)
    x = torch.randn(10, 2, generator=tg(3), dtype=D64).requires_grad_()
    ref = np.log(0.3 * stats.multivariate_normal([-1, 0], 0.64).pdf(x.detach())
                 + 0.7 * stats.multivariate_normal([2, 1], 0.64).pdf(x.detach()))
    lp = gm.log_prob(x)
    assert np.allclose(lp.detach().numpy(), ref, atol=1e-10)
    auto, = torch.autograd.grad(lp.sum(), x)
    assert torch.allclose(gm.score(x), auto, atol=1e-10)
    noisy = gm.noised(0.6)
    assert abs(noisy.std - 1.0) < 1e-12 and abs(gm.scaled(2.0).std - 1.6) < 1e-12


def test_langevin_samples_a_gaussian():
    # E(x) = x^2 / 2: the chain's stationary law is N(0, 1) up to O(step)
    x = G.langevin(lambda x: x, torch.full((4000, 1), 3.0), 0.05, 300,
                   generator=tg(4))
    assert abs(x.mean().item()) < 0.06
    # ULA on a Gaussian has stationary variance 1 / (1 - step / 2)
    assert abs(x.var().item() - 1 / (1 - 0.025)) < 0.08


def test_langevin_fails_to_mix_and_annealing_recovers_weights():
    gm = G.GaussianMixture(torch.tensor([0.2, 0.8]), torch.tensor([[-4.0], [4.0]]),
                           0.5)
    x0 = 16 * torch.rand(1000, 1, generator=tg(0)) - 8
    plain = G.langevin(lambda x: -gm.score(x), x0, 0.01, 300, generator=tg(1))
    sig = torch.logspace(math.log10(6), math.log10(0.05), 8).tolist()
    ann = G.annealed_langevin(lambda x, s: gm.noised(s).score(x), x0, sig,
                              2e-4, 60, generator=tg(2))
    assert abs((plain < 0).float().mean().item() - 0.5) < 0.06
    assert abs((ann < 0).float().mean().item() - 0.2) < 0.06


# --- MADE ------------------------------------------------------------------------

@pytest.mark.parametrize("hidden", [[16], [20, 12]])
def test_made_jacobian_is_strictly_triangular_in_its_order(hidden):
    order = torch.randperm(6, generator=tg(5))
    made = G.MADE(6, hidden, order=order, generator=tg(6)).double()
    x = torch.rand(6, dtype=D64)
    J = torch.autograd.functional.jacobian(lambda v: made(v[None])[0], x)
    rank = torch.empty(6, dtype=torch.long)
    rank[order] = torch.arange(6)
    allowed = rank[None, :] < rank[:, None]  # output d may see input j iff j first
    assert (J[~allowed].abs() < 1e-12).all()
    masks = G.made_masks(G.made_degrees(6, hidden, order=order, generator=tg(6)))
    full = masks[0]
    for m in masks[1:]:
        full = m @ full
    assert (full[~allowed] == 0).all()  # no path from a later input
    assert (full[allowed] > 0).float().mean() > 0.5  # most allowed paths exist


def test_made_log_prob_is_normalized_and_samples_follow_it():
    made = G.MADE(4, [16], generator=tg(7))
    grid = torch.tensor([[(i >> k) & 1 for k in range(4)] for i in range(16)],
                        dtype=torch.float32)
    p = made.log_prob(grid).exp()
    assert abs(p.sum().item() - 1) < 1e-5
    s = made.sample(4000, generator=tg(8))
    idx = (s * 2 ** torch.arange(4)).sum(1).long()
    freq = torch.bincount(idx, minlength=16).float() / 4000
    assert (freq - p.detach()).abs().max() < 0.03


def test_made_bad_input():
    with pytest.raises(ValueError, match="permutation"):
        G.made_degrees(3, [4], order=torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="mask"):
        G.MaskedLinear(3, 2, torch.ones(3, 2))


@pytest.mark.slow
def test_made_beats_the_independent_model_on_digits():
    d = digits(seed=0)
    Xtr, Xte = (d.X_train > 0.5).float(), (d.X_test > 0.5).float()
    made = G.MADE(64, [256], generator=tg(0))
    loss = lambda z, x: torch.nn.functional.binary_cross_entropy_with_logits(
        z, x, reduction="sum") / len(x)
    fit(made, loss, torch.optim.Adam(made.parameters(), lr=3e-3), (Xtr, Xtr),
        epochs=25, batch_size=128, generator=tg(1))
    p = Xtr.mean(0).clamp(1e-3, 1 - 1e-3)
    indep = -(Xte * p.log() + (1 - Xte) * (1 - p).log()).sum(1).mean()
    assert -made.log_prob(Xte).mean() < indep - 4


# --- back-off n-grams --------------------------------------------------------------

def _brute_backoff(text_ids, order, V, delta, hist, c):
    """P(c | hist) by direct counting, the recursion written out."""
    if order == 1:
        n = Counter(text_ids)
        return (n[c] + 1) / (len(text_ids) + V)
    lower = _brute_backoff(text_ids, order - 1, V, delta, hist[1:], c)
    m = order
    grams = Counter(tuple(text_ids[i:i + m]) for i in range(len(text_ids) - m + 1))
    after = {g[-1]: k for g, k in grams.items() if list(g[:-1]) == list(hist)}
    n_h = sum(after.values())
    if n_h == 0:
        return lower
    return (max(after.get(c, 0) - delta, 0) + delta * len(after) * lower) / n_h


def test_backoff_ngram_matches_brute_force_and_is_normalized():
    g = np.random.default_rng(0)
    ids = g.integers(0, 4, 300).tolist()
    ids = ids + [0, 1, 2, 3] * 20
    lm = G.BackoffNGram(3, 5, delta=0.6).fit(torch.tensor(ids))
    for hist in ([0, 1], [3, 3], [4, 4], [1, 4]):  # id 4 never occurs
        probs = lm.next_char_probs(hist)
        assert abs(probs.sum() - 1) < 1e-12
        for c in range(5):
            assert abs(probs[c] - _brute_backoff(ids, 3, 5, 0.6, hist, c)) < 1e-12
    assert len(lm.bits_per_char(torch.tensor(ids[:50]))) == 3


def test_backoff_ngram_bad_input():
    with pytest.raises(ValueError, match="delta"):
        G.BackoffNGram(2, 4, delta=1.5)
    lm = G.BackoffNGram(2, 4).fit(torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="ids must lie"):
        lm.probs_of(torch.tensor([0, 7]))


def test_ngram_held_out_bits_fall_then_rise_with_order():
    from dlbook.data import CharVocab, text_corpus
    text = text_corpus("python-docs")[:200_000]
    V = CharVocab.from_text(text)
    ids = V.encode(text)
    bpc = G.BackoffNGram(7, len(V)).fit(ids[:180_000]).bits_per_char(
        ids[180_000:])
    best = int(np.argmin(bpc))
    assert bpc[0] > bpc[1] > bpc[2] and 2 <= best <= 5 and bpc[-1] > bpc[best]


# --- GANs ---------------------------------------------------------------------------

def _grid_densities():
    x = torch.linspace(-12, 12, 20001, dtype=D64)
    pd = torch.tensor(stats.norm.pdf(x, 0, 1))
    pg = torch.tensor(stats.norm.pdf(x, 1.5, 0.7))
    return x, pd, pg


def test_gan_value_at_optimal_discriminator_is_js_form():
    x, pd, pg = _grid_densities()
    d = G.optimal_discriminator(pd, pg)
    v = G.gan_value(d, pd, pg, x)
    js = G.js_divergence(pd, pg, x)
    assert abs(v - (-math.log(4) + 2 * js)) < 1e-8
    # D* maximizes V: any perturbation lowers it
    for eps in (0.05, -0.05):
        assert G.gan_value((d + eps * torch.sin(x)).clamp(1e-6, 1 - 1e-6),
                           pd, pg, x) < v
    # JS against scipy's (base-e) Jensen-Shannon distance squared
    from scipy.spatial.distance import jensenshannon
    dx = float(x[1] - x[0])
    ref = jensenshannon(pd.numpy() * dx, pg.numpy() * dx) ** 2
    assert abs(js.item() - ref) < 1e-6
    assert abs(G.js_divergence(pd, pd, x).item()) < 1e-12
    assert abs(G.gan_value(torch.full_like(pd, 0.5), pd, pd, x) + math.log(4)) < 1e-8


def test_trained_discriminator_approaches_the_optimum():
    g = tg(9)
    n = 4000
    real = torch.randn(n, 1, generator=g)
    fake = 0.7 * torch.randn(n, 1, generator=g) + 1.5
    X, y = torch.cat([real, fake]), torch.cat([torch.ones(n), torch.zeros(n)])
    from dlbook.nn import mlp
    D = mlp([1, 32, 32, 1], generator=tg(10))
    loss = lambda z, t: torch.nn.functional.binary_cross_entropy_with_logits(
        z.squeeze(1), t)
    fit(D, loss, torch.optim.Adam(D.parameters(), lr=1e-2), (X, y), epochs=40,
        batch_size=1000, generator=tg(11))
    x = torch.linspace(-2.5, 3.0, 200)[:, None]
    with torch.no_grad():
        learned = torch.sigmoid(D(x)).squeeze(1).double()
    opt = G.optimal_discriminator(torch.tensor(stats.norm.pdf(x.squeeze(1))),
                                  torch.tensor(stats.norm.pdf(x.squeeze(1), 1.5,
                                                              0.7)))
    assert (learned - opt).abs().max() < 0.1


def test_gan_config_validation():
    with pytest.raises(ValueError, match="loss"):
        G.train_gan(torch.randn(10, 2), G.GANConfig(loss="wasserstein", steps=1))


# --- flows -------------------------------------------------------------------

def test_coupling_logdet_matches_autograd_jacobian_and_inverts():
    flow = G.RealNVP(3, 4, 16, generator=tg(12)).double()
    for layer in flow.layers:  # move off the zero initialization
        with torch.no_grad():
            for p in layer.net.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=tg(13), dtype=D64))
    x = torch.randn(5, 3, generator=tg(14), dtype=D64)
    z, logdet = flow(x)
    for i in range(5):
        J = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[i])
        assert abs(torch.linalg.slogdet(J)[1] - logdet[i]) < 1e-10
    back = z
    for layer in reversed(flow.layers):
        back = layer.inverse(back)
    assert torch.allclose(back, x, atol=1e-10)


def test_flow_log_prob_integrates_to_one():
    flow = G.RealNVP(2, 4, 16, generator=tg(15)).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=tg(16), dtype=D64))
    u = torch.linspace(-8, 8, 401, dtype=D64)
    xx, yy = torch.meshgrid(u, u, indexing="ij")
    with torch.no_grad():
        p = flow.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp()
    mass = torch.trapezoid(torch.trapezoid(p.reshape(401, 401), u), u)
    assert abs(mass.item() - 1) < 1e-3


def test_flow_fits_two_moons_better_than_a_gaussian():
    X, _ = two_moons(1000, noise=0.05, seed=0)
    Xv, _ = two_moons(1000, noise=0.05, seed=1)
    mu, sd = X.mean(0), X.std(0)
    X, Xv = (X - mu) / sd, (Xv - mu) / sd
    flow = G.RealNVP(2, 6, 32, generator=tg(0))
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    for _ in range(30):  # epochs of mini-batches of 200, as in the chapter
        for idx in torch.randperm(1000, generator=tg(1)).split(200):
            loss = -flow.log_prob(X[idx]).mean()
            opt.zero_grad(), loss.backward(), opt.step()
    gauss = torch.distributions.MultivariateNormal(X.mean(0), torch.cov(X.T))
    with torch.no_grad():
        assert -flow.log_prob(Xv).mean() < -gauss.log_prob(Xv).mean() - 0.5


# --- diffusion ---------------------------------------------------------------

def test_forward_marginal_matches_composed_one_step_kernels():
    sch = G.DDPMSchedule.linear(50)
    g = tg(17)
    x0 = torch.full((20000, 1), 1.5, dtype=D64)
    x = x0.clone()
    for t in range(1, 31):  # x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) z
        b = sch.betas[t - 1]
        x = (1 - b).sqrt() * x + b.sqrt() * torch.randn(x.shape, generator=g,
                                                        dtype=D64)
    ab = sch.alpha_bar[29].item()
    assert abs(x.mean().item() - math.sqrt(ab) * 1.5) < 0.02
    assert abs(x.var().item() - (1 - ab)) < 0.02
    direct = G.q_sample(x0, torch.full((20000,), 30), sch,
                        torch.randn(x0.shape, generator=g, dtype=D64))
    assert stats.ks_2samp(direct.squeeze().numpy(), x.squeeze().numpy()).pvalue > 1e-3


def test_schedule_and_q_sample_validation():
    sch = G.DDPMSchedule.linear(1000)
    assert abs(sch.betas[0] - 1e-4) < 1e-12 and abs(sch.betas[-1] - 0.02) < 1e-12
    assert sch.alpha_bar[-1] < 1e-4
    with pytest.raises(ValueError, match="t must"):
        G.q_sample(torch.zeros(2, 1), torch.tensor([0, 1]), sch, torch.zeros(2, 1))
    with pytest.raises(ValueError, match="betas"):
        G.DDPMSchedule(torch.tensor([0.5, 1.5]))


class _ExactEps(torch.nn.Module):
    """The optimal noise predictor of a Gaussian mixture (Tweedie):
    eps*(x_t, t) = -sqrt(1 - alpha_bar_t) * score of q_t."""

    def __init__(self, gm, sch):
        super().__init__()
        self.gm, self.sch = gm, sch

    def forward(self, x, t):
        out = torch.empty_like(x)
        for tt in t.unique().tolist():
            ab = self.sch.alpha_bar[tt - 1].item()
            q = self.gm.scaled(math.sqrt(ab)).noised(math.sqrt(1 - ab))
            rows = t == tt
            out[rows] = -math.sqrt(1 - ab) * q.score(x[rows])
        return out


def test_samplers_with_the_exact_noise_predictor_recover_the_data_law():
    gm = G.GaussianMixture(torch.tensor([0.25, 0.75], dtype=D64),
                           torch.tensor([[-2.0], [2.0]], dtype=D64), 0.3)
    sch = G.DDPMSchedule.linear(200)
    model = _ExactEps(gm, sch)
    xT = torch.randn(4000, 1, generator=tg(18), dtype=D64)
    for x0 in (G.ddpm_sample(model, sch, xT, generator=tg(19)),
               G.ddim_sample(model, sch, xT, 50)):
        assert abs((x0 < 0).double().mean().item() - 0.25) < 0.03
        assert abs(x0[x0 > 0].std().item() - 0.3) < 0.05
    a = G.ddim_sample(model, sch, xT[:10], 20)
    assert torch.allclose(a, G.ddim_sample(model, sch, xT[:10], 20))  # deterministic


@pytest.mark.slow
def test_ddpm_covers_every_mode_of_the_ring():
    X, _ = ring_of_gaussians(4000, std=0.1, seed=0)
    sch = G.DDPMSchedule.linear(100)
    m = G.NoisePredictor(2, 100, hidden=128, depth=3, generator=tg(0))
    G.train_ddpm(m, X, sch, steps=3000, lr=5e-3, generator=tg(1))
    S = G.ddpm_sample(m, sch, torch.randn(2000, 2, generator=tg(2)), generator=tg(3))
    covered, quality, share = G.mode_coverage(S, ring_centres(), 0.1)
    assert covered == 8 and quality > 0.7 and share.min() > 0.08


# --- the Frechet distance ----------------------------------------------------

def test_frechet_distance_against_scipy_and_the_1d_closed_form():
    from scipy import linalg
    g = tg(40)
    x = torch.randn(400, 5, generator=g, dtype=D64) @ torch.randn(5, 5, generator=g,
                                                                  dtype=D64)
    y = torch.randn(300, 5, generator=g, dtype=D64) * 0.5 + 1.0
    sx, sy = np.cov(x.numpy().T), np.cov(y.numpy().T)
    ref = (np.sum((x.mean(0) - y.mean(0)).numpy() ** 2)
           + np.trace(sx + sy - 2 * linalg.sqrtm(sx @ sy).real))
    assert abs(G.frechet_distance(x, y) - ref) < 1e-8
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with the sample moments
    a = torch.randn(1000, 1, generator=g, dtype=D64) * 2.0 + 1.0
    b = torch.randn(800, 1, generator=g, dtype=D64) * 0.5
    closed = ((a.mean() - b.mean()) ** 2 + (a.std() - b.std()) ** 2).item()
    assert abs(G.frechet_distance(a, b) - closed) < 1e-10
    assert abs(G.frechet_distance(x, x)) < 1e-8
    with pytest.raises(ValueError, match="same D"):
        G.frechet_distance(x, y[:, :3])
