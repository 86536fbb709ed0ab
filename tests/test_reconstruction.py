"""Tests of dlbook.reconstruction: PCA and k-means against scikit-learn,
principal angles against scipy, the critical points of the linear
autoencoder against autograd in float64, the straight-through quantizer
against a brute-force nearest codeword, and the chapter's key claims rerun
at small size."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

from dlbook import reconstruction as R
from dlbook.data import digits
from dlbook.seed import torch_generator
from dlbook.train import fit

torch.set_num_threads(1)
D64 = torch.float64


def mse(out, target):
    return ((out - target) ** 2).sum(dim=1).mean()


@pytest.fixture(scope="module")
def data():
    return digits(seed=0, test_size=0.25)


# --- PCA and principal angles ------------------------------------------------

@pytest.mark.parametrize("k", [1, 5, 20])
def test_pca_matches_sklearn(data, k):
    X = data.X_train.double()
    ours = R.pca(X, k)
    ref = PCA(n_components=k, svd_solver="full").fit(X.numpy())
    V_ref = torch.tensor(ref.components_)
    # sign convention may differ between versions: compare up to sign per row
    signs = torch.sign((ours.components * V_ref).sum(1))
    assert torch.allclose(ours.components, signs[:, None] * V_ref, atol=1e-8)
    assert torch.allclose(ours.explained_variance,
                          torch.tensor(ref.explained_variance_), rtol=1e-8)
    assert torch.allclose(ours.mean, torch.tensor(ref.mean_), atol=1e-12)
    Z = ours.transform(X)
    assert torch.allclose(Z * signs, torch.tensor(ref.transform(X.numpy())),
                          atol=1e-8)
    back = torch.tensor(ref.inverse_transform(ref.transform(X.numpy())))
    assert torch.allclose(ours.inverse_transform(Z), back, atol=1e-8)
    assert torch.allclose(ours.components @ ours.components.T,
                          torch.eye(k, dtype=D64), atol=1e-10)


def test_pca_bad_input():
    with pytest.raises(ValueError, match="n_components"):
        R.pca(torch.randn(10, 3), 4)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        R.pca(torch.randn(10), 1)


def test_principal_angles_match_scipy():
    g = torch_generator(0)
    A = torch.randn(12, 3, generator=g, dtype=D64)
    B = torch.randn(12, 4, generator=g, dtype=D64)
    ours = R.principal_angles(A, B)
    ref = np.sort(subspace_angles(A.numpy(), B.numpy()))
    assert np.allclose(ours.numpy(), ref, atol=1e-8)
    same = R.principal_angles(A, A @ torch.randn(3, 3, generator=g, dtype=D64))
    assert same.max() < 1e-6  # a change of basis spans the same subspace


# --- the linear autoencoder's critical points (Baldi and Hornik) -------------

def _sigma(d: int, seed: int = 0) -> torch.Tensor:
    g = torch_generator(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=D64))
    lam = torch.linspace(3.0, 0.5, d, dtype=D64)  # distinct eigenvalues
    return Q @ torch.diag(lam) @ Q.T


def test_critical_points_are_saddles_except_the_top_subspace():
    d, k = 5, 2
    Sigma = _sigma(d)
    lam = torch.linalg.eigvalsh(Sigma).flip(0)
    C = torch.tensor([[1.5, 0.3], [-0.2, 0.8]], dtype=D64)  # any invertible C
    for subset in itertools.combinations(range(d), k):
        A, B = R.critical_point(Sigma, subset, C)
        A.requires_grad_(), B.requires_grad_()
        loss = R.autoencoder_loss(A, B, Sigma)
        gA, gB = torch.autograd.grad(loss, (A, B))
        assert gA.abs().max() < 1e-10 and gB.abs().max() < 1e-10, subset
        rest = [i for i in range(d) if i not in subset]
        assert math.isclose(loss.item(), lam[rest].sum().item(), rel_tol=1e-10)

        def f(theta):
            return R.autoencoder_loss(theta[:d * k].reshape(d, k),
                                      theta[d * k:].reshape(k, d), Sigma)

        theta = torch.cat([A.detach().reshape(-1), B.detach().reshape(-1)])
        H = torch.autograd.functional.hessian(f, theta)
        eig = torch.linalg.eigvalsh(H)
        if subset == (0, 1):
            assert eig.min() > -1e-8, "the top subspace is a local minimum"
        else:
            assert eig.min() < -1e-3, f"{subset} is a saddle"
            assert eig.max() > 1e-3, f"{subset} is not a local maximum"
        # one descent direction per out-of-order pair (i in I, j not in I,
        # lambda_j > lambda_i), and k^2 flat ones from the symmetry C
        pairs = sum(j < i for i in subset for j in rest)
        assert int((eig < -1e-9).sum()) == pairs, subset
        assert int((eig.abs() < 1e-9).sum()) == k * k, subset


def test_critical_point_bad_subset():
    with pytest.raises(ValueError, match="distinct"):
        R.critical_point(_sigma(4), [0, 0])


@pytest.mark.slow
def test_trained_linear_autoencoder_finds_the_principal_subspace(data):
    X = data.X_train
    k = 8
    p = R.pca(X, k)
    Xc = X - p.mean
    ae = R.LinearAutoencoder(64, k, generator=torch_generator(0))
    opt = torch.optim.Adam(ae.parameters(), lr=1e-2)
    fit(ae, mse, opt, (Xc, Xc), epochs=600)
    with torch.no_grad():
        err_ae = R.reconstruction_error(Xc, ae(Xc))
    err_pca = R.reconstruction_error(X, p.inverse_transform(p.transform(X)))
    assert err_ae < err_pca * 1.01
    angles = R.principal_angles(ae.decoder.weight.detach(), p.components.T)
    assert angles.max() < math.radians(5)


# --- k-means -------------------------------------------------------------------

def test_kmeans_objective_matches_sklearn(data):
    X = data.X_train.double()
    ours = R.kmeans(X, 10, n_init=10, generator=torch_generator(0))
    ref = KMeans(10, n_init=10, random_state=0).fit(X.numpy())
    assert ours.inertia < ref.inertia_ * 1.01
    assert ours.inertia > ref.inertia_ * 0.97  # both near the same optimum
    assert math.isclose(ours.inertia, R.kmeans_objective(
        X, ours.centers, ours.labels), rel_tol=1e-12)
    # at convergence: labels are nearest centres, centres are cluster means
    assert torch.equal(R.assign(X, ours.centers), ours.labels)
    for c in range(10):
        assert torch.allclose(ours.centers[c], X[ours.labels == c].mean(0),
                              atol=1e-10)
    ari = adjusted_rand_score(data.y_train.numpy(), ours.labels.numpy())
    ari_ref = adjusted_rand_score(data.y_train.numpy(), ref.labels_)
    assert abs(ari - ari_ref) < 0.1 and ari > 0.5


def test_lloyd_never_increases_the_objective_and_terminates():
    g = torch_generator(3)
    X = torch.randn(300, 2, generator=g, dtype=D64)
    for seed in range(5):
        start = X[torch.randperm(300, generator=torch_generator(seed))[:6]]
        run = R.lloyd(X, start, max_iter=500)
        h = run.history
        assert all(b <= a + 1e-9 for a, b in zip(h, h[1:]))
        assert run.n_iter < 500  # stopped because the assignment was stable


def test_reassign_moves_a_point_only_to_a_strictly_nearer_centre():
    X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    centers = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])  # x_0 is equidistant
    labels = torch.tensor([1, 0, 0])
    new = R.reassign(X, centers, labels)
    assert new.tolist() == [1, 1, 1]  # the tie stays, the others move
    assert R.assign(X, centers).tolist() == [0, 1, 1]  # plain arg-min


def test_kmeans_plusplus_seeds_separated_clusters():
    g = torch_generator(0)
    means = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    X = torch.cat([m + torch.randn(50, 2, generator=g) for m in means])
    hits = 0
    for seed in range(20):
        C = R.kmeans_plusplus(X, 3, generator=torch_generator(seed))
        assert all((X == c).all(1).any() for c in C)  # centres are data points
        hits += len(set(R.assign(C, means).tolist())) == 3
    assert hits >= 19  # one seed per cluster almost surely


def test_kmeans_bad_input():
    with pytest.raises(ValueError, match="n_clusters"):
        R.kmeans(torch.randn(5, 2), 6)
    with pytest.raises(ValueError, match="n_init"):
        R.kmeans(torch.randn(5, 2), 2, n_init=0)


# --- autoencoders with corruption ------------------------------------------------

def test_patch_mask_hides_whole_patches():
    m = R.patch_mask(7, 8, 2, 0.75, generator=torch_generator(0))
    assert m.shape == (7, 64)
    assert (m.sum(1) == 12 * 4).all()  # 12 of 16 patches of 4 pixels
    img = m.reshape(7, 4, 2, 4, 2).float()
    assert torch.equal(img.amax((2, 4)), img.amin((2, 4)))  # constant per patch
    with pytest.raises(ValueError, match="divide"):
        R.patch_mask(2, 8, 3, 0.5)


def test_masked_autoencoder_loss_counts_only_hidden_pixels():
    ae = R.Autoencoder([64, 16, 4], mask_ratio=0.5,
                       generator=torch_generator(0))
    x = torch.rand(5, 64, generator=torch_generator(1))
    out = ae(x)
    hidden = ae.last_mask
    assert torch.equal(out[~hidden], x[~hidden])
    assert not torch.allclose(out[hidden], x[hidden])
    ae.eval()
    assert torch.equal(ae(x), ae.decoder(ae.encoder(x)))
    ae.train()
    with pytest.raises(ValueError, match=r"\(N, 64\)"):
        ae(torch.rand(5, 63))


def test_denoising_autoencoder_is_random_in_training_only():
    ae = R.Autoencoder([64, 16, 4], noise_std=0.5,
                       generator=torch_generator(0))
    x = torch.rand(5, 64, generator=torch_generator(1))
    assert not torch.allclose(ae(x), ae(x))
    ae.eval()
    assert torch.equal(ae(x), ae(x))
    with pytest.raises(ValueError, match="not both"):
        R.Autoencoder([4, 2], noise_std=0.1, mask_ratio=0.5)


def test_l1_penalty_and_sparsity_closed_forms():
    ae = R.Autoencoder([6, 3], generator=torch_generator(0))
    x = torch.rand(4, 6, generator=torch_generator(1))
    loss = R.l1_code_penalty(ae, 0.5)(ae(x), x)
    expect = mse(ae(x), x) + 0.5 * ae.encode(x).abs().sum(1).mean()
    assert torch.allclose(loss, expect)
    assert R.sparsity(torch.tensor([[0.0, 1.0], [0.0, 0.0]])) == pytest.approx(0.75)


# --- vector quantization ----------------------------------------------------------

def test_quantizer_forward_is_the_nearest_codeword_backward_the_identity():
    vq = R.VectorQuantizer(9, 3, generator=torch_generator(0))
    z = torch.randn(4, 5, 3, generator=torch_generator(1), requires_grad=True)
    z_st, idx, _, _ = vq(z)
    W = vq.weight.detach()
    for n, l in itertools.product(range(4), range(5)):  # brute force
        d = [float(((z[n, l].detach() - w) ** 2).sum()) for w in W]
        assert idx[n, l] == int(np.argmin(d))
        assert torch.equal(z_st[n, l], W[idx[n, l]])
    cot = torch.randn(z.shape, generator=torch_generator(2))
    g, = torch.autograd.grad((z_st * cot).sum(), z)
    assert torch.equal(g, cot)


def test_quantizer_is_exact_beyond_the_cdist_matrix_product_threshold():
    # torch.cdist switches to a matrix-product formula above 25 rows; the
    # quantizer must still return the brute-force nearest codeword
    vq = R.VectorQuantizer(50, 3, generator=torch_generator(3))
    z = vq.weight.detach()[torch.arange(40) % 50].reshape(8, 5, 3)
    z = z + 1e-4 * torch.randn(z.shape, generator=torch_generator(4))
    d = ((z.reshape(-1, 1, 3) - vq.weight.detach()) ** 2).sum(-1)
    assert torch.equal(vq.nearest(z).reshape(-1), d.argmin(1))
    with pytest.raises(ValueError, match="last dimension"):
        vq.nearest(torch.randn(4, 2))


def test_codebook_and_commitment_losses_reach_the_right_parameters():
    vq = R.VectorQuantizer(6, 2, generator=torch_generator(0))
    z = torch.randn(10, 1, 2, generator=torch_generator(1), requires_grad=True)
    _, idx, cb, commit = vq(z)
    e = vq.weight[idx].detach()
    assert torch.allclose(cb, ((z.detach() - e) ** 2).sum(-1).mean())
    assert torch.allclose(commit, cb)  # same value, different gradients
    gz, gw = torch.autograd.grad(cb, (z, vq.weight), allow_unused=True)
    assert gz is None and gw.abs().sum() > 0
    gz, = torch.autograd.grad(commit, z)
    assert gz.abs().sum() > 0
    assert vq.weight.grad is None


def test_codebook_usage_closed_forms():
    used, ppl = R.codebook_usage(torch.arange(8).repeat(3), 8)
    assert used == 1.0 and math.isclose(ppl, 8.0, rel_tol=1e-12)
    used, ppl = R.codebook_usage(torch.full((10,), 2), 4)
    assert used == 0.25 and math.isclose(ppl, 1.0)


# --- the chapter's claims, small ----------------------------------------------

@pytest.mark.slow
def test_nonlinear_autoencoder_beats_pca_at_a_narrow_code(data):
    X, Xt = data.X_train, data.X_test
    p = R.pca(X, 4)
    ae = R.Autoencoder([64, 128, 4], code_activation=False,
                       generator=torch_generator(0))
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    fit(ae, mse, opt, (X, X), epochs=50, batch_size=64,
        generator=torch_generator(1))
    ae.eval()
    with torch.no_grad():
        err_ae = R.reconstruction_error(Xt, ae(Xt))
    err_pca = R.reconstruction_error(Xt, p.inverse_transform(p.transform(Xt)))
    assert err_ae < 0.8 * err_pca


@pytest.mark.slow
def test_far_codebook_collapses_and_kmeans_restart_revives_it(data):
    X = data.X_train
    vq = R.VQAutoencoder(64, 128, 4, 4, 64, init_std=10.0,
                         generator=torch_generator(0))
    h = R.train_vq(vq, X, epochs=15, lr=2e-3, generator=torch_generator(1))
    assert h.used[-1] < 0.2 and h.perplexity[-1] < 5
    with torch.no_grad():
        Z = vq.encode(X).reshape(-1, 4)
        vq.quantizer.weight.copy_(
            R.kmeans(Z, 64, n_init=1, generator=torch_generator(2)).centers)
    h2 = R.train_vq(vq, X, epochs=5, lr=2e-3, generator=torch_generator(1))
    assert h2.used[-1] > 0.8 and h2.perplexity[-1] > 5 * h.perplexity[-1]
    assert h2.recon[-1] < h.recon[-1]


def test_kmeans_on_standardized_digits_matches_the_published_objective():
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import scale
    ds = load_digits()
    X = torch.tensor(scale(ds.data), dtype=torch.float32)
    run = R.kmeans(X, 10, n_init=10, generator=torch_generator(0))
    assert abs(run.inertia / 69432 - 1) < 0.01  # scikit-learn's demo, k-means++
    assert adjusted_rand_score(ds.target, run.labels.numpy()) > 0.4


@pytest.mark.slow
def test_plateau_length_follows_the_linearized_escape_rate(data):
    X = data.X_train
    p = R.pca(X, 4)
    Xc = X - p.mean
    target = R.reconstruction_error(X, p.inverse_transform(p.transform(X)))
    steps = []
    for scale in [1e-2, 1e-4]:
        ae = R.LinearAutoencoder(64, 4, generator=torch_generator(0))
        with torch.no_grad():
            for q in ae.parameters():
                q.mul_(scale)
        h = fit(ae, mse, torch.optim.SGD(ae.parameters(), lr=0.1), (Xc, Xc),
                epochs=250)
        steps.append(int(np.argmax(np.array(h["train_loss"]) < 1.1 * target)))
    lam4 = torch.linalg.eigvalsh(Xc.T @ Xc / len(Xc))[-4].item()
    predicted = math.log(100) / math.log(1 + 0.2 * lam4)
    assert abs((steps[1] - steps[0]) / predicted - 1) < 0.15


@pytest.mark.slow
def test_masked_autoencoder_probe_is_worse_at_a_high_ratio(data):
    acc = {}
    for ratio in [0.25, 0.75]:
        ae = R.Autoencoder([64, 128, 16], mask_ratio=ratio,
                           generator=torch_generator(0))
        fit(ae, mse, torch.optim.Adam(ae.parameters(), lr=5e-3),
            (data.X_train, data.X_train), epochs=20, batch_size=128,
            generator=torch_generator(1))
        ae.eval()
        with torch.no_grad():
            acc[ratio] = R.linear_probe(ae.encode(data.X_train), data.y_train,
                                        ae.encode(data.X_test), data.y_test)
    assert acc[0.75] < acc[0.25] - 0.03


def test_hiding_three_quarters_of_the_patches_removes_the_class_signal(data):
    X, y, Xt, yt = data.X_train, data.y_train, data.X_test, data.y_test
    full = R.linear_probe(X, y, Xt, yt)
    hide = R.patch_mask(len(X), 8, 2, 0.75, generator=torch_generator(7))
    hide_t = R.patch_mask(len(Xt), 8, 2, 0.75, generator=torch_generator(8))
    hidden = R.linear_probe(X.masked_fill(hide, 0.0), y,
                            Xt.masked_fill(hide_t, 0.0), yt)
    assert full > 0.9 and hidden < full - 0.25
