"""Tests of dlbook.conditional: every closed form against an independent oracle
(scipy, torch.distributions, autograd in float64, direct recursions), and the
chapter's key claims rerun at small size."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.linear_model import LogisticRegression
from torch import nn

from dlbook import conditional as K
from dlbook.data import digits, ring_of_gaussians, shift_images
from dlbook.nn import mlp
from dlbook.seed import torch_generator
from dlbook.train import fit

F = nn.functional
D64 = torch.float64


# --- conditional GAN ---------------------------------------------------------

def test_one_hot_and_bad_labels():
    y = torch.tensor([0, 2, 1])
    assert torch.equal(K.one_hot(y, 3), torch.eye(3)[y])
    with pytest.raises(ValueError, match="labels must lie"):
        K.one_hot(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="shape"):
        K.one_hot(torch.zeros(2, 2, dtype=torch.long), 3)


def test_conditional_mlp_checks_shapes():
    net = K.ConditionalMLP([4, 8, 2], 3, generator=torch_generator(0))
    assert net(torch.zeros(5, 4), torch.zeros(5, 3)).shape == (5, 2)
    with pytest.raises(ValueError, match="c must have shape"):
        net(torch.zeros(5, 4), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="u must have shape"):
        net(torch.zeros(5, 3), torch.zeros(5, 3))


def test_js_divergence_matches_scipy():
    g = torch_generator(0)
    p = torch.rand(3, 7, generator=g, dtype=D64)
    q = torch.rand(3, 7, generator=g, dtype=D64)
    p, q = p / p.sum(1, keepdim=True), q / q.sum(1, keepdim=True)
    ours = K.js_divergence(p, q, dx=1.0)
    ref = [jensenshannon(a, b) ** 2 for a, b in zip(p.numpy(), q.numpy())]
    assert np.allclose(ours.numpy(), ref, atol=1e-12)


def _gaussian_conditionals():
    grid = torch.linspace(-14, 14, 5001, dtype=D64)
    dx = (grid[1] - grid[0]).item()
    pdf = lambda m, s: torch.as_tensor(stats.norm(m, s).pdf(grid.numpy()))
    p_data = torch.stack([pdf(-1, 1), pdf(2, 0.5)])
    p_gen = torch.stack([pdf(0, 2), pdf(1.5, 1)])
    return grid, dx, p_data, p_gen, torch.tensor([0.4, 0.6], dtype=D64)


def test_optimal_discriminator_value_is_js_form_and_maximal():
    _, dx, p_data, p_gen, p_c = _gaussian_conditionals()
    D = K.optimal_discriminator(p_data, p_gen)
    v = K.conditional_gan_value(D, p_data, p_gen, p_c, dx).item()
    js = (p_c * K.js_divergence(p_data, p_gen, dx)).sum().item()
    assert abs(v - (-math.log(4) + 2 * js)) < 1e-6
    g = torch_generator(1)
    for _ in range(5):  # any other discriminator scores lower
        other = (D + 0.1 * torch.randn(D.shape, generator=g, dtype=D64)).clamp(
            1e-6, 1 - 1e-6)
        assert K.conditional_gan_value(other, p_data, p_gen, p_c, dx).item() < v
    # a perfect generator: D* = 1/2 and the value is -log 4
    half = K.optimal_discriminator(p_data, p_data)
    assert torch.allclose(half, torch.full_like(half, 0.5))
    v0 = K.conditional_gan_value(half, p_data, p_data, p_c, dx).item()
    assert abs(v0 + math.log(4)) < 1e-6


def test_optimal_discriminator_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        K.optimal_discriminator(torch.ones(2, 3), torch.ones(3, 2))


@pytest.mark.slow
def test_trained_conditional_discriminator_approaches_optimum():
    grid, dx, p_data, p_gen, p_c = _gaussian_conditionals()
    g = torch_generator(0)
    n = 2000
    c = (torch.rand(n, generator=g) < 0.6).long()
    real = torch.where(c == 1, 2 + 0.5 * torch.randn(n, generator=g),
                       -1 + torch.randn(n, generator=g))
    fake = torch.where(c == 1, 1.5 + torch.randn(n, generator=g),
                       2 * torch.randn(n, generator=g))
    disc = K.ConditionalMLP([1, 32, 32, 1], 2, generator=g)
    xs, cs = torch.cat([real, fake])[:, None], K.one_hot(torch.cat([c, c]), 2)
    ts = torch.cat([torch.ones(n), torch.zeros(n)])[:, None]
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    for _ in range(200):
        loss = F.binary_cross_entropy_with_logits(disc(xs, cs), ts)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        D_hat = torch.stack([torch.sigmoid(disc(grid[:, None].float(), K.one_hot(
            torch.full((len(grid),), k), 2)))[:, 0] for k in range(2)]).double()
    D_star = K.optimal_discriminator(p_data, p_gen)
    v_star = K.conditional_gan_value(D_star, p_data, p_gen, p_c, dx).item()
    v_hat = K.conditional_gan_value(D_hat, p_data, p_gen, p_c, dx).item()
    assert v_hat < v_star < v_hat + 0.03
    inside = (grid > -3) & (grid < 3)
    assert (D_hat - D_star)[:, inside].abs().max() < 0.15


@pytest.fixture(scope="module")
def digit_data():
    data = digits(seed=0)
    judge = LogisticRegression(max_iter=2000).fit(data.X_train.numpy(),
                                                  data.y_train.numpy())
    return data, judge


@pytest.mark.slow
def test_cgan_samples_obey_the_label(digit_data):
    data, judge = digit_data
    X, y = data.train
    g = torch_generator(1)
    G = K.ConditionalMLP([16, 128, 64], 10, out_activation="sigmoid", generator=g)
    D = K.ConditionalMLP([64, 128, 1], 10, "leaky_relu", generator=g)
    K.train_cgan(G, D, X, K.one_hot(y, 10), steps=1000, batch_size=64, lr=1e-3,
                 generator=g)
    wanted = torch.arange(10).repeat_interleave(30)
    with torch.no_grad():
        xs = G(torch.randn(300, 16, generator=g), K.one_hot(wanted, 10))
    assert judge.score(xs.numpy(), wanted.numpy()) > 0.8
    assert xs[wanted == 3].std(0).mean() > 0.05  # not one image per class


# --- conditional VAE ---------------------------------------------------------

def test_gaussian_kl_matches_torch():
    g = torch_generator(0)
    mu = torch.randn(6, 4, generator=g, dtype=D64)
    logvar = torch.randn(6, 4, generator=g, dtype=D64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    ref = torch.distributions.kl_divergence(q, p).sum(-1)
    assert torch.allclose(K.gaussian_kl(mu, logvar), ref, atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        K.gaussian_kl(mu, logvar[:, :2])


def test_cvae_loss_is_bce_plus_kl_and_shapes():
    g = torch_generator(0)
    m = K.CVAE(64, 10, latent_dim=3, hidden=16, generator=g).double()
    x = torch.rand(5, 64, generator=g, dtype=D64)
    c = K.one_hot(torch.arange(5), 10).double()
    logits, mu, logvar = out = m(torch.cat([x, c], 1))
    assert logits.shape == (5, 64) and mu.shape == logvar.shape == (5, 3)
    # the Bernoulli log-likelihood, written out
    rec = -(x * torch.log(torch.sigmoid(logits))
            + (1 - x) * torch.log(1 - torch.sigmoid(logits))).sum(1)
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    assert torch.allclose(K.cvae_loss(out, x), (rec + kl).mean(), atol=1e-10)
    with pytest.raises(ValueError, match="input must be"):
        m(x)
    assert m.sample(c, generator=g).shape == (5, 64)


def test_linear_gaussian_evidence_matches_scipy():
    x = torch.tensor([0.3, -1.0, 2.5], dtype=D64)
    y = torch.tensor([0, 1, 1])
    b = torch.tensor([0.5, -2.0], dtype=D64)
    ours = K.linear_gaussian_log_evidence(x, y, 1.5, b, 0.5)
    ref = stats.norm(b[y].numpy(), math.sqrt(1.5 ** 2 + 0.25)).logpdf(x.numpy())
    assert np.allclose(ours.numpy(), ref, atol=1e-12)


def test_conditional_elbo_gap_is_kl_to_posterior():
    a, sigma = 1.2, 0.7
    b = torch.tensor([-1.0, 2.0], dtype=D64)
    x = torch.tensor([0.1, 1.7, -2.2, 3.0], dtype=D64)
    y = torch.tensor([0, 1, 0, 1])
    log_ev = K.linear_gaussian_log_evidence(x, y, a, b, sigma)
    pm = a * (x - b[y]) / (a * a + sigma * sigma)
    ps = torch.full_like(x, sigma / math.sqrt(a * a + sigma * sigma))
    tight = K.linear_gaussian_elbo(x, y, a, b, sigma, pm, ps)
    assert torch.allclose(tight, log_ev, atol=1e-12)
    m, s = pm - 0.4, 0.5 * ps
    loose = K.linear_gaussian_elbo(x, y, a, b, sigma, m, s)
    N = torch.distributions.Normal
    kl = torch.distributions.kl_divergence(N(m, s), N(pm, ps))
    assert torch.allclose(log_ev - loose, kl, atol=1e-12)
    # Monte Carlo estimate of the same ELBO
    z = m + s * torch.randn(200000, 4, generator=torch_generator(0), dtype=D64)
    mc = (N(a * z + b[y], sigma).log_prob(x) + N(0.0, 1.0).log_prob(z)
          - N(m, s).log_prob(z)).mean(0)
    assert torch.allclose(mc, loose, atol=5e-3)
    with pytest.raises(ValueError, match="positive"):
        K.linear_gaussian_elbo(x, y, a, b, sigma, m, -s)


@pytest.mark.slow
def test_cvae_samples_obey_the_label(digit_data):
    data, judge = digit_data
    X, y = data.train
    g = torch_generator(3)
    m = K.CVAE(64, 10, latent_dim=4, hidden=128, generator=g)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    fit(m, K.cvae_loss, opt, (torch.cat([X, K.one_hot(y, 10)], 1), X), epochs=30,
        batch_size=128, generator=g)
    wanted = torch.arange(10).repeat_interleave(30)
    xs = m.sample(K.one_hot(wanted, 10), generator=g)
    assert judge.score(xs.numpy(), wanted.numpy()) > 0.9


# --- guidance ----------------------------------------------------------------

def _noisy_log_density(classes, x, ab, y=None):
    lj = classes.noisy_log_joint(x, ab)
    return lj.logsumexp(1) if y is None else lj[torch.arange(len(x)), y]


def test_exact_eps_is_the_scaled_score_by_autograd():
    classes = K.GaussianClasses()
    g = torch_generator(0)
    x = torch.randn(7, 2, generator=g, dtype=D64).requires_grad_()
    y = torch.randint(0, 3, (7,), generator=g)
    for ab in (0.9, 0.3):
        for label in (None, y):
            score, = torch.autograd.grad(
                _noisy_log_density(classes, x, ab, label).sum(), x)
            eps = classes.eps(x.detach(), ab, label)
            assert torch.allclose(eps, -math.sqrt(1 - ab) * score, atol=1e-6)


def test_posterior_matches_scipy_bayes():
    classes = K.GaussianClasses(num_classes=3, radius=1.0, std=0.6)
    x = torch.tensor([[0.2, -0.1], [1.0, 1.0], [-2.0, 0.3]], dtype=D64)
    ab = 0.5
    var = ab * 0.36 + 1 - ab
    dens = np.stack([stats.multivariate_normal(math.sqrt(ab) * m.numpy(),
                                               var * np.eye(2)).pdf(x.numpy())
                     for m in classes.means.double()], 1)
    ref = dens / dens.sum(1, keepdims=True)
    assert np.allclose(classes.posterior(x, ab).numpy(), ref, atol=1e-6)


def test_alpha_bar_schedule():
    ab = K.linear_alpha_bar(20, 1e-3, 0.3)
    ref = np.cumprod(1 - np.linspace(1e-3, 0.3, 20))
    assert np.allclose(ab.numpy(), ref, atol=1e-6)
    assert (ab[1:] < ab[:-1]).all()
    with pytest.raises(ValueError, match="beta_min"):
        K.linear_alpha_bar(10, 0.5, 0.1)


def test_cfg_equals_classifier_guidance_and_tilted_score():
    classes = K.GaussianClasses()
    alpha_bar = K.linear_alpha_bar(50, beta_max=0.2).double()
    g = torch_generator(2)
    y = torch.randint(0, 3, (9,), generator=g)
    x = torch.randn(9, 2, generator=g, dtype=D64)
    for t in (3, 30):
        ab = alpha_bar[t].item()
        uncond = lambda x_, t_: classes.eps(x_, alpha_bar[t_].item())

        def grad_log_py(x_, t_):
            x_ = x_.clone().requires_grad_()
            lp = classes.noisy_log_joint(x_, alpha_bar[t_].item()).log_softmax(1)
            return torch.autograd.grad(lp[torch.arange(len(x_)), y].sum(), x_)[0]

        for w in (0.0, 1.0, 3.5):
            cfg = (1 + w) * classes.eps(x, ab, y) - w * classes.eps(x, ab)
            cg = K.classifier_guided_eps(uncond, grad_log_py, alpha_bar,
                                         K.w_to_scale(w))(x, t)
            assert torch.allclose(cfg, cg, atol=1e-8)
            # the score of p_t(x|y) p_t(y|x)^w, by autograd
            xr = x.clone().requires_grad_()
            lj = classes.noisy_log_joint(xr, ab)
            tilt = (lj[torch.arange(9), y]
                    + w * lj.log_softmax(1)[torch.arange(9), y]).sum()
            score, = torch.autograd.grad(tilt, xr)
            assert torch.allclose(cfg, -math.sqrt(1 - ab) * score, atol=1e-8)


def test_guidance_scale_conventions():
    assert K.w_to_scale(6.5) == pytest.approx(7.5)
    assert K.scale_to_w(K.w_to_scale(2.0)) == pytest.approx(2.0)
    assert K.scale_to_w(1.0) == pytest.approx(0.0)


def test_ddpm_sampler_with_exact_eps_reproduces_the_data():
    classes = K.GaussianClasses(num_classes=3, radius=1.5, std=0.4)
    alpha_bar = K.linear_alpha_bar(100, beta_max=0.1)
    y = torch.arange(3).repeat_interleave(1000)
    eps = lambda x, t: classes.eps(x, alpha_bar[t].item(), y)
    xs = K.ddpm_sample(eps, len(y), alpha_bar, generator=torch_generator(0))
    for k in range(3):
        pts = xs[y == k]
        assert torch.allclose(pts.mean(0), classes.means[k], atol=0.06)
        assert abs(pts.std(0).mean().item() / 0.4 - 1) < 0.08
    fid, div = K.fidelity_diversity(classes, xs, y)
    ref_fid, ref_div = K.tilted_fidelity_diversity(classes, 0.0)
    assert abs(fid - ref_fid) < 0.02 and abs(div - ref_div) < 0.12


def test_tilted_target_moves_with_w():
    classes = K.GaussianClasses()
    fid0, div0 = K.tilted_fidelity_diversity(classes, 0.0)
    x, y = classes.sample(20000, seed=3)  # Monte Carlo of the untilted case
    mc = classes.posterior(x)[torch.arange(len(x)), y].mean().item()
    assert abs(fid0 - mc) < 0.01 and abs(div0 - 1) < 1e-3
    rows = [K.tilted_fidelity_diversity(classes, w) for w in (0.5, 2.0, 8.0)]
    assert all(a[0] < b[0] and a[1] > b[1] for a, b in zip(rows, rows[1:]))


def test_denoiser_checks_shapes():
    net = K.ConditionalDenoiser(3, 10, hidden=8, generator=torch_generator(0))
    assert net(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long),
               torch.full((4,), 3)).shape == (4, 2)
    with pytest.raises(ValueError, match="need x"):
        net(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), torch.zeros(4))
    with pytest.raises(ValueError, match="need x"):  # a bad y alone
        net(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), torch.zeros(3))
    with pytest.raises(ValueError, match="need x"):  # a bad t alone
        net(torch.zeros(4, 2), torch.zeros(5, dtype=torch.long), torch.zeros(4))


@pytest.mark.slow
def test_guidance_trades_diversity_for_fidelity():
    classes = K.GaussianClasses()
    X, y = classes.sample(3000, seed=0)
    alpha_bar = K.linear_alpha_bar(50, beta_max=0.2)
    g = torch_generator(4)
    net = K.ConditionalDenoiser(3, 50, hidden=64, generator=g)
    K.train_denoiser(net, X, y, alpha_bar, steps=800, generator=g)
    asked = torch.arange(3).repeat_interleave(300)
    rows = [K.fidelity_diversity(classes, K.ddpm_sample(
        K.cfg_eps(net, asked, w), len(asked), alpha_bar,
        generator=torch_generator(5)), asked) for w in (0.0, 1.0, 4.0)]
    assert abs(rows[0][0] - K.tilted_fidelity_diversity(classes, 0)[0]) < 0.05
    assert rows[0][0] < rows[1][0] < rows[2][0]
    assert rows[0][1] > rows[1][1] > rows[2][1]


# --- translation -------------------------------------------------------------

def test_circle_pairs_lie_on_the_circle():
    a, b = K.circle_pairs(500, seed=0)
    assert K.distance_to_circle(b).max() < 1e-6
    assert torch.allclose(b[:, :1], a)
    assert 0.4 < (b[:, 1] > 0).float().mean() < 0.6
    mid = torch.tensor([[0.0, 0.0], [0.6, 0.0]])
    assert torch.allclose(K.distance_to_circle(mid), torch.tensor([1.0, 0.4]))


def test_mmd2_matches_direct_computation():
    g = torch_generator(0)
    x = torch.randn(30, 2, generator=g, dtype=D64)
    y = torch.randn(40, 2, generator=g, dtype=D64) + 0.5
    xn, yn, hs = x.numpy(), y.numpy(), (0.2, 0.5, 1.0, 2.0)

    def k(u, v):
        d2 = ((u[:, None, :] - v[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-d2 / (2 * h * h)) for h in hs)

    ref = k(xn, xn).mean() + k(yn, yn).mean() - 2 * k(xn, yn).mean()
    assert abs(K.mmd2(x, y).item() - ref) < 1e-10
    assert abs(K.mmd2(x, x).item()) < 1e-10
    with pytest.raises(ValueError, match="need x"):
        K.mmd2(x, y[:, :1])


@pytest.mark.slow
def test_regression_averages_and_pix2pix_stays_on_the_circle():
    a, b = K.circle_pairs(1000, seed=0)
    g = torch_generator(8)
    reg = mlp([1, 64, 64, 2], generator=g)
    K.train_regressor(reg, a, b, steps=300, loss="l2")
    G = K.ConditionalMLP([2, 64, 64, 2], 1, generator=g)
    D = K.ConditionalMLP([2, 64, 64, 1], 1, generator=g)
    K.train_pix2pix(G, D, a, b, steps=800, generator=g)
    at, bt = K.circle_pairs(500, seed=1)
    with torch.no_grad():
        b_reg = reg(at)
        b_gan = G(torch.randn(500, 2, generator=g), at)
    off_reg = K.distance_to_circle(b_reg).mean().item()
    off_gan = K.distance_to_circle(b_gan)
    # the regressor predicts the mean (a, 0), at distance 1 - |a| on average 1/2
    assert abs(off_reg - 0.5) < 0.1
    assert off_gan.mean().item() < 0.2 * off_reg
    # squared error: h^2 against 2 h^2 on average (2/3 and 4/3); L1: a tie
    se = [(b - bt).pow(2).sum(1).mean().item() for b in (b_reg, b_gan)]
    l1 = [(b - bt).abs().sum(1).mean().item() for b in (b_reg, b_gan)]
    assert abs(se[0] - 2 / 3) < 0.1 and se[0] < 0.7 * se[1]
    assert abs(l1[0] - math.pi / 4) < 0.05 and abs(l1[0] - l1[1]) < 0.1
    assert 0.3 < (b_gan[:, 1] > 0).float().mean().item() < 0.7  # both answers


@pytest.mark.slow
def test_cycle_loss_makes_the_maps_inverse():
    T = torch.diag(torch.tensor([0.85, 0.42]))
    A, _ = ring_of_gaussians(1000, modes=4, radius=1.5, std=0.15, seed=0)
    B = ring_of_gaussians(1000, modes=4, radius=1.5, std=0.15, seed=1)[0] @ T
    At, _ = ring_of_gaussians(300, modes=4, radius=1.5, std=0.15, seed=2)
    err = {}
    for lam in (0.0, 1.0):
        g = torch_generator(9)
        G, Fm = mlp([2, 32, 32, 2], generator=g), mlp([2, 32, 32, 2], generator=g)
        K.train_cycle(G, Fm, A, B, steps=300, lam_cycle=lam, batch_size=128,
                      generator=g)
        with torch.no_grad():
            err[lam] = (Fm(G(At)) - At).norm(dim=1).mean().item()
            assert K.mmd2(G(At), B[:300]).item() < 0.1 * K.mmd2(At, B[:300]).item()
            dist = [(G(At) - At @ S.T @ T).norm(dim=1).mean().item()
                    for S in K.dihedral_group(4)]
        # the learned map is one of the symmetric alternatives T g, not T
        assert min(dist) < 0.1 and dist[0] > 5 * min(dist)
    assert err[0.0] > 10 * err[1.0]


def test_dihedral_group_maps_the_ring_to_itself():
    group = K.dihedral_group(4)
    assert group.shape == (8, 2, 2)
    eye = torch.eye(2).expand(8, 2, 2)
    assert torch.allclose(group @ group.transpose(1, 2), eye, atol=1e-6)
    dets = torch.linalg.det(group)
    assert torch.allclose(dets, torch.tensor([1.0] * 4 + [-1.0] * 4), atol=1e-6)
    angle = torch.arange(4) * math.pi / 2
    centres = torch.stack([angle.cos(), angle.sin()], 1)
    for S in group:  # each element permutes the centres
        moved = centres @ S.T
        assert torch.cdist(moved, centres).min(1).values.max() < 1e-6
    flat = group.reshape(8, 4)
    assert torch.cdist(flat, flat).fill_diagonal_(9).min() > 0.5  # all distinct
    with pytest.raises(ValueError, match="positive"):
        K.dihedral_group(0)


# --- text-to-image -----------------------------------------------------------

def test_text_encoder_sums_word_vectors():
    enc = K.TextEncoder(["a", "b", "c"], dim=5, seed=0)
    e = enc.encode(["a c", "b"])
    assert torch.allclose(e[0], enc.vectors[0] + enc.vectors[2])
    assert torch.allclose(e[1], enc.vectors[1])
    with pytest.raises(ValueError, match="unknown words"):
        enc.encode(["a d"])


def test_shifted_digit_captions():
    X = digits(seed=0).X_train[:5]
    y = torch.tensor([0, 1, 2, 3, 4])
    imgs, caps, dig, side = K.shifted_digit_captions(X, y)
    assert imgs.shape == (10, 64) and len(caps) == 10
    assert caps[0] == "zero left" and caps[6] == "one right"
    assert torch.equal(imgs[:5], shift_images(X, -1, 0))
    assert torch.equal(side, torch.tensor([0] * 5 + [1] * 5))
    assert torch.equal(dig, torch.cat([y, y]))


# --- world models ------------------------------------------------------------

def test_pendulum_step_matches_hand_computation():
    env = K.Pendulum(dt=0.1, g_over_l=4.0, damping=0.2)
    s = torch.tensor([[0.5, -1.0]], dtype=D64)
    u = torch.tensor([[0.3]], dtype=D64)
    omega = -1.0 + 0.1 * (-4.0 * math.sin(0.5) + 0.2 * 1.0 + 0.3)
    ref = torch.tensor([[0.5 + 0.1 * omega, omega]], dtype=D64)
    assert torch.allclose(env.step(s, u), ref, atol=1e-12)
    with pytest.raises(ValueError, match="need s"):
        env.step(s, u[0])


def test_pendulum_lipschitz_bounds_the_jacobian():
    env = K.Pendulum()
    L = env.lipschitz()
    g = torch_generator(0)
    worst = 0.0
    for _ in range(50):
        s = (torch.rand(1, 2, generator=g, dtype=D64) - 0.5) * 8
        u = torch.rand(1, 1, generator=g, dtype=D64)
        J = torch.autograd.functional.jacobian(lambda v: env.step(v[None], u)[0],
                                               s[0])
        worst = max(worst, torch.linalg.matrix_norm(J, 2).item())
    assert worst <= L + 1e-9
    assert worst > L - 0.05  # the bound is attained near theta = 0 or pi


def test_compounding_bound_is_the_recursion():
    for L in (0.8, 1.0, 1.3):
        bound = K.compounding_bound(0.1, L, 12)
        e = [0.0]
        for _ in range(12):
            e.append(L * e[-1] + 0.1)
        assert torch.allclose(bound, torch.tensor(e, dtype=D64), atol=1e-12)
    # per-step errors, one row per trajectory: the same recursion
    g = torch_generator(0)
    eps = torch.rand(3, 7, generator=g, dtype=D64)
    per = K.compounding_bound(eps, 1.2)
    assert per.shape == (3, 8) and torch.equal(per[:, 0], torch.zeros(3, dtype=D64))
    for k in range(7):
        assert torch.allclose(per[:, k + 1], eps[:, k] + 1.2 * per[:, k])
    const = K.compounding_bound(torch.full((1, 7), 0.1, dtype=D64), 1.3)[0]
    assert torch.allclose(const, K.compounding_bound(0.1, 1.3, 7))
    with pytest.raises(ValueError, match="needs the horizon"):
        K.compounding_bound(0.1, 1.3)


def test_rollout_of_the_true_dynamics_is_exact():
    env = K.Pendulum()
    S, U = K.transitions(env, 5, 10, seed=0)
    assert S.shape == (5, 11, 2) and U.shape == (5, 10, 1)

    class True_(nn.Module):
        def forward(self, su):
            return env.step(su[:, :2], su[:, 2:]) - su[:, :2]

    pred = K.rollout(True_(), S[:, 0], U)
    assert K.rollout_errors(pred, S).max() < 1e-5
    with pytest.raises(ValueError, match="shapes differ"):
        K.rollout_errors(pred[:, :3], S)


@pytest.mark.slow
def test_world_model_error_compounds_within_the_bound():
    env = K.Pendulum()
    S, U = K.transitions(env, 200, 30, seed=0)
    St, Ut = K.transitions(env, 100, 30, seed=1)
    inputs = torch.cat([S[:, :-1], U], 2).reshape(-1, 3)
    deltas = (S[:, 1:] - S[:, :-1]).reshape(-1, 2)
    g = torch_generator(11)
    net = mlp([3, 64, 64, 2], generator=g)
    fit(net, F.mse_loss, torch.optim.Adam(net.parameters(), lr=3e-3),
        (inputs, deltas), epochs=15, batch_size=256, generator=g)
    pred = K.rollout(net, St[:, 0], Ut)
    err = K.rollout_errors(pred, St)
    assert err[30] > 5 * err[1]
    with torch.no_grad():
        v = torch.cat([pred[:, :-1], Ut], 2).reshape(-1, 3)
        e_bar = (v[:, :2] + net(v) - env.step(v[:, :2], v[:, 2:])).norm(dim=1).max()
    bound = K.compounding_bound(e_bar.item(), env.lipschitz(), 30)
    assert ((pred - St).norm(dim=-1).max(0).values.double() <= bound + 1e-6).all()
    with torch.no_grad():  # the per-trajectory bound holds too, and is tighter
        delta = (v[:, :2] + net(v) - env.step(v[:, :2], v[:, 2:])).norm(dim=1)
    per = K.compounding_bound(delta.reshape(len(St), 30), env.lipschitz())
    assert ((pred - St).norm(dim=-1).double() <= per + 1e-6).all()
    assert (per <= bound + 1e-6).all()
    const = (St - St[:, :1]).norm(dim=-1).mean(0)
    assert err[30] < 0.5 * const[30]


def test_exact_guided_sampler_does_not_sample_the_tilted_target():
    classes = K.GaussianClasses()
    alpha_bar = K.linear_alpha_bar(50, beta_max=0.2)
    y = torch.arange(3).repeat_interleave(600)
    w = 4.0
    eps = lambda x, t: ((1 + w) * classes.eps(x, alpha_bar[t].item(), y)
                        - w * classes.eps(x, alpha_bar[t].item()))
    xs = K.ddpm_sample(eps, len(y), alpha_bar, generator=torch_generator(1))
    fid, _ = K.fidelity_diversity(classes, xs, y)
    tilt_fid, _ = K.tilted_fidelity_diversity(classes, w)
    assert fid > tilt_fid + 0.02


@pytest.mark.slow
def test_caption_model_follows_seen_captions_but_not_new_pairs(digit_data):
    data, _ = digit_data
    X_cap, caps, dig, side = K.shifted_digit_captions(*data.train)
    enc = K.TextEncoder([*K.DIGIT_WORDS, *K.SIDES], dim=16, seed=0)
    E = enc.encode(caps)
    held = {(3, 0), (7, 1), (8, 0), (9, 1)}
    seen = torch.tensor([(int(d), int(s)) not in held for d, s in zip(dig, side)])
    judge = LogisticRegression(max_iter=2000).fit(X_cap.numpy(),
                                                  (2 * dig + side).numpy())
    g = torch_generator(10)
    m = K.CVAE(64, 16, latent_dim=4, hidden=128, generator=g)
    fit(m, K.cvae_loss, torch.optim.Adam(m.parameters(), lr=3e-3),
        (torch.cat([X_cap[seen], E[seen]], 1), X_cap[seen]), epochs=20,
        batch_size=128, generator=g)
    names = list(K.SIDES)

    def scores(pairs):
        want = torch.tensor([[d, s] for d, s in pairs for _ in range(20)])
        c = enc.encode([f"{K.DIGIT_WORDS[d]} {names[s]}" for d, s in want.tolist()])
        pred = torch.as_tensor(judge.predict(m.sample(c, generator=g).numpy()))
        return ((pred // 2 == want[:, 0]).float().mean().item(),
                (pred % 2 == want[:, 1]).float().mean().item())

    seen_digit, seen_side = scores([(1, 0), (3, 1), (7, 0), (8, 1), (9, 0)])
    held_digit, held_side = scores(sorted(held))
    assert seen_digit > 0.9 and seen_side > 0.9
    assert held_side > 0.8 and held_digit < 0.5
