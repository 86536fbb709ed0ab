"""Tests of dlbook.similarity: the losses against direct float64 formulations
and torch, the metrics against scipy and scikit-learn, the InfoNCE bound on a
Gaussian pair with known mutual information, and the chapter's key claims
rerun at small size."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import pdist
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from dlbook import similarity as S
from dlbook.data import digits
from dlbook.nn import mlp
from dlbook.seed import torch_generator
from dlbook.train import fit

F = nn.functional
torch.set_num_threads(1)
D64 = torch.float64


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch_generator(seed), dtype=D64)


@pytest.fixture(scope="module")
def data():
    return digits(seed=0)


# --- losses against independent formulations -------------------------------------

def _info_nce_loop(z1, z2, tau):
    """InfoNCE written row by row: -log(e^{s_ii} / sum_j e^{s_ij})."""
    total = 0.0
    for i in range(len(z1)):
        s = [float(z1[i] @ z2[j]) / tau for j in range(len(z2))]
        total += -(s[i] - math.log(sum(math.exp(v) for v in s)))
    return total / len(z1)


def test_info_nce_matches_a_loop_and_its_gradient_is_right():
    z1, z2 = _randn(7, 4, seed=0), _randn(7, 4, seed=1)
    ours = S.info_nce(z1, z2, temperature=0.3)
    assert abs(ours.item() - _info_nce_loop(z1, z2, 0.3)) < 1e-10
    a = z1.clone().requires_grad_()
    b = z2.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda u, v: S.info_nce(u, v, 0.3), (a, b))


def _nt_xent_direct(z1, z2, tau):
    """NT-Xent as the SimCLR paper writes it: for each anchor k with positive
    p(k), -log e^{s_kp/tau} / sum_{m != k} e^{s_km/tau}, averaged over 2N."""
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n2 = len(z)
    losses = []
    for k in range(n2):
        p = (k + n2 // 2) % n2
        sims = torch.tensor([float(z[k] @ z[m]) / tau for m in range(n2)], dtype=D64)
        others = torch.cat([sims[:k], sims[k + 1:]])
        losses.append(-(sims[p] - torch.logsumexp(others, 0)))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_nt_xent_matches_the_direct_cross_entropy(tau):
    z1, z2 = _randn(6, 5, seed=2), _randn(6, 5, seed=3)
    ref = _nt_xent_direct(z1, z2, tau).item()
    assert abs(S.nt_xent(z1, z2, tau).item() - ref) < 1e-10
    a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda u, v: S.nt_xent(u, v, tau), (a, b))


def test_nt_xent_is_symmetric_and_scale_invariant():
    z1, z2 = _randn(5, 3, seed=4), _randn(5, 3, seed=5)
    l12, l21 = S.nt_xent(z1, z2), S.nt_xent(z2, z1)
    assert abs(l12.item() - l21.item()) < 1e-12
    assert abs(S.nt_xent(3 * z1, 0.5 * z2).item() - l12.item()) < 1e-12


def test_clip_loss_is_the_mean_of_two_info_nce():
    zi, zt = _randn(8, 4, seed=6), _randn(8, 4, seed=7)
    ni, nt = F.normalize(zi, dim=1), F.normalize(zt, dim=1)
    ref = 0.5 * (S.info_nce(ni, nt, 0.2) + S.info_nce(nt, ni, 0.2))
    assert abs(S.clip_loss(zi, zt, 0.2).item() - ref.item()) < 1e-12


def test_batched_loss_is_the_mean_over_chunks():
    z = _randn(2, 11, 3, seed=40)
    y = torch.zeros(11)
    base = lambda o, t: S.nt_xent(o[0], o[1], 0.5)
    wrapped = S.batched_loss(base, 4)
    ref = np.mean([base(z[:, i:i + 4], y[i:i + 4]).item() for i in (0, 4, 8)])
    assert abs(wrapped(z, y).item() - ref) < 1e-12
    assert abs(wrapped(z[:, :4], y[:4]).item() - base(z[:, :4], y[:4]).item()) < 1e-12
    assert abs(S.batched_loss(base, 5)(z, y).item()  # last chunk of one is skipped
               - np.mean([base(z[:, i:i + 5], y[:5]).item() for i in (0, 5)])) < 1e-12
    with pytest.raises(ValueError, match="batch_size"):
        S.batched_loss(base, 1)


def test_triplet_loss_matches_torch():
    a, p, n = (_randn(9, 3, seed=s) for s in (8, 9, 10))
    ours = S.triplet_loss(a, p, n, margin=0.7)
    ref = F.triplet_margin_loss(a, p, n, margin=0.7, eps=0.0)
    assert abs(ours.item() - ref.item()) < 1e-10


def test_pair_loss_matches_the_closed_form():
    z1, z2 = _randn(10, 3, seed=11), _randn(10, 3, seed=12)
    same = (torch.arange(10) % 2).double()
    d = np.linalg.norm(z1.numpy() - z2.numpy(), axis=1)
    s = same.numpy()
    ref = np.mean(0.5 * (s * d**2 + (1 - s) * np.maximum(0, 2.0 - d) ** 2))
    assert abs(S.pair_contrastive_loss(z1, z2, same, margin=2.0).item() - ref) < 1e-10


@pytest.mark.parametrize("fn,args", [
    (S.info_nce, (torch.zeros(3, 2), torch.zeros(4, 2))),
    (S.nt_xent, (torch.zeros(1, 2), torch.zeros(1, 2))),
    (S.triplet_loss, (torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 3))),
])
def test_losses_reject_bad_shapes(fn, args):
    with pytest.raises(ValueError):
        fn(*args)


def test_losses_reject_bad_temperature_and_margin():
    z = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="temperature"):
        S.info_nce(z, z, temperature=0.0)
    with pytest.raises(ValueError, match="margin"):
        S.triplet_loss(z, z, z, margin=-1.0)


# --- alignment, uniformity, probes ---------------------------------------------

def test_alignment_and_uniformity_match_scipy():
    z1 = F.normalize(_randn(30, 4, seed=13), dim=1)
    z2 = F.normalize(z1 + 0.1 * _randn(30, 4, seed=14), dim=1)
    ref_align = np.mean(np.linalg.norm(z1.numpy() - z2.numpy(), axis=1) ** 2)
    assert abs(S.alignment(z1, z2) - ref_align) < 1e-12
    sq = pdist(z1.numpy(), "sqeuclidean")
    assert abs(S.uniformity(z1) - np.log(np.mean(np.exp(-2 * sq)))) < 1e-10


def test_uniformity_extremes():
    """0 for a collapsed encoder; for N equispaced points on the circle the
    all-pairs mean of exp(-2|u - v|^2) is e^{-4} I_0(4) (to machine precision),
    so the mean over distinct pairs is (N e^{-4} I_0(4) - 1) / (N - 1)."""
    from scipy.special import i0
    assert abs(S.uniformity(torch.ones(20, 3))) < 1e-12
    n = 2000
    ang = torch.arange(n, dtype=D64) * 2 * math.pi / n
    circle = torch.stack([ang.cos(), ang.sin()], 1)
    all_pairs = math.exp(-4) * float(i0(4.0))
    exact = math.log((n * all_pairs - 1) / (n - 1))
    assert abs(S.uniformity(circle) - exact) < 1e-9


def test_uniformity_sphere_matches_quadrature_and_sampling():
    """The closed form against the circle's Bessel value, numerical quadrature
    of E exp(-2 |u - v|^2) over the density of u.v on S^{d-1}, and sampling."""
    from scipy import integrate
    from scipy.special import beta, i0
    assert abs(S.uniformity_sphere(2) - (-4 + math.log(float(i0(4.0))))) < 1e-12
    for d in (3, 8, 32):
        dens = lambda s: (1 - s * s) ** ((d - 3) / 2) / beta(0.5, (d - 1) / 2)
        val, _ = integrate.quad(lambda s: math.exp(-2 * (2 - 2 * s)) * dens(s), -1, 1)
        assert abs(S.uniformity_sphere(d) - math.log(val)) < 1e-8
    z = F.normalize(_randn(3000, 32, seed=30), dim=1)
    assert abs(S.uniformity(z) - S.uniformity_sphere(32)) < 0.01
    with pytest.raises(ValueError, match="dim"):
        S.uniformity_sphere(1)


def test_triplet_margin_only_sets_the_scale():
    """Proposition (what the margin does), part 3: T_g(f) = g T_1(f / g)."""
    a, p, n = (_randn(50, 3, seed=s) for s in (31, 32, 33))
    for g in (0.5, 4.0):
        lhs = S.triplet_loss(a, p, n, margin=g)
        rhs = g * S.triplet_loss(a / g, p / g, n / g, margin=1.0)
        assert abs(lhs.item() - rhs.item()) < 1e-12
    const = torch.zeros(50, 3, dtype=D64)
    assert abs(S.triplet_loss(const, const, const, margin=2.5).item() - 2.5) < 1e-12


def test_knn_accuracy_matches_sklearn(data):
    Xtr, ytr = data.X_train[:400], data.y_train[:400]
    Xte, yte = data.X_test[:150], data.y_test[:150]
    ref = KNeighborsClassifier(5).fit(Xtr.numpy(), ytr.numpy()).score(Xte.numpy(),
                                                                         yte.numpy())
    assert abs(S.knn_accuracy(Xtr, ytr, Xte, yte, k=5) - ref) < 0.01


def test_few_label_indices_balanced_and_seeded(data):
    idx = S.few_label_indices(data.y_train, 3, generator=torch_generator(0))
    assert torch.bincount(data.y_train[idx], minlength=10).tolist() == [3] * 10
    again = S.few_label_indices(data.y_train, 3, generator=torch_generator(0))
    other = S.few_label_indices(data.y_train, 3, generator=torch_generator(1))
    assert torch.equal(idx, again) and not torch.equal(idx, other)
    with pytest.raises(ValueError, match="class"):
        S.few_label_indices(data.y_train, 10_000, generator=torch_generator(0))


# --- augmentations, pairs, captions ----------------------------------------------

def test_identity_augmentation_and_shapes(data):
    x = data.X_train[:16]
    same = S.augment_digits(x, S.Augment(0, 0, 0, 0, 0, 0),
                            generator=torch_generator(0))
    assert torch.allclose(same, x, atol=1e-6)
    v1 = S.augment_digits(x, generator=torch_generator(1))
    v2 = S.augment_digits(x, generator=torch_generator(1))
    v3 = S.augment_digits(x, generator=torch_generator(2))
    assert v1.shape == x.shape and torch.equal(v1, v2) and not torch.equal(v1, v3)
    assert v1.min() >= 0 and v1.max() <= 1
    with pytest.raises(ValueError, match="shape"):
        S.augment_digits(torch.zeros(3, 10))


def test_one_pixel_shift_matches_shift_images(data):
    """A pure translation by one pixel is the exact shift of dlbook.data."""
    from dlbook.data import shift_images
    x = data.X_train[:8]
    aug = S.Augment(degrees=0, scale=0, shift=0, erase=0, noise=0)
    theta = torch.tensor([[1.0, 0, -0.25], [0, 1.0, 0]]).expand(8, 2, 3)
    grid = F.affine_grid(theta, [8, 1, 8, 8], align_corners=False)
    moved = F.grid_sample(x.reshape(-1, 1, 8, 8), grid, align_corners=False)
    assert torch.allclose(moved.reshape(8, 64), shift_images(x, 1, 0), atol=1e-6)
    assert torch.allclose(S.augment_digits(x, aug), x, atol=1e-6)


def test_make_pairs_labels_are_right(data):
    X, y = data.X_train[:200], data.y_train[:200]
    pairs, same = S.make_pairs(X, y, generator=torch_generator(0))
    lab = {tuple(r.tolist()): int(c) for r, c in zip(X, y)}
    for (a, b), s in zip(pairs[::7], same[::7]):
        assert (lab[tuple(a.tolist())] == lab[tuple(b.tolist())]) == bool(s)


def test_captions_name_the_digit(data):
    X, y = data.X_train[:100], data.y_train[:100]
    T = S.digit_captions(X, y, generator=torch_generator(0))
    assert T.shape == (100, len(S.CAPTION_VOCAB))
    names = T[:, :10] + T[:, 10:20]  # word or numeral of each digit
    assert torch.equal(names.argmax(1), y) and torch.all(names.sum(1) == 1)
    stroke = T[:, S.CAPTION_VOCAB.index("thick")] + T[:, S.CAPTION_VOCAB.index("thin")]
    assert torch.all(stroke == 1)
    with pytest.raises(ValueError, match="CAPTION_VOCAB"):
        S.prompt("eleven")


def test_siamese_shares_weights_across_members():
    net = S.Siamese(mlp([4, 3], generator=torch_generator(0), dtype=D64))
    x = _randn(5, 3, 4, seed=20)
    out = net(x)
    assert out.shape == (5, 3, 3)
    assert torch.allclose(out[:, 2], net.net(x[:, 2]), atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        net(x[:, 0])


def test_zero_shot_predict_is_nearest_cosine():
    img = torch.tensor([[1.0, 0.1], [0.0, -2.0]])
    txt = torch.tensor([[5.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert S.zero_shot_predict(img, txt).tolist() == [0, 2]


# --- the InfoNCE bound -------------------------------------------------------------

def test_gaussian_critic_is_the_log_density_ratio():
    rho, d = 0.7, 3
    x, y = S.gaussian_pair(4, d, rho, generator=torch_generator(0))
    ours = S.gaussian_critic(x, y, rho)
    cond = [[stats.multivariate_normal(rho * x[i].numpy(), (1 - rho**2) * np.eye(d))
             .logpdf(y[j].numpy()) for j in range(4)] for i in range(4)]
    marg = stats.multivariate_normal(np.zeros(d), np.eye(d)).logpdf(y.numpy())
    assert np.allclose(ours.numpy(), np.array(cond) - marg[None], atol=1e-10)


def test_gaussian_mi_matches_the_covariance_formula():
    rho, d = 0.8, 4
    cov = np.block([[np.eye(d), rho * np.eye(d)], [rho * np.eye(d), np.eye(d)]])
    ref = 0.5 * (np.linalg.slogdet(np.eye(d))[1] * 2 - np.linalg.slogdet(cov)[1])
    assert abs(S.gaussian_mi(d, rho) - ref) < 1e-12


def test_infonce_bound_holds_and_saturates_at_log_n():
    """The claim of the chapter: log N - L_N <= I(X; Y) (in expectation) and
    <= log N always; at small I it is nearly tight, at large I it is log N."""
    g = torch_generator(0)
    for rho, n in [(0.5, 256), (0.9, 64), (0.999, 32)]:
        ests = [S.infonce_estimate(S.gaussian_critic(*S.gaussian_pair(
            n, 4, rho, generator=g), rho)) for _ in range(20)]
        mi, est = S.gaussian_mi(4, rho), float(np.mean(ests))
        assert max(ests) <= math.log(n) + 1e-12
        assert est <= mi + 0.05
        if mi < 1:
            assert est > mi - 0.1
        if mi > math.log(n) + 3:
            assert est > math.log(n) - 0.1


def test_infonce_estimate_is_a_bound_for_a_suboptimal_critic():
    g = torch_generator(1)
    x, y = S.gaussian_pair(512, 2, 0.8, generator=g)
    est = S.infonce_estimate(0.3 * x @ y.T)  # a scaled bilinear critic
    assert est < S.gaussian_mi(2, 0.8)


def test_wang_isola_limit():
    """L(M) - log M approaches the asymptotic alignment-uniformity form."""
    g = torch_generator(2)
    tau = 0.5
    base = F.normalize(torch.randn(4000, 3, generator=g, dtype=D64), dim=1)
    pos = F.normalize(base + 0.3 * torch.randn(4000, 3, generator=g, dtype=D64), dim=1)
    limit = (-(base * pos).sum(1).mean() / tau
             + torch.logsumexp(pos @ base.T / tau, 1).mean() - math.log(4000))
    gaps = []
    for M in [4, 64, 1024]:
        neg = base[torch.randint(4000, (2000, M), generator=g)]       # (B, M, 3)
        x, yv = base[:2000], pos[:2000]
        s_pos = (x * yv).sum(1, keepdim=True) / tau
        s_neg = torch.einsum("bmd,bd->bm", neg, yv) / tau
        loss = (torch.logsumexp(torch.cat([s_pos, s_neg], 1), 1) - s_pos[:, 0]).mean()
        gaps.append(abs(loss.item() - math.log(M) - limit.item()))
    assert gaps[-1] < 0.02 and gaps[-1] < gaps[0]


# --- the chapter's key claims at small size -----------------------------------------

def test_pair_loss_without_negatives_collapses(data):
    X, y = data.X_train[:300], data.y_train[:300]
    pairs, same = S.make_pairs(X, y, generator=torch_generator(0))
    spread = {}
    for name, keep in [("positives", same == 1), ("both", same >= 0)]:
        net = S.Siamese(mlp([64, 32, 2], generator=torch_generator(1)))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        fit(net, lambda o, s: S.pair_contrastive_loss(o[:, 0], o[:, 1], s, 1.0), opt,
            (pairs[keep], same[keep]), epochs=30, batch_size=128,
            generator=torch_generator(2))
        with torch.no_grad():
            spread[name] = torch.pdist(net.net(X)).mean().item()
    assert spread["positives"] < 0.05 and spread["both"] > 0.5


@pytest.mark.slow
def test_simclr_beats_raw_pixels_with_few_labels_and_collapse_is_aligned(data):
    Xtr, ytr, Xte, yte = *data.train, *data.test

    def model(seed):
        enc = nn.Sequential(mlp([64, 128, 64], generator=torch_generator(seed)),
                            nn.ReLU())
        return S.TwoViews(enc, mlp([64, 64, 32], generator=torch_generator(seed + 1)),
                          generator=torch_generator(seed + 2))

    def train(loss, epochs):
        m = model(0)
        mon = S.AlignUniformMonitor(Xte[:200])
        fit(m, loss, torch.optim.Adam(m.parameters(), lr=2e-3), (Xtr, ytr),
            epochs=epochs, batch_size=256, generator=torch_generator(3), callback=mon)
        return m, mon.measure(m)

    def align_only(o, y):
        u1, u2 = F.normalize(o[0], dim=1), F.normalize(o[1], dim=1)
        return (u1 - u2).pow(2).sum(1).mean()

    simclr, (a_s, u_s) = train(lambda o, y: S.nt_xent(o[0], o[1], 0.5), 40)

    coll, (a_c, u_c) = train(align_only, 15)
    assert a_c < 0.01 and u_c > -0.05 and u_s < -1.5  # aligned is not enough
    accs = {"raw": [], "simclr": []}
    for s in range(3):
        idx = S.few_label_indices(ytr, 5, generator=torch_generator(s))
        accs["raw"].append(S.linear_probe(Xtr[idx], ytr[idx], Xte, yte))
        accs["simclr"].append(S.linear_probe(simclr.features(Xtr[idx]), ytr[idx],
                                             simclr.features(Xte), yte))
    assert np.mean(accs["simclr"]) > np.mean(accs["raw"]) + 0.02
    # the representation before the head is the better one (Chen et al. 2020)
    simclr.eval()
    h_tr, h_te = simclr.features(Xtr), simclr.features(Xte)
    with torch.no_grad():
        z_tr, z_te = simclr.head(h_tr), simclr.head(h_te)
    assert (S.linear_probe(z_tr, ytr, z_te, yte)
            < S.linear_probe(h_tr, ytr, h_te, yte) - 0.01)


@pytest.mark.slow
def test_two_tower_zero_shot_far_above_chance(data):
    Xtr, ytr, Xte, yte = *data.train, *data.test
    T = S.digit_captions(Xtr, ytr, generator=torch_generator(0))
    V = len(S.CAPTION_VOCAB)
    m = S.TwoTower(mlp([64, 64, 32], generator=torch_generator(1)),
                   mlp([V, 32, 32], generator=torch_generator(2)))
    fit(m, lambda o, y: S.clip_loss(o[0], o[1], m.temperature),
        torch.optim.Adam(m.parameters(), lr=3e-3), (torch.cat([Xtr, T], 1), ytr),
        epochs=30, batch_size=128, generator=torch_generator(3))
    with torch.no_grad():
        P = torch.stack([S.prompt("a", "photo", "of", w) for w in S.DIGIT_WORDS])
        pred = S.zero_shot_predict(m.image_tower(Xte), m.text_tower(P))
    assert (pred == yte).float().mean().item() > 0.6  # chance is 0.1
