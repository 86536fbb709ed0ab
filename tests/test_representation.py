"""Tests of dlbook.representation: CKA, CCA and neighbour alignment against
direct formulas, scikit-learn and scipy; the probes against scikit-learn; the
invariances the chapter proves; and its key claims rerun at small size."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group
from sklearn.cross_decomposition import CCA
from sklearn.linear_model import Ridge
from sklearn.neighbors import NearestNeighbors

from dlbook import representation as R
from dlbook import similarity as S
from dlbook.data import digits
from dlbook.nn import mlp
from dlbook.seed import torch_generator
from dlbook.train import fit

torch.set_num_threads(1)
D64 = torch.float64
F = torch.nn.functional


def _pair(n=60, p1=8, p2=5, seed=0):
    g = torch_generator(seed)
    X = torch.randn(n, p1, generator=g, dtype=D64)
    Y = X[:, :p2] @ torch.randn(p2, p2, generator=g, dtype=D64) \
        + 0.5 * torch.randn(n, p2, generator=g, dtype=D64)
    return X, Y


# --- CKA against independent formulas ---------------------------------------

def test_linear_cka_matches_hsic_with_centering_matrix():
    X, Y = _pair()
    n = len(X)
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X.numpy() @ X.numpy().T, Y.numpy() @ Y.numpy().T
    h = lambda A, B: np.trace(A @ H @ B @ H)  # noqa: E731
    ref = h(K, L) / math.sqrt(h(K, K) * h(L, L))
    assert abs(R.linear_cka(X, Y) - ref) < 1e-12
    assert abs(R.cka(X, Y, "linear") - ref) < 1e-12
    assert 0 < ref < 1


def test_rbf_cka_matches_scipy_distances():
    from scipy.spatial.distance import pdist, squareform
    X, Y = _pair(n=40)
    n = len(X)
    H = np.eye(n) - np.ones((n, n)) / n

    def gram(A):
        d = pdist(A.numpy())
        s = 0.5 * np.median(d)
        return np.exp(-squareform(d) ** 2 / (2 * s**2))

    K, L = gram(X), gram(Y)
    h = lambda A, B: np.trace(A @ H @ B @ H)  # noqa: E731
    ref = h(K, L) / math.sqrt(h(K, K) * h(L, L))
    assert abs(R.cka(X, Y, "rbf", sigma_fraction=0.5) - ref) < 1e-10


def test_hsic_is_the_biased_estimator():
    X, Y = _pair(n=30)
    n = len(X)
    H = torch.eye(n, dtype=D64) - 1 / n
    K, L = R.gram_linear(X), R.gram_linear(Y)
    ref = torch.trace(K @ H @ L @ H) / (n - 1) ** 2
    assert torch.allclose(R.hsic(K, L), ref, rtol=1e-12)
    assert abs(R.linear_hsic(X, Y) - ref.item()) < 1e-9 * ref.item()


def test_cka_invariances_and_failures():
    X, Y = _pair(n=80, p1=10, p2=10)
    Q = torch.tensor(ortho_group.rvs(10, random_state=0), dtype=D64)
    base = R.linear_cka(X, Y)
    # invariant: orthogonal maps, isotropic scaling, translation
    assert abs(R.linear_cka(X @ Q, Y) - base) < 1e-12
    assert abs(R.linear_cka(3.7 * X + 2.0, Y) - base) < 1e-12
    assert abs(R.cka(0.1 * X @ Q, Y, "rbf") - R.cka(X, Y, "rbf")) < 1e-10
    # not invariant: an anisotropic scaling changes CKA
    A = torch.diag(torch.linspace(0.1, 10, 10, dtype=D64))
    assert abs(R.linear_cka(X @ A, Y) - base) > 0.05
    # the unnormalised alternatives fail the invariances CKA has
    assert abs(R.linear_hsic(3.7 * X, Y) / R.linear_hsic(X, Y) - 3.7**2) < 1e-9
    assert abs(R.matched_correlation(X @ Q, Y) - R.matched_correlation(X, Y)) > 0.05
    # CCA is invariant to any invertible linear map, anisotropic ones included
    assert abs(R.cca_similarity(X @ A, Y) - R.cca_similarity(X, Y)) < 1e-10


def test_unbiased_hsic_matches_brute_force_u_statistic():
    """Song et al.'s closed form against the U-statistic summed over all
    ordered 4-tuples of distinct examples."""
    import itertools
    X, Y = _pair(n=7, p1=3, p2=2, seed=4)
    K, L = R.gram_linear(X), R.gram_rbf(Y)
    n = len(X)
    total = 0.0
    for t, u, v, w in itertools.permutations(range(n), 4):
        total += (K[t, u] * L[t, u] + K[t, u] * L[v, w] - 2 * K[t, u] * L[t, v])
    ref = total / (n * (n - 1) * (n - 2) * (n - 3))
    assert abs(R.hsic_unbiased(K, L).item() - ref.item()) < 1e-10


def test_debiased_cka_removes_the_width_bias():
    g = torch_generator(5)
    biased, debiased = [], []
    for _ in range(30):
        A = torch.randn(40, 60, generator=g, dtype=D64)
        B = torch.randn(40, 60, generator=g, dtype=D64)  # independent of A
        biased.append(R.linear_cka(A, B))
        debiased.append(R.debiased_linear_cka(A, B))
    assert np.mean(biased) > 0.5  # the biased estimator is far from 0
    assert abs(np.mean(debiased)) < 0.02
    X, _ = _pair()
    assert abs(R.debiased_linear_cka(X, X) - 1) < 1e-12
    Q = torch.tensor(ortho_group.rvs(8, random_state=2), dtype=D64)
    assert abs(R.debiased_linear_cka(3 * X @ Q + 1, X) - 1) < 1e-10


def test_cka_of_identical_and_bounds():
    X, _ = _pair()
    assert abs(R.linear_cka(X, X) - 1) < 1e-12
    g = torch_generator(3)
    vals = [R.linear_cka(torch.randn(50, 4, generator=g, dtype=D64),
                         torch.randn(50, 6, generator=g, dtype=D64))
            for _ in range(20)]
    assert all(0 <= v <= 1 for v in vals)


def test_cca_similarity_matches_sklearn():
    X, Y = _pair(n=200, p1=4, p2=3)
    cca = CCA(n_components=3, max_iter=5000, tol=1e-12).fit(X.numpy(), Y.numpy())
    U, V = cca.transform(X.numpy(), Y.numpy())
    rho = [np.corrcoef(U[:, i], V[:, i])[0, 1] for i in range(3)]
    ref = float(np.mean(np.square(rho)))
    assert abs(R.cca_similarity(X, Y) - ref) < 1e-4


def test_cca_and_cka_matrices_match_pairwise_calls():
    reps = [_pair(n=50, p1=p, p2=3, seed=p)[0] for p in (4, 6, 9)]
    M = R.cca_matrix(reps, reps[:2])
    C = R.cka_matrix(reps, reps[:2])
    for i, A in enumerate(reps):
        for j, B in enumerate(reps[:2]):
            assert abs(M[i, j].item() - R.cca_similarity(A, B)) < 1e-10
            assert abs(C[i, j].item() - R.linear_cka(A, B)) < 1e-6


def test_cca_saturates_when_width_reaches_n():
    g = torch_generator(1)
    X = torch.randn(30, 40, generator=g, dtype=D64)
    Y = torch.randn(30, 40, generator=g, dtype=D64)  # independent of X
    assert abs(R.cca_similarity(X, Y) - 1) < 1e-8
    assert R.linear_cka(X, Y) < 0.9


def test_bad_input_fails_early():
    X, Y = _pair()
    with pytest.raises(ValueError, match="same examples"):
        R.linear_cka(X, Y[:-1])
    with pytest.raises(ValueError, match="kernel"):
        R.cka(X, Y, "poly")
    with pytest.raises(ValueError, match="k must be"):
        R.mutual_knn_alignment(X, Y, k=len(X))
    with pytest.raises(ValueError, match="rank"):
        R.low_rank_matrix(5, 6, seed=0)


# --- mutual nearest neighbours -----------------------------------------------

@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_knn_indices_match_sklearn(metric):
    X, _ = _pair(n=50)
    ours = R.knn_indices(X, 5, metric)
    nn = NearestNeighbors(n_neighbors=6, metric=metric).fit(X.numpy())
    ref = nn.kneighbors(X.numpy(), return_distance=False)[:, 1:]
    for a, b in zip(ours.numpy(), ref):
        assert set(a) == set(b)


def test_mutual_knn_alignment_bounds_and_chance_level():
    X, Y = _pair(n=101)
    assert abs(R.mutual_knn_alignment(X, X, k=5) - 1) < 1e-12
    assert abs(R.mutual_knn_alignment(X, 2.0 * X @ torch.tensor(
        ortho_group.rvs(8, random_state=1), dtype=D64), k=5) - 1) < 1e-12
    # randomly permuted rows: the mean over permutations is k / (n - 1)
    g = torch_generator(0)
    null = [R.mutual_knn_alignment(X, Y[torch.randperm(101, generator=g)], k=10)
            for _ in range(200)]
    assert abs(np.mean(null) - 10 / 100) < 0.01
    assert R.mutual_knn_alignment(X, Y, k=10) > 0.2


# --- quality measures ----------------------------------------------------------

def test_effective_rank_closed_forms():
    Q = torch.tensor(ortho_group.rvs(6, random_state=0), dtype=D64)
    Z = Q[:, :3] * 2.5  # three equal singular values
    assert abs(R.effective_rank(Z) - 3) < 1e-10
    assert abs(R.effective_rank(torch.outer(torch.ones(5), torch.arange(1., 4))) - 1) \
        < 1e-6
    s = np.array([3.0, 1.0, 0.5])
    Z = torch.tensor(np.diag(s), dtype=D64)
    p = s / s.sum()
    assert abs(R.effective_rank(Z) - math.exp(-(p * np.log(p)).sum())) < 1e-10
    g = torch_generator(0)
    A = torch.randn(40, 7, generator=g, dtype=D64)
    assert 1 <= R.effective_rank(A) <= 7


def test_ridge_probe_matches_sklearn():
    g = torch_generator(0)
    Z = torch.randn(90, 6, generator=g, dtype=D64)
    y = torch.randint(0, 3, (90,), generator=g)
    lam = 0.05
    W, b = R.ridge_probe(Z, y, 3, lam)
    ref = Ridge(alpha=lam * 90).fit(Z.numpy(), F.one_hot(y, 3).numpy())
    assert np.allclose(W.numpy(), ref.coef_, atol=1e-10)
    assert np.allclose(b.numpy(), ref.intercept_, atol=1e-10)


def test_balanced_subset_and_invariance_score():
    y = torch.arange(10).repeat(5)
    idx = R.balanced_subset(y, 3, torch_generator(0))
    assert torch.equal(torch.bincount(y[idx]), torch.full((10,), 3))
    X, _ = _pair(n=100)
    assert abs(R.invariance_score(X, X.clone(), torch_generator(0)) - 1) < 1e-12
    moved = X[torch.randperm(100, generator=torch_generator(1))]
    assert abs(R.invariance_score(X, moved, torch_generator(0))) < 0.3
    s1 = R.invariance_score(X, X + 0.1, torch_generator(2))
    s2 = R.invariance_score(5 * X, 5 * (X + 0.1), torch_generator(2))
    assert abs(s1 - s2) < 1e-12


def test_correlation_gap_permutation_invariant_not_rotation_invariant():
    g = torch_generator(0)
    v = torch.randn(2000, 2, generator=g, dtype=D64)
    assert R.correlation_gap(v, v) > 0.95
    perm_scaled = torch.stack([-3 * v[:, 1], 0.5 * v[:, 0]], 1)
    assert R.correlation_gap(perm_scaled, v) > 0.95
    c = math.cos(math.pi / 4)
    rot = v @ torch.tensor([[c, -c], [c, c]], dtype=D64)
    assert R.correlation_gap(rot, v) < 0.1
    assert abs(R.linear_cka(rot, v) - 1) < 1e-12


def test_hidden_representations_and_pca():
    net = mlp([5, 7, 6, 3], generator=torch_generator(0))
    X = torch.randn(11, 5, generator=torch_generator(1))
    reps = R.hidden_representations(net, X)
    assert [r.shape[1] for r in reps] == [7, 6, 3]
    assert torch.allclose(reps[-1], net(X))
    assert (reps[0] >= 0).all()
    from sklearn.decomposition import PCA
    A = torch.randn(50, 6, generator=torch_generator(2), dtype=D64)
    ours = R.pca_embedding(A, A, 3).numpy()
    ref = PCA(3).fit_transform(A.numpy())
    assert np.allclose(np.abs(ours), np.abs(ref), atol=1e-10)


# --- deep matrix factorization -------------------------------------------------

def test_deep_factorization_gradient_matches_closed_form():
    torch.manual_seed(0)
    model = R.DeepFactorization(4, 3, 0.5, generator=torch_generator(0))
    M = torch.randn(4, 4, generator=torch_generator(1), dtype=D64)
    W1, W2, W3 = [f.detach() for f in model.factors]
    assert torch.allclose(model(), W3 @ W2 @ W1)
    loss = 0.5 * (model() - M).square().sum()
    loss.backward()
    G = (W3 @ W2 @ W1 - M)  # dL/dW for the end-to-end matrix
    assert torch.allclose(model.factors[0].grad, (W3 @ W2).T @ G, atol=1e-12)
    assert torch.allclose(model.factors[2].grad, G @ (W2 @ W1).T, atol=1e-12)


def test_depth_one_never_moves_unobserved_entries():
    M = R.low_rank_matrix(10, 2, seed=0)
    mask = R.observation_mask(10, 40, seed=0)
    res = R.complete_matrix(M, mask, 1, steps=50, lr=0.5, init_scale=0.1, seed=3)
    W0 = R.DeepFactorization(10, 1, 0.1, generator=torch_generator(3))()
    assert torch.equal(res.W[~mask], W0.detach()[~mask])  # exactly, bit for bit
    assert res.train_loss[-1] < 1e-10


def test_balancedness_is_nearly_conserved_by_small_steps():
    M = R.low_rank_matrix(8, 2, seed=0)
    M = M / torch.linalg.matrix_norm(M, 2)
    mask = R.observation_mask(8, 40, seed=1)
    res = R.complete_matrix(M, mask, 3, steps=400, lr=0.05, init_scale=0.1,
                            log_every=400)
    scale = torch.linalg.matrix_norm(res.W, 2).item() ** (2 / 3)
    assert res.balancedness[-1] < res.balancedness[0] + 0.02 * scale


def test_nuclear_norm_path_matches_a_long_cold_start():
    M = R.low_rank_matrix(12, 2, seed=0)
    mask = R.observation_mask(12, 70, seed=2)
    cold = R.soft_impute(M, mask, 0.03, iters=20000)  # converged reference
    path = R.nuclear_norm_completion(M, mask, lams=(0.3, 0.1, 0.03), iters=3000)
    assert torch.allclose(path, cold, atol=1e-4)
    # the warm-started path gets closer than a cold start of the same length
    short = R.nuclear_norm_completion(M, mask, lams=(0.3, 0.1, 0.03), iters=300)
    cold_short = R.soft_impute(M, mask, 0.03, iters=900)
    assert (short - cold).abs().max() < 0.5 * (cold_short - cold).abs().max()
    with pytest.raises(ValueError, match="decreasing"):
        R.nuclear_norm_completion(M, mask, lams=(0.1, 0.3))


def test_soft_impute_solves_the_nuclear_norm_problem():
    M = R.low_rank_matrix(12, 2, seed=0)
    mask = R.observation_mask(12, 100, seed=0)
    lam = 0.5
    W = R.soft_impute(M, mask, lam, iters=2000)
    # optimality: G = P_obs(W - M) must satisfy -G in lam * (subdifferential)
    G = torch.where(mask, W - M, torch.zeros_like(W))
    U, S, Vh = torch.linalg.svd(W)
    r = int((S > 1e-8).sum())
    Ur, Vr = U[:, :r], Vh[:r].T
    assert torch.allclose(-G @ Vr, lam * Ur, atol=1e-5)
    assert torch.linalg.matrix_norm(-G, 2) <= lam + 1e-5


@pytest.mark.slow
def test_depth_helps_matrix_completion():
    """The chapter's claim at small size: depth 3 recovers, depth 2 less so."""
    M = R.low_rank_matrix(30, 2, seed=0)
    M = M / torch.linalg.matrix_norm(M, 2)
    mask = R.observation_mask(30, 250, seed=1)
    err = {d: R.complete_matrix(M, mask, d, steps=1500, lr=lr, init_scale=1e-2,
                                log_every=1500).test_error[-1]
           for d, lr in [(1, 1.0), (2, 0.5), (3, 0.3)]}
    assert err[1] > 0.99
    assert err[3] < 0.1 < err[2]
    nuc = R.soft_impute(M, mask, 0.01, iters=300)
    assert ((nuc - M)[~mask].norm() / M[~mask].norm()).item() > err[3]


# --- spectral bias ---------------------------------------------------------------

def test_fourier_coefficients_recover_amplitudes():
    x = R.uniform_grid(64, dtype=D64)
    y = R.sinusoid_target(x, [2, 5], [1.5, 0.3], [0.4, 1.0])
    c = R.fourier_coefficients(y, [2, 5, 7])
    assert torch.allclose(c.abs(), torch.tensor([1.5, 0.3, 0.0], dtype=D64),
                          atol=1e-10)
    ref = np.fft.rfft(y.numpy().ravel())[[2, 5]] * 2 / 64
    assert np.allclose(c[:2].numpy(), ref)
    assert torch.allclose(R.frequency_errors(y, y, [2, 5]),
                          torch.zeros(2, dtype=D64), atol=1e-12)


def test_empirical_ntk_matches_jacobian():
    net = mlp([1, 8, 1], generator=torch_generator(0), dtype=D64)
    x = R.uniform_grid(6, dtype=D64)
    K = R.empirical_ntk(net, x)
    params = dict(net.named_parameters())
    J = torch.func.jacrev(lambda p: torch.func.functional_call(net, p, (x,)))(params)
    Jm = torch.cat([j.reshape(6, -1) for j in J.values()], 1)
    assert torch.allclose(K, Jm @ Jm.T, atol=1e-12)
    assert torch.linalg.eigvalsh(K).min() > -1e-10


def test_fourier_modes_are_eigenvectors_of_a_circulant_kernel():
    n = 32
    x = R.uniform_grid(n, dtype=D64).squeeze(1)
    d = x[:, None] - x[None, :]
    K = torch.exp(torch.cos(2 * math.pi * d))  # translation invariant, periodic
    assert torch.allclose(R.fourier_mode_cosines(K, [1, 3, 5]),
                          torch.ones(3, dtype=D64), atol=1e-12)
    lam = R.fourier_mode_eigenvalues(K, [1, 3])
    u = torch.sin(2 * math.pi * x)
    u = u / u.norm()
    assert torch.allclose(K @ u, n * lam[0] * u, atol=1e-10)
    A = torch.randn(n, n, generator=torch_generator(0), dtype=D64)
    assert R.fourier_mode_cosines(A @ A.T, [1]).item() < 0.9


def test_low_frequencies_are_learned_first():
    """The chapter's spectral-bias claim, small: frequency 1 before 3 before 5."""
    x = R.uniform_grid(100)
    freqs = [1, 3, 5]
    y = R.sinusoid_target(x, freqs, [1.0, 1.0, 1.0], [0.3, 2.0, 4.0])
    net = mlp([1, 64, 64, 1], generator=torch_generator(0))
    errs = []
    fit(net, F.mse_loss, torch.optim.Adam(net.parameters(), lr=3e-3), (x, y),
        epochs=400, metrics={},
        callback=lambda m, r: errs.append(R.frequency_errors(m(x).detach(), y,
                                                             freqs)))
    E = torch.stack(errs)
    first = [int((E[:, j] < 0.5).nonzero()[0]) if (E[:, j] < 0.5).any() else 10**9
             for j in range(3)]
    assert first[0] < first[1] < first[2]
    lam = R.fourier_mode_eigenvalues(R.empirical_ntk(
        mlp([1, 64, 64, 1], generator=torch_generator(0)), x), freqs)
    assert lam[0] > lam[1] > lam[2]


# --- the contrastive objective ----------------------------------------------------

def test_random_shifts_are_shifts_within_the_range():
    from dlbook.data import shift_images
    X = torch.rand(40, 64, generator=torch_generator(1))
    V = R.random_shifts(X, 1, torch_generator(2))
    seen = set()
    for x, v in zip(X, V):
        match = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)
                 if torch.equal(shift_images(x[None], dx, dy)[0], v)]
        assert match
        seen.update(match)
    assert len(seen) >= 6  # the shifts really vary
    enc = mlp([64, 8], generator=torch_generator(3))
    two = R.TwoViews(enc, generator=torch_generator(4))
    assert two(X).shape == (80, 8)


# --- representations of digits ---------------------------------------------------

@pytest.fixture(scope="module")
def data():
    return digits(seed=0)


def test_effective_rank_falls_with_depth_at_init():
    X = torch.randn(256, 64, generator=torch_generator(0))
    ranks = []
    for depth in [1, 4, 16]:
        net = mlp([64] + [64] * depth, activation=torch.nn.Identity, init="lecun",
                  bias=False, generator=torch_generator(depth))
        ranks.append(R.effective_rank(net(X).detach()))
    assert ranks[0] > ranks[1] > ranks[2]
    orth = mlp([64] * 17, activation=torch.nn.Identity, init="orthogonal",
               bias=False, generator=torch_generator(0))
    assert abs(R.effective_rank(orth(X).detach()) - R.effective_rank(X)) < 1e-3


@pytest.mark.slow
def test_training_raises_alignment_between_architectures(data):
    """Two architectures trained on digits: their last hidden layers become
    more aligned (linear CKA) than at initialization."""
    X_te = data.test[0]
    reps = {}
    for name, sizes in {"wide": [64, 256, 10], "deep": [64, 64, 64, 64, 10]}.items():
        net = mlp(sizes, generator=torch_generator(0))
        before = R.hidden_representations(net, X_te, include_output=False)[-1]
        fit(net, F.cross_entropy, torch.optim.SGD(net.parameters(), lr=0.02,
                                                  momentum=0.9),
            data.train, epochs=12, batch_size=64, generator=torch_generator(1))
        after = R.hidden_representations(net, X_te, include_output=False)[-1]
        reps[name] = (before, after)
    cka_before = R.linear_cka(reps["wide"][0], reps["deep"][0])
    cka_after = R.linear_cka(reps["wide"][1], reps["deep"][1])
    assert cka_after > cka_before + 0.1
    chance = 10 / (len(X_te) - 1)
    assert R.mutual_knn_alignment(reps["wide"][1], reps["deep"][1]) > 5 * chance


def test_random_features_are_more_separable_than_pixels(data):
    """The chapter's claim: 256 untrained ReLU features beat the raw pixels
    under the same least-squares probe."""
    (X_tr, y_tr), (X_te, y_te) = data.train, data.test
    net = mlp([64, 256, 10], generator=torch_generator(4))
    Z_tr, Z_te = [R.hidden_representations(net, X, include_output=False)[-1]
                  for X in (X_tr, X_te)]
    s_pix, s_rand = X_tr.std(), Z_tr.std()
    pix = R.probe_accuracy(X_tr / s_pix, y_tr, X_te / s_pix, y_te, lam=1e-3)
    rand = R.probe_accuracy(Z_tr / s_rand, y_tr, Z_te / s_rand, y_te, lam=1e-3)
    assert rand > pix + 0.01
    assert pix > 0.85  # far above the constant predictor's 10%


@pytest.mark.slow
def test_layer_identification_and_the_logits_artefact_of_cca(data):
    """The chapter's sanity check at small size: two seeds, four hidden layers.
    CKA finds corresponding hidden layers above chance (logits excluded, as in
    Kornblith et al.); with the 10-unit logits included, R^2_CCA's division by
    the smaller rank makes the logits every hidden layer's best match."""
    X_te = data.test[0]
    reps = []
    for seed in range(2):
        net = mlp([64, 128, 128, 128, 128, 10], generator=torch_generator(seed))
        fit(net, F.cross_entropy, torch.optim.SGD(net.parameters(), lr=0.05,
                                                  momentum=0.9),
            data.train, epochs=8, batch_size=32, generator=torch_generator(100 + seed))
        reps.append(R.hidden_representations(net, X_te))

    def table(index, a, b):
        return torch.tensor([[index(P, Q) for Q in b] for P in a])

    hits = sum((table(R.linear_cka, reps[i][:4], reps[1 - i][:4]).argmax(1)
                == torch.arange(4)).sum().item() for i in range(2))
    assert hits / 8 > 0.25 + 0.1  # above chance
    cca = table(R.cca_similarity, reps[0], reps[1])
    assert (cca[:4].argmax(1) == 4).all()
    assert R.linear_cka(reps[0][0], reps[1][0]) > 0.75


@pytest.mark.slow
def test_objectives_pull_neighbourhoods_apart(data):
    """The chapter's convergence claims, small: a classifier and an
    autoencoder become more aligned; the contrastive model moves away from the
    pixels' neighbourhoods while the autoencoder moves towards them."""
    from dlbook.train import train_epoch
    (X_tr, _), (X_te, _) = data.train, data.test
    clf = mlp([64, 256, 10], generator=torch_generator(11))
    enc = mlp([64, 128, 32], generator=torch_generator(12))
    ae = torch.nn.Sequential(enc, mlp([32, 128, 64], generator=torch_generator(13)))
    c_enc = mlp([64, 128, 32], generator=torch_generator(14))
    views = R.TwoViews(c_enc, generator=torch_generator(15))
    rep = {"clf": lambda: R.hidden_representations(clf, X_te, False)[-1],
           "ae": lambda: enc(X_te).detach(), "c": lambda: c_enc(X_te).detach()}
    before = {k: f() for k, f in rep.items()}
    jobs = [(clf, F.cross_entropy, data.train, torch.optim.SGD(
                clf.parameters(), lr=0.02, momentum=0.9), 64),
            (ae, F.mse_loss, (X_tr, X_tr),
             torch.optim.Adam(ae.parameters(), 3e-3), 64),
            (views, lambda z, _: S.nt_xent(*z.chunk(2), 0.5), data.train,
             torch.optim.Adam(views.parameters(), 3e-3), 256)]
    for model, loss, pair, opt, bs in jobs:
        for epoch in range(12):
            train_epoch(model, loss, opt, pair, bs, torch_generator(20 + epoch))
    after = {k: f() for k, f in rep.items()}
    knn = R.mutual_knn_alignment
    assert knn(after["clf"], after["ae"]) > knn(before["clf"], before["ae"]) + 0.05
    assert knn(X_te, after["ae"]) > knn(X_te, before["ae"]) + 0.1
    assert knn(X_te, after["c"]) < knn(X_te, before["c"]) - 0.1


@pytest.mark.slow
def test_supervised_features_are_more_shift_invariant_than_pixels(data):
    from dlbook.data import shift_images
    X_te = data.test[0]
    net = mlp([64, 128, 128, 10], generator=torch_generator(0))
    fit(net, F.cross_entropy, torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9),
        data.train, epochs=10, batch_size=32, generator=torch_generator(100))
    moved = shift_images(X_te, 1, 0)
    h = lambda X: R.hidden_representations(net, X, include_output=False)[-1]  # noqa
    inv_net = R.invariance_score(h(X_te), h(moved), torch_generator(5))
    inv_pix = R.invariance_score(X_te, moved, torch_generator(5))
    assert abs(inv_pix) < 0.15
    assert inv_net > inv_pix + 0.25
