"""Tests of dlbook.data: every data set is offline, seeded and what it says."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from scipy import ndimage

from dlbook import data


def test_image_transforms_keep_shape_and_do_what_they_say():
    s = data.digits(seed=0, images=True)
    X = s.X_train[:20]
    for Y in (data.rot90_images(X), data.rotate_images(X, 30),
              data.shift_images(X, 1, -2), data.add_noise(X, 0.1)):
        assert Y.shape == X.shape and Y.dtype == X.dtype
        assert 0 <= Y.min() and Y.max() <= 1
    assert torch.equal(data.rot90_images(data.rot90_images(X, 1), 3), X)
    torch.testing.assert_close(data.rot90_images(X, 1)[0, 0], torch.rot90(X[0, 0]))
    flat = X.reshape(20, 64)
    assert torch.equal(data.rot90_images(flat, 2), torch.rot90(X, 2, (2, 3)).reshape(20, 64))
    sh = data.shift_images(X, 2, 1)
    assert torch.equal(sh[:, :, 1:, 2:], X[:, :, :-1, :-2])
    assert sh[:, :, 0, :].abs().sum() == 0 and sh[:, :, :, :2].abs().sum() == 0
    # rotation by 0 degrees is the identity; by 90 it agrees with rot90 inside
    torch.testing.assert_close(data.rotate_images(X, 0.0), X)
    ref = ndimage.rotate(X.double().numpy(), 17, axes=(-1, -2), reshape=False, order=1)
    torch.testing.assert_close(data.rotate_images(X, 17),
                               torch.as_tensor(np.clip(ref, 0, 1), dtype=X.dtype))
    a, b = data.add_noise(X, 0.2, seed=1), data.add_noise(X, 0.2, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, data.add_noise(X, 0.2, seed=2))


def test_sample_images_are_two_photographs():
    x = data.sample_images()
    assert x.shape == (2, 3, 427, 640) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1 and x.std() > 0.1
    g = data.sample_images(gray=True, downsample=4)
    assert g.shape == (2, 1, 106, 160)
    torch.testing.assert_close(g[0, 0, 0, 0], x[0, :, :4, :4].mean())
    x[0] = 0  # callers get their own copy, not the cache
    assert data.sample_images()[0].std() > 0.1


def test_karate_club_is_zacharys_graph():
    k = data.karate_club()
    assert k.adjacency.shape == (34, 34)
    assert k.adjacency.sum() == 2 * 78 and torch.equal(k.adjacency, k.adjacency.T)
    assert k.adjacency.diagonal().abs().sum() == 0
    assert k.labels.bincount().tolist() == [17, 17]
    assert k.labels[0] == 0 and k.labels[33] == 1  # the instructor and the officer
    assert nx.is_isomorphic(k.graph, nx.karate_club_graph())


def test_graph_families_are_seeded_and_labelled():
    gs, y = data.graph_families(5, n_nodes=(8, 12), seed=3)
    assert len(gs) == 20 and y.bincount().tolist() == [5, 5, 5, 5]
    for g, c in zip(gs, y.tolist()):
        assert g.number_of_nodes() <= 12
        if c == 0:
            assert all(d == 2 for _, d in g.degree())  # cycles
    gs2, y2 = data.graph_families(5, n_nodes=(8, 12), seed=3)
    assert torch.equal(y, y2) and all(nx.utils.graphs_equal(a, b) for a, b in zip(gs, gs2))
    with pytest.raises(ValueError, match="family"):
        data.graph_families(1, families=("moebius",))


@pytest.mark.parametrize("name", data.CORPORA)
def test_corpora_ship_and_round_trip(name):
    text = data.text_corpus(name)
    assert len(text) > 300_000 and text.startswith("# ")
    assert "Python 3.11.7" in text.splitlines()[0]
    vocab = data.CharVocab.from_text(text)
    ids = vocab.encode(text[:5000])
    assert ids.dtype == torch.int64 and ids.max() < len(vocab)
    assert vocab.decode(ids) == text[:5000]
    with pytest.raises(ValueError, match="vocabulary"):
        data.CharVocab.from_text("abc").encode("abd")
    with pytest.raises(ValueError, match="name"):
        data.text_corpus("shakespeare")


def test_motif_sequences_plant_the_motif_where_they_say():
    X, y, pos = data.motif_sequences(200, 40, "ACGTTG", seed=0)
    assert X.shape == (200, 4, 40) and torch.equal(X.sum(1), torch.ones(200, 40))
    letters = np.array(list("ACGT"))[X.argmax(1).numpy()]
    for i in range(200):
        s = "".join(letters[i])
        if y[i] == 1:
            assert s[pos[i]:pos[i] + 6] == "ACGTTG"
        else:
            assert pos[i] == -1
    assert 0.4 < y.float().mean() < 0.6


def test_sequence_tasks_and_adding_problem():
    src, tgt = data.sequence_task("reverse", 10, 7, 5, seed=1)
    assert torch.equal(tgt, src.flip(1)) and src.max() < 5
    src, tgt = data.sequence_task("sort", 10, 7, 5)
    assert torch.all(tgt[:, 1:] >= tgt[:, :-1])
    X, y = data.adding_problem(50, 20, seed=0)
    assert X.shape == (50, 20, 2) and torch.all(X[..., 1].sum(1) == 2)
    torch.testing.assert_close(y, (X[..., 0] * X[..., 1]).sum(1))
    assert torch.all(X[:, :10, 1].sum(1) == 1)  # one marker in each half


def test_ring_of_gaussians_centres():
    X, c = data.ring_of_gaussians(4000, modes=8, radius=2.0, std=0.05, seed=0)
    for k in range(8):
        centre = X[c == k].mean(0)
        expect = 2.0 * torch.tensor([np.cos(2 * np.pi * k / 8), np.sin(2 * np.pi * k / 8)])
        assert torch.dist(centre, expect.float()) < 0.02


def test_digits_are_copies_and_raise_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would reach a chapter's stderr
        a = data.digits(seed=0, test_size=0.0)
        a.X_train[0, 0] = 99.0
        b = data.digits(seed=0, test_size=0.0)
    assert b.X_train[0, 0] != 99.0


def test_two_moons_iid_lies_on_the_same_arcs_as_make_moons():
    from sklearn.datasets import make_moons
    X, y = data.two_moons(2000, noise=0.0, seed=3, iid=True, dtype=torch.float64)
    centre = torch.where(y[:, None] == 0, torch.tensor([0.0, 0.0], dtype=X.dtype),
                         torch.tensor([1.0, 0.5], dtype=X.dtype))
    assert torch.allclose((X - centre).norm(dim=1), torch.ones(len(X), dtype=X.dtype))
    ref, ry = make_moons(n_samples=2000, noise=0.0)
    for c in (0, 1):   # the same extent as scikit-learn's arcs, class by class
        lo, hi = X[y == c].min(0).values.numpy(), X[y == c].max(0).values.numpy()
        assert np.allclose(lo, ref[ry == c].min(0), atol=0.02)
        assert np.allclose(hi, ref[ry == c].max(0), atol=0.02)
    assert 0.45 < y.double().mean() < 0.55
    X2, _ = data.two_moons(2000, noise=0.0, seed=4, iid=True)
    assert not torch.allclose(X.float(), X2)
