"""Tests of dlbook.vae: the Gaussian KL against torch.distributions and Monte
Carlo, the IWAE bounds against log p(x) by quadrature, the gradient
estimators against closed forms, the debiasing weights, and the chapter's
key claims rerun at small size."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlbook import vae as V
from dlbook.data import digits
from dlbook.nn import mlp
from dlbook.seed import torch_generator
from dlbook.train import fit

torch.set_num_threads(1)
D64 = torch.float64
Normal = torch.distributions.Normal
F = nn.functional


def _gauss(seed: int, shape=(5, 3)):
    g = torch_generator(seed)
    return (torch.randn(shape, generator=g, dtype=D64) for _ in range(4))


# --- the Gaussian KL and the reparameterization ------------------------------

def test_gaussian_kl_matches_torch_forward_and_backward():
    mu, lv, mu_p, lv_p = (t.requires_grad_() for t in _gauss(0))
    ours = V.gaussian_kl(mu, lv, mu_p, lv_p)
    ref = torch.distributions.kl_divergence(
        Normal(mu, (0.5 * lv).exp()), Normal(mu_p, (0.5 * lv_p).exp()))
    assert torch.allclose(ours, ref, atol=1e-12)
    cot = torch.randn(ours.shape, generator=torch_generator(1), dtype=D64)
    ga = torch.autograd.grad((ours * cot).sum(), [mu, lv, mu_p, lv_p])
    gb = torch.autograd.grad((ref * cot).sum(), [mu, lv, mu_p, lv_p])
    for a, b in zip(ga, gb):
        assert torch.allclose(a, b, atol=1e-10)


def test_gaussian_kl_default_prior_is_standard_normal_and_nonnegative():
    mu, lv, _, _ = _gauss(2)
    ref = torch.distributions.kl_divergence(
        Normal(mu, (0.5 * lv).exp()), Normal(torch.zeros_like(mu), 1.0))
    assert torch.allclose(V.gaussian_kl(mu, lv), ref, atol=1e-12)
    assert (V.gaussian_kl(mu, lv) >= 0).all()
    assert V.gaussian_kl(torch.zeros(3), torch.zeros(3)).abs().max() < 1e-12


def test_gaussian_kl_matches_monte_carlo():
    mu, lv, mu_p, lv_p = (torch.tensor(v, dtype=D64) for v in
                          ([0.7, -1.2], [-0.5, 0.4], [0.2, 0.3], [0.1, -0.3]))
    z = V.reparameterize(mu, lv, generator=torch_generator(3), n_samples=400_000)
    q, p = Normal(mu, (0.5 * lv).exp()), Normal(mu_p, (0.5 * lv_p).exp())
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    assert torch.allclose(mc, V.gaussian_kl(mu, lv, mu_p, lv_p), atol=0.01)


def test_gaussian_kl_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        V.gaussian_kl(torch.zeros(3), torch.zeros(4))


def test_reparameterize_moments_and_pathwise_derivative():
    mu = torch.tensor([1.0, -2.0], dtype=D64, requires_grad=True)
    lv = torch.tensor([0.0, math.log(4.0)], dtype=D64, requires_grad=True)
    z = V.reparameterize(mu, lv, generator=torch_generator(4), n_samples=200_000)
    assert torch.allclose(z.mean(0), mu.detach(), atol=0.02)
    assert torch.allclose(z.var(0), lv.detach().exp(), rtol=0.02)
    g_mu, g_lv = torch.autograd.grad(z[:, 1].sum(), [mu, lv])
    eps = (z[:, 1] - mu[1]) / 2.0  # sigma = 2 in coordinate 1
    assert torch.allclose(g_mu, torch.tensor([0.0, len(z)], dtype=D64))
    assert torch.allclose(g_lv[1], (0.5 * 2.0 * eps).sum().detach())


# --- the model, the ELBO and the IWAE bounds -----------------------------------

def _tiny_vae(d_latent=1, seed=0, train_steps=0):
    cfg = V.VAEConfig(d_in=6, d_latent=d_latent, hidden=8)
    model = V.VAE(cfg, generator=torch_generator(seed)).double()
    g = torch_generator(seed + 1)
    x = (torch.rand(20, 6, generator=g, dtype=D64) < 0.4).double()
    if train_steps:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        fit(model, V.NegativeELBO(), opt, (x, x), epochs=train_steps)
    return model, x


def test_bernoulli_log_lik_matches_torch():
    g = torch_generator(5)
    logits = torch.randn(4, 7, generator=g, dtype=D64)
    x = (torch.rand(4, 7, generator=g) < 0.5).double()
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)
    assert torch.allclose(V.bernoulli_log_lik(logits, x), ref, atol=1e-12)


def test_vae_shapes_and_input_check():
    model = V.VAE(V.VAEConfig(d_in=64, d_latent=3), generator=torch_generator(0))
    out = model(torch.rand(5, 64))
    assert out.logits.shape == (5, 64) and out.mu.shape == (5, 3)
    assert out.z.shape == out.log_var.shape == (5, 3)
    assert model.sample(4, generator=torch_generator(1)).shape == (4, 64)
    with pytest.raises(ValueError, match="x must be"):
        model(torch.rand(5, 63))
    with pytest.raises(ValueError, match="d_latent"):
        V.VAEConfig(d_latent=0)


def _log_px_quadrature(model, x):
    """log p(x) = log int p(x | z) N(z; 0, 1) dz on a dense 1-D grid."""
    z = torch.linspace(-9, 9, 20_001, dtype=D64)[:, None]
    log_joint = (V.bernoulli_log_lik(model.decode(z)[:, None, :], x)
                 + Normal(0.0, 1.0).log_prob(z))  # (grid, N)
    dz = z[1, 0] - z[0, 0]
    return torch.logsumexp(log_joint, dim=0) + dz.log()


def test_iwae_bounds_increase_to_log_px_by_quadrature():
    model, x = _tiny_vae(d_latent=1, train_steps=30)
    model.requires_grad_(False)
    log_px = _log_px_quadrature(model, x)
    g = torch_generator(6)
    draws = {k: torch.stack([V.iwae_bound(model, x, k, generator=g)
                             for _ in range(400)]) for k in (1, 4, 32)}
    mean = {k: d.mean(0) for k, d in draws.items()}
    se = {k: d.std(0) / math.sqrt(len(d)) for k, d in draws.items()}
    for lo, hi in [(1, 4), (4, 32)]:  # L_1 <= L_4 <= L_32, per example
        assert (mean[lo] <= mean[hi] + 4 * (se[lo] + se[hi])).all()
    assert (mean[1] < mean[32] - 0.01).any()  # and the gap is visible
    assert (mean[32] <= log_px + 4 * se[32] + 1e-4).all()
    big = V.iwae_bound(model, x, 20_000, generator=g)
    assert torch.allclose(big, log_px, atol=0.01)


@torch.no_grad()
def test_elbo_closed_form_kl_agrees_with_l1():
    model, x = _tiny_vae(d_latent=2, seed=3)
    g = torch_generator(7)
    model.generator = g
    elbo = torch.stack([V.elbo(model(x), x) for _ in range(4000)]).mean(0)
    l1 = torch.stack([V.iwae_bound(model, x, 1, generator=g)
                      for _ in range(4000)]).mean(0)
    assert torch.allclose(elbo, l1, atol=0.05)


def test_negative_elbo_is_minus_mean_elbo_and_checks_beta():
    model, x = _tiny_vae(d_latent=2)
    out = model(x)
    assert torch.allclose(V.NegativeELBO(2.0)(out, x), -V.elbo(out, x, 2.0).mean())
    with pytest.raises(ValueError, match="beta"):
        V.NegativeELBO(-1.0)
    with pytest.raises(ValueError, match="k must"):
        V.iwae_bound(model, x, 0)


def test_kl_per_dimension_sums_to_mean_kl():
    model, x = _tiny_vae(d_latent=3)
    mu, lv = model.encode(x)
    total = V.gaussian_kl(mu, lv).sum(-1).mean()
    kd = V.kl_per_dimension(model, x)
    assert kd.shape == (3,) and torch.allclose(kd.sum(), total.detach())
    assert V.active_units(torch.tensor([0.5, 0.001, 0.2])) == 2


# --- gradient estimators -------------------------------------------------------

@pytest.mark.parametrize("mu,sigma", [(1.0, 0.5), (0.0, 1.0), (2.0, 1.5)])
def test_estimators_unbiased_with_closed_form_variances(mu, sigma):
    m, s = torch.tensor([mu], dtype=D64), torch.tensor([sigma], dtype=D64)
    n = 400_000
    path = V.pathwise_gradients(lambda z: (z**2).sum(-1), m, s, n,
                                generator=torch_generator(8))[:, 0]
    score = V.score_function_gradients(lambda z: (z**2).sum(-1), m, s, n,
                                       generator=torch_generator(9))[:, 0]
    v_path, v_score = V.square_gradient_variances(mu, sigma)
    for est, var in [(path, v_path), (score, v_score)]:
        assert abs(est.mean() - 2 * mu) < 5 * math.sqrt(var / n)
        assert abs(est.var() / var - 1) < 0.05
    assert v_score > 3.7 * v_path  # >= 15/4 whatever mu and sigma


def test_baseline_keeps_score_estimator_unbiased_and_lowers_variance():
    m, s = torch.tensor([1.0], dtype=D64), torch.tensor([0.5], dtype=D64)
    f = lambda z: (z**2).sum(-1)  # noqa: E731
    plain = V.score_function_gradients(f, m, s, 200_000, generator=torch_generator(10))
    based = V.score_function_gradients(f, m, s, 200_000, baseline=1.25,
                                       generator=torch_generator(10))
    assert abs(based.mean() - 2.0) < 0.02
    assert based.var() < 0.5 * plain.var()


def test_estimators_reject_bad_input():
    with pytest.raises(ValueError, match="sigma"):
        V.pathwise_gradients(lambda z: z.sum(-1), torch.zeros(2), torch.zeros(2), 3)
    with pytest.raises(ValueError, match="equal"):
        V.score_function_gradients(lambda z: z.sum(-1), torch.zeros(2),
                                   torch.ones(3), 3)


# --- debiasing -----------------------------------------------------------------

def test_face_images_groups_and_labels():
    d = V.face_images(3000, minority=0.1, seed=0)
    assert d.X.shape == (3000, 64) and 0 <= d.X.min() and d.X.max() <= 1
    assert ((d.group <= 1) == (d.y == 1)).all()  # groups 0, 1 are faces
    frac = (d.group == 1).sum() / (d.y == 1).sum()
    assert abs(frac - 0.1) < 0.03
    d2 = V.face_images(3000, minority=0.1, seed=0)
    assert torch.equal(d.X, d2.X)
    with pytest.raises(ValueError, match="minority"):
        V.face_images(10, minority=1.5)


def test_latent_density_weights_favour_the_rare_cluster():
    g = torch_generator(11)
    common = torch.randn(950, 2, generator=g)
    rare = torch.randn(50, 2, generator=g) + torch.tensor([6.0, 6.0])
    w = V.latent_density_weights(torch.cat([common, rare]), bins=10, alpha=0.01)
    assert abs(w.sum().item() - 1) < 1e-9 and (w > 0).all()
    assert w[950:].sum() > 0.3  # far above its frequency of 0.05
    flat = V.latent_density_weights(torch.cat([common, rare]), alpha=1e6)
    assert torch.allclose(flat, torch.full_like(flat, 1e-3), rtol=1e-4)
    with pytest.raises(ValueError, match="alpha"):
        V.latent_density_weights(common, alpha=0.0)


def test_resample_indices_and_group_accuracies():
    w = torch.tensor([0.0, 0.25, 0.75])
    idx = V.resample_indices(w, 40_000, generator=torch_generator(12))
    counts = torch.bincount(idx, minlength=3).double() / 40_000
    assert counts[0] == 0 and abs(counts[2] - 0.75) < 0.01
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    y, group = torch.tensor([0, 1, 0, 0]), torch.tensor([0, 0, 1, 1])
    assert V.group_accuracies(logits, y, group) == {0: 1.0, 1: 0.5}


# --- the chapter's claims at small size ----------------------------------------

@pytest.fixture(scope="module")
def binary_digits():
    data = digits(seed=0)
    return V.binarize(data.train[0]), V.binarize(data.test[0])


def _train_vae(X, d_latent, beta=1.0, epochs=60, seed=0):
    model = V.VAE(V.VAEConfig(d_latent=d_latent), generator=torch_generator(seed))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    fit(model, V.NegativeELBO(beta), opt, (X, X), epochs=epochs, batch_size=128,
        generator=torch_generator(seed + 1))
    return model


@pytest.mark.slow
def test_vae_beats_factorized_baseline_and_iwae_tightens(binary_digits):
    Xtr, Xte = binary_digits
    model = _train_vae(Xtr, d_latent=8)
    p = Xtr.mean(0).clamp(1e-3, 1 - 1e-3)
    baseline = (Xte * p.log() + (1 - Xte) * (1 - p).log()).sum(1).mean()
    g = torch_generator(13)
    l1, l100 = (V.iwae_bound(model, Xte, k, generator=g).mean() for k in (1, 100))
    assert l1 > baseline + 5  # nats per image
    assert l100 > l1 + 0.3


@pytest.mark.slow
def test_large_beta_collapses_latent_dimensions(binary_digits):
    Xtr, Xte = binary_digits
    act = {b: V.active_units(V.kl_per_dimension(_train_vae(Xtr, 8, b), Xte))
           for b in (1.0, 4.0)}
    assert act[4.0] < act[1.0]


@pytest.mark.slow
def test_latent_resampling_gain_depends_on_the_histogram():
    """The chapter's debiasing claim at its configuration: with a fine
    histogram (40 bins, the validation choice) resampling by latent density
    raises the worst-group accuracy; with a coarse one (5 bins) it does not."""
    tr = V.face_images(2000, minority=0.05, seed=0)
    te = V.face_images(4000, minority=0.5, seed=1)
    faces, negs = tr.X[tr.y == 1], tr.X[tr.y == 0]
    vae = V.VAE(V.VAEConfig(d_latent=4, hidden=64), generator=torch_generator(0))
    fit(vae, V.NegativeELBO(), torch.optim.Adam(vae.parameters(), lr=3e-3),
        (faces, faces), epochs=60, batch_size=128, generator=torch_generator(100))
    mu = vae.encode(faces)[0].detach()
    dark = tr.group[tr.y == 1] == 1

    def worst_group(X, y, seed):
        net = mlp([64, 32, 2], generator=torch_generator(seed))
        fit(net, F.cross_entropy, torch.optim.Adam(net.parameters(), lr=3e-3),
            (X, y), epochs=30, batch_size=64, generator=torch_generator(100 + seed))
        with torch.no_grad():
            return min(V.group_accuracies(net(te.X), te.y, te.group).values())

    def debiased(bins, seed):
        w = V.latent_density_weights(mu, bins=bins, alpha=0.01)
        idx = V.resample_indices(w, len(faces), generator=torch_generator(50 + seed))
        y = torch.cat([torch.ones(len(idx)), torch.zeros(len(negs))]).long()
        return worst_group(torch.cat([faces[idx], negs]), y, seed)

    seeds = range(2)
    assert V.latent_density_weights(mu, bins=40)[dark].sum() > 3 * dark.float().mean()
    std = sum(worst_group(tr.X, tr.y, s) for s in seeds) / 2
    fine = sum(debiased(40, s) for s in seeds) / 2
    coarse = sum(debiased(5, s) for s in seeds) / 2
    assert fine > std + 0.05
    assert coarse < fine - 0.1


def test_latent_density_weights_one_bin_is_uniform():
    mu = torch.randn(300, 3, generator=torch_generator(14))
    w = V.latent_density_weights(mu, bins=1, alpha=0.01)
    assert torch.allclose(w, torch.full_like(w, 1 / 300), rtol=1e-9)
    fine = V.latent_density_weights(mu, bins=30, alpha=0.01)
    assert fine.max() > 10 * fine.min()  # finer bins separate the tails


def test_log_joint_on_grid_matches_broadcast_quadrature():
    model, x = _tiny_vae(d_latent=1, seed=4)
    z = torch.linspace(-9, 9, 20_001, dtype=D64)
    lj = V.log_joint_on_grid(model, x, z)
    ours = torch.logsumexp(lj, 0) + (z[1] - z[0]).log()
    assert torch.allclose(ours, _log_px_quadrature(model, x), atol=1e-10)
    with pytest.raises(ValueError, match="d_latent"):
        V.log_joint_on_grid(_tiny_vae(d_latent=2)[0], x, z)
