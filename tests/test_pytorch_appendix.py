"""Tests of the claims of the PyTorch appendix (book/appendix/pytorch.md).

The appendix has no ``dlbook`` module of its own: its small classes and functions
(``DigitsDataset``, ``EpochPermutation``, ``MLP``, ``train_by_hand``, ...) are defined in
the chapter, where the reader sees them. So that the tests check that very code, and not a
copy that could drift, a module-scoped fixture executes the chapter's code cells once, with
``myst_nb.glue`` replaced by a recorder. The tests then check the glued numbers and rerun the
key experiments small, against independent oracles: scikit-learn's raw digits, SciPy's
distances, closed-form gradients and finite differences, and ``dlbook.train``'s own shuffling.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import jupytext
import matplotlib
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.datasets import load_digits
from torch import nn

from dlbook.seed import torch_generator
from dlbook.train import accuracy, fit, iterate_minibatches

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "appendix" / "pytorch.md"
EXACT = {"rtol": 0.0, "atol": 0.0}   # the claims below are bit-for-bit identities


@pytest.fixture(scope="module")
def ch() -> dict:
    """The namespace left by running every code cell of the appendix, plus ``glued``."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import myst_nb

    glued: dict[str, object] = {}

    def record(name: str, value: object, display: bool = True) -> None:
        glued[name] = value

    patch = pytest.MonkeyPatch()
    patch.setattr(myst_nb, "glue", record)
    namespace: dict[str, object] = {"__name__": "pytorch_appendix"}
    try:
        for cell in jupytext.read(CHAPTER).cells:
            if cell.cell_type == "code":
                exec(compile(cell.source, str(CHAPTER), "exec"), namespace)
                plt.close("all")
    finally:
        patch.undo()
    namespace["glued"] = glued
    return namespace


# --- the numbers printed in the appendix ------------------------------------------------

def test_glued_numbers_support_the_prose(ch):
    g = ch["glued"]
    assert g["pytorch_eps32"] == pytest.approx(2.0**-23, rel=1e-12)
    assert g["pytorch_eps64"] == pytest.approx(2.0**-52, rel=1e-12)
    # (N, 1) - (N,) with perfect predictions 1..4: mean of (i - j)^2 over 16 pairs = 40/16.
    assert g["pytorch_bad_mse"] == pytest.approx(2.5, abs=1e-6)
    assert g["pytorch_cdist_err"] < 1e-12
    assert g["pytorch_grad_err"] < 1e-12
    assert g["pytorch_accum_err"] < 1e-12
    assert g["pytorch_gd_err"] < 1e-8
    assert g["pytorch_nparams"] == 64 * 128 + 128 + 128 * 10 + 10
    assert g["pytorch_seq_nparams"] == g["pytorch_nparams"]
    assert g["pytorch_meta_params"] == 20_000 * 20_000 + 20_000
    assert g["pytorch_n_train"] + g["pytorch_n_val"] + g["pytorch_n_test"] == 1797
    assert g["pytorch_n_batches"] == math.ceil(g["pytorch_n_train"] / 64)
    assert 0 < g["pytorch_last_batch"] <= 64
    assert g["pytorch_n_steps"] == 30 * g["pytorch_n_batches"]
    assert g["pytorch_step_diff"] == 0.0          # claim: the two loops are identical
    assert g["pytorch_param_diff"] == 0.0
    assert g["pytorch_roundtrip_exact"] == "identical"
    assert g["pytorch_seq_same"] == "the same"
    assert g["pytorch_n_graphs_branchy"] == 2     # one graph break at the data-dependent if
    # A one-hidden-layer MLP on the 8x8 digits: about 97 % in the build; a loose floor.
    assert 0.93 <= g["pytorch_test_acc"] <= 1.0
    assert g["pytorch_seq_test_acc"] == pytest.approx(g["pytorch_test_acc"], abs=1e-12)
    assert g["pytorch_file_bytes"] > g["pytorch_float_bytes"] == 4 * g["pytorch_nparams"]
    if not torch.cuda.is_available():
        assert g["pytorch_device"] == "cpu"


# --- tensors, views, devices -----------------------------------------------------------

@pytest.mark.parametrize("n,m,d", [(1, 1, 1), (6, 4, 3), (17, 9, 5)])
def test_pairwise_sq_dists_matches_scipy(ch, n, m, d):
    rng = np.random.default_rng(n * 100 + m)
    X, C = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    got = ch["pairwise_sq_dists"](torch.from_numpy(X), torch.from_numpy(C))
    assert got.shape == (n, m)
    np.testing.assert_allclose(got.numpy(), cdist(X, C, "sqeuclidean"), atol=1e-12)


def test_shares_memory_tells_views_from_copies(ch):
    shares = ch["shares_memory"]
    x = torch.arange(12.0).reshape(3, 4)
    for view in (x[1:], x[:, ::2], x.T, x.view(4, 3), x.reshape(-1), x.detach()):
        assert shares(view, x)
    for copy in (x.T.reshape(-1), x[[0, 2]], x[x > 5], x.clone(), x + 0):
        assert not shares(copy, x)


def test_pick_device_prefers_cuda_then_mps_then_cpu(ch, monkeypatch):
    pick = ch["pick_device"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick().type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick().type == "cpu"


# --- autograd ----------------------------------------------------------------------------

def test_lsq_gradient_matches_hand_derivation_and_finite_differences(ch):
    X, y, n = ch["X_ls"].numpy(), ch["y_ls"].numpy(), ch["n"]
    w0 = np.random.default_rng(7).standard_normal(X.shape[1])
    w = torch.tensor(w0, requires_grad=True)
    ch["lsq_loss"](w).backward()
    closed_form = X.T @ (X @ w0 - y) / n                      # eq. (eq-pytorch-lsq-grad)
    np.testing.assert_allclose(w.grad.numpy(), closed_form, atol=1e-12)

    def loss_np(v):
        return ((X @ v - y) ** 2).sum() / (2 * n)

    h, eye = 1e-6, np.eye(len(w0))
    fd = np.array([(loss_np(w0 + h * e) - loss_np(w0 - h * e)) / (2 * h) for e in eye])
    np.testing.assert_allclose(w.grad.numpy(), fd, atol=1e-7)


def test_backward_accumulates_and_micro_batches_sum_to_full_gradient(ch):
    X, y, n = ch["X_ls"], ch["y_ls"], ch["n"]
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    loss = ch["lsq_loss"](w)
    loss.backward(retain_graph=True)
    once = w.grad.clone()
    loss.backward()
    torch.testing.assert_close(w.grad, 2 * once, rtol=1e-14, atol=0.0)
    w.grad = None
    for rows in torch.arange(n).split([10, 10, 10, 20]):      # unequal micro-batches
        (((X[rows] @ w - y[rows]) ** 2).sum() / (2 * n)).backward()
    torch.testing.assert_close(w.grad, once, rtol=1e-12, atol=1e-14)


# --- nn.Module ---------------------------------------------------------------------------

def test_mlp_layout_and_seeding_leave_global_rng_alone(ch):
    state = torch.get_rng_state()
    a, b, c = ch["make_mlp"](0), ch["make_mlp"](0), ch["make_mlp"](1)
    assert torch.equal(torch.get_rng_state(), state)          # fork_rng restored it
    assert a.hidden.weight.shape == (128, 64) and a.out.weight.shape == (10, 128)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.hidden.weight, c.hidden.weight)
    x = torch.rand(5, 1, 8, 8)
    assert a(x).shape == (5, 10)
    bound = 1 / math.sqrt(64)                                 # default init U(+-1/sqrt(in))
    assert a.hidden.weight.abs().max() <= bound and a.hidden.bias.abs().max() <= bound


def test_dropout_scales_in_train_mode_and_is_identity_in_eval_mode():
    drop, x = nn.Dropout(p=0.5), torch.ones(100_000)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        out = drop.train()(x)
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    assert out.mean().item() == pytest.approx(1.0, abs=0.02)  # unbiased: E = x
    torch.testing.assert_close(drop.eval()(x), x, **EXACT)


# --- Dataset and DataLoader --------------------------------------------------------------

def test_digits_dataset_items_are_exactly_sklearns_digits(ch):
    Dataset = ch["DigitsDataset"]
    splits = [Dataset(s) for s in ("train", "val", "test")]
    raw = load_digits()
    want = Counter(((row / 16.0).astype(np.float32).tobytes(), int(t))
                   for row, t in zip(raw.data, raw.target))
    got: Counter = Counter()
    for ds in splits:
        for i in range(len(ds)):
            image, label = ds[i]
            assert image.shape == (1, 8, 8) and image.dtype == torch.float32
            assert label.shape == () and label.dtype == torch.int64
            assert 0.0 <= image.min() and image.max() <= 1.0
            got[(image.numpy().reshape(-1).tobytes(), int(label))] += 1
    assert got == want      # every image once, with its own label, across disjoint splits
    test_counts = np.bincount(splits[2].y.numpy(), minlength=10)
    expected = np.bincount(raw.target) * len(splits[2]) / len(raw.target)
    assert np.abs(test_counts - expected).max() <= 1.0        # stratified split
    with pytest.raises(ValueError, match="split"):
        Dataset("validation")


def test_loader_batches_cover_the_training_set_once_per_epoch(ch):
    loader, train_ds = ch["digits_loader"](seed=3), ch["train_ds"]
    epochs = []
    for _ in range(2):
        batches = list(loader)
        assert all(xb.shape == (64, 1, 8, 8) for xb, _ in batches[:-1])
        assert all(len(xb) == len(yb) for xb, yb in batches)
        labels = torch.cat([yb for _, yb in batches])
        assert Counter(labels.tolist()) == Counter(train_ds.y.tolist())
        epochs.append(labels)
    assert not torch.equal(epochs[0], epochs[1])              # reshuffled every epoch


def test_epoch_permutation_visits_examples_in_fits_order(ch):
    n, seed = 103, 11
    sampler = ch["EpochPermutation"](n, torch_generator(seed))
    ours = [list(sampler) for _ in range(3)]
    g = torch_generator(seed)
    fits = [torch.cat(list(iterate_minibatches(n, 10, g))).tolist() for _ in range(3)]
    assert ours == fits


def test_loader_randomness_exercise(ch):
    orders, fit_orders = ch["orders"], ch["fit_orders"]
    assert orders["EpochPermutation"] == fit_orders
    assert orders["RandomSampler"][0] == fit_orders[0]
    assert orders["RandomSampler"][1] != fit_orders[1]
    assert orders["shuffle=True"][0] != fit_orders[0]
    assert ch["replayed"] == orders["shuffle=True"]


# --- training, saving, resuming ----------------------------------------------------------

def test_hand_written_loop_and_fit_are_identical_from_the_same_seed(ch):
    make_mlp, train_ds, val_ds = ch["make_mlp"], ch["train_ds"], ch["val_ds"]
    hand = make_mlp(0)
    log = ch["train_by_hand"](hand, ch["digits_loader"](seed=5),
                              torch.optim.Adam(hand.parameters(), lr=1e-3), 3)
    auto = make_mlp(0)
    hist = fit(
        auto, nn.CrossEntropyLoss(), torch.optim.Adam(auto.parameters(), lr=1e-3),
        (train_ds.X, train_ds.y), epochs=3, batch_size=64, val=(val_ds.X, val_ds.y),
        metrics={"acc": accuracy}, generator=torch_generator(5))
    torch.testing.assert_close(torch.tensor(log["step_loss"]),
                               torch.tensor(hist.step_loss), **EXACT)
    for p, q in zip(hand.parameters(), auto.parameters()):
        torch.testing.assert_close(p, q, **EXACT)
    torch.testing.assert_close(torch.tensor(log["val_acc"]), torch.tensor(hist["val_acc"]),
                               **EXACT)
    other = make_mlp(1)                                       # the test can fail
    assert not torch.equal(other.hidden.weight, auto.hidden.weight)


def test_state_dict_round_trip_is_exact(ch, tmp_path):
    trained = ch["fit_model"]
    path = tmp_path / "mlp.pt"
    torch.save(trained.state_dict(), path)
    restored = ch["make_mlp"](seed=1)
    X = ch["test_ds"].X
    trained.eval(), restored.eval()
    with torch.no_grad():
        assert not torch.equal(restored(X), trained(X))
        restored.load_state_dict(torch.load(path, weights_only=True))
        torch.testing.assert_close(restored(X), trained(X), **EXACT)
    with pytest.raises(RuntimeError, match="Missing key"):
        ch["make_mlp"](0).load_state_dict({"hidden.weight": torch.zeros(128, 64)})


def test_checkpoint_resume_exercise(ch):
    assert ch["resumed"](True, True)
    assert not ch["resumed"](False, True)


def test_graph_break_splits_the_branchy_function_in_two(ch):
    ops, captured, x = ch["op_names"], ch["captured"], ch["x_b"]
    taken = "exp" if (torch.sin(x) * 2).sum() > 0 else "cos"
    assert [ops(gm) for gm in captured] == [["sin", "mul", "sum", "gt"], [taken]]


# --- claims the build checks ----------------------------------------------------------------

def test_appendix_guards_its_claims_and_alt_text_types_no_number():
    import ast
    import re
    text = CHAPTER.read_text()
    cells = re.findall(r"```\{code-cell\} ipython3\n:tags: \[remove-cell\]\n(.*?)```",
                       text, flags=re.S)
    nodes = [n for c in cells for n in ast.walk(ast.parse(c)) if isinstance(n, ast.Assert)]
    assert len(nodes) >= 8 and all(n.msg is not None for n in nodes)
    assert len(re.findall(r":::\{index\}|\{index\}`", text)) >= 8
    for alt in re.findall(r"^\s*alt: (.*?)\n---", text, flags=re.M | re.S):
        assert not re.search(r"\d", alt), f"alt text types a number: {alt[:60]}"


def test_float32_ties_round_to_even_and_zero_dim_promotion(ch):
    big = torch.tensor(2.0**24)
    assert big + 1 == big and (big + 2) + 1 == big + 4     # ties to the even neighbour
    assert (torch.ones(2) + torch.tensor(1.0, dtype=torch.float64)).dtype == torch.float32
    assert ch["same_objects"]
