"""Tests for dlbook.gnn (chapter: graph neural networks).

Oracles: networkx (normalized Laplacian, Weisfeiler-Lehman graph hashes,
isomorphism), dense reference computations written here with explicit loops
over nodes and edges (GCN, GAT, GIN, aggregations), torch.autograd.gradcheck
in float64, and closed forms (label spreading's fixed point, the pairwise form
of the Dirichlet energy, the spectral oversmoothing bound).
"""
import itertools
import warnings

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlbook import gnn
from dlbook.data import graph_families, karate_club
from dlbook.nn import mlp
from dlbook.seed import torch_generator
from dlbook.train import accuracy, fit

D = torch.float64


def random_graph(n: int, p: float, seed: int) -> tuple[nx.Graph, torch.Tensor]:
    g = nx.gnp_random_graph(n, p, seed=seed)
    return g, gnn.adjacency_matrix(g, D)


def two_triangles_and_hexagon() -> tuple[nx.Graph, nx.Graph]:
    return nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3)), nx.cycle_graph(6)


def decalin_and_bicyclopentyl() -> tuple[nx.Graph, nx.Graph]:
    decalin = nx.cycle_graph(10)
    decalin.add_edge(0, 5)                     # two fused six-rings
    bicyclopentyl = nx.disjoint_union(nx.cycle_graph(5), nx.cycle_graph(5))
    bicyclopentyl.add_edge(0, 5)               # two five-rings joined by a bond
    return decalin, bicyclopentyl


# ----------------------------------------------------------------- graphs

def test_adjacency_matrix_matches_networkx_and_permutation_conventions():
    g, a = random_graph(12, 0.3, seed=0)
    ref = torch.tensor(nx.to_numpy_array(g, nodelist=list(g.nodes)), dtype=D)
    assert torch.equal(a, ref)
    dg = nx.DiGraph([(0, 1), (1, 2)])
    ad = gnn.adjacency_matrix(dg)
    assert ad[1, 0] == 1 and ad[0, 1] == 0      # row = receiver
    perm = torch.randperm(12, generator=torch_generator(1))
    p = gnn.permutation_matrix(perm, D)
    x = torch.randn(12, 3, dtype=D, generator=torch_generator(2))
    px, pa = gnn.permute_graph(x, a, perm)
    assert torch.allclose(px, p @ x) and torch.allclose(pa, p @ a @ p.T)
    with pytest.raises(ValueError, match="permutation"):
        gnn.permutation_matrix(torch.tensor([0, 0, 1]))


def test_pad_graphs_shapes_and_mask():
    gs = [nx.path_graph(3), nx.cycle_graph(5)]
    x, a, mask = gnn.pad_graphs(gs)
    assert x.shape == (2, 5, 1) and a.shape == (2, 5, 5)
    assert mask.sum(1).tolist() == [3, 5]
    assert a[0, 3:].abs().sum() == 0 and x[0, 3:].abs().sum() == 0
    assert torch.equal(a[1], gnn.adjacency_matrix(gs[1]))


@pytest.mark.parametrize("bad", [torch.zeros(3, 4), torch.zeros(3)])
def test_bad_adjacency_fails_early_with_a_message(bad):
    with pytest.raises(ValueError, match="adjacency"):
        gnn.gcn_norm(bad)


def test_feature_adjacency_mismatch_fails_early():
    conv = gnn.GCNConv(2, 3)
    with pytest.raises(ValueError, match="x must have shape"):
        conv(torch.zeros(4, 2), torch.zeros(5, 5))
    with pytest.raises(ValueError, match="reduce"):
        gnn.propagate(torch.zeros(3, 1), torch.zeros(3, 3), reduce="median")


# ----------------------------------------------------------------- gcn_norm

def test_gcn_norm_matches_networkx_normalized_laplacian():
    for seed in range(5):
        g, a = random_graph(15, 0.25, seed)
        h = g.copy()
        h.add_edges_from((v, v) for v in h)     # self-loops of weight one
        lap = nx.normalized_laplacian_matrix(h, nodelist=list(g.nodes)).toarray()
        ref = torch.tensor(np.eye(15) - lap, dtype=D)
        assert torch.allclose(gnn.gcn_norm(a), ref, atol=1e-12)
        lap0 = nx.normalized_laplacian_matrix(g, nodelist=list(g.nodes)).toarray()
        deg = a.sum(1)
        ref0 = torch.tensor(np.eye(15) - lap0, dtype=D)
        ref0[deg == 0] = 0.0                    # isolated nodes: zero rows
        assert torch.allclose(gnn.gcn_norm(a, add_self_loops=False), ref0, atol=1e-12)


def test_gcn_norm_spectrum_in_minus_one_one_with_top_eigenvector():
    a = karate_club().adjacency.double()
    ahat = gnn.gcn_norm(a)
    ev, vec = torch.linalg.eigh(ahat)
    assert ev[-1] == pytest.approx(1.0, abs=1e-12) and ev[-2] < 1 - 1e-3
    assert ev[0] > -1 + 1e-3
    top = (a.sum(1) + 1).sqrt()
    top = top / top.norm()
    assert abs(abs(vec[:, -1] @ top) - 1) < 1e-10


# ----------------------------------------------------------------- layers vs loops

def reference_gcn(x, a, w, b):
    n = len(a)
    at = a + torch.eye(n, dtype=D)
    d = at.sum(1)
    xw = x @ w.T
    out = torch.zeros(n, w.shape[0], dtype=D)
    for i in range(n):
        for j in range(n):
            if at[i, j]:
                out[i] += at[i, j] / (d[i] * d[j]).sqrt() * xw[j]
    return out + b


def test_gcnconv_matches_dense_reference_forward_and_backward():
    g, a = random_graph(10, 0.3, seed=3)
    conv = gnn.GCNConv(4, 3, generator=torch_generator(0)).double()
    with torch.no_grad():
        conv.bias.normal_(generator=torch_generator(1))
    assert conv.lin.weight.shape == (3, 4) and conv.bias.shape == (3,)
    x = torch.randn(10, 4, dtype=D, generator=torch_generator(2), requires_grad=True)
    ref = reference_gcn(x, a, conv.lin.weight, conv.bias)
    assert torch.allclose(conv(x, a), ref, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x, w: reference_gcn(x, a, w, conv.bias)
                                    - F.linear(gnn.gcn_norm(a) @ x, w)
                                    - conv.bias, (x, conv.lin.weight))
    gx, = torch.autograd.grad(conv(x, a).square().sum(), x)
    gx_ref, = torch.autograd.grad(ref.square().sum(), x)
    assert torch.allclose(gx, gx_ref, atol=1e-10)


def reference_gat(x, a, w, att_src, att_dst, slope, concat):
    n, heads, c = len(a), att_src.shape[1], att_src.shape[2]
    h = (x @ w.T).reshape(n, heads, c)
    outs, alphas = [], torch.zeros(heads, n, n, dtype=D)
    for k in range(heads):
        out = torch.zeros(n, c, dtype=D)
        for i in range(n):
            nbrs = [j for j in range(n) if a[i, j] != 0 or j == i]
            e = torch.stack([F.leaky_relu(att_dst[0, k] @ h[i, k]
                                          + att_src[0, k] @ h[j, k], slope)
                             for j in nbrs])
            w_ij = torch.softmax(e, 0)
            for wt, j in zip(w_ij, nbrs):
                out[i] += wt * h[j, k]
                alphas[k, i, j] = wt
        outs.append(out)
    out = torch.cat(outs, 1) if concat else torch.stack(outs).mean(0)
    return out, alphas


@pytest.mark.parametrize("heads,concat", [(1, True), (3, True), (2, False)])
def test_gatconv_matches_dense_reference(heads, concat):
    g, a = random_graph(9, 0.35, seed=4)
    conv = gnn.GATConv(5, 4, heads=heads, concat=concat,
                       generator=torch_generator(0)).double()
    assert conv.lin.weight.shape == (heads * 4, 5)
    assert conv.att_src.shape == (1, heads, 4)
    x = torch.randn(9, 5, dtype=D, generator=torch_generator(1))
    out, alpha = conv(x, a, return_attention_weights=True)
    ref, ref_alpha = reference_gat(x, a, conv.lin.weight, conv.att_src,
                                   conv.att_dst, 0.2, concat)
    assert torch.allclose(out, ref + conv.bias, atol=1e-12)
    assert torch.allclose(alpha, ref_alpha, atol=1e-12)


def test_gat_attention_rows_sum_to_one_over_neighbours_and_vanish_elsewhere():
    g, a = random_graph(20, 0.2, seed=5)
    a[3] = 0
    a[:, 3] = 0                                 # an isolated node
    conv = gnn.GATConv(3, 2, heads=4, generator=torch_generator(0)).double()
    x = torch.randn(20, 3, dtype=D, generator=torch_generator(1))
    _, alpha = conv(x, a, return_attention_weights=True)
    allowed = (a != 0) | torch.eye(20, dtype=torch.bool)
    assert torch.allclose(alpha.sum(-1), torch.ones(4, 20, dtype=D), atol=1e-12)
    assert alpha.masked_select(~allowed).abs().max() == 0
    assert torch.allclose(alpha[:, 3, 3], torch.ones(4, dtype=D))
    no_loops = gnn.GATConv(3, 2, add_self_loops=False).double()
    _, alpha0 = no_loops(x, a, return_attention_weights=True)
    assert alpha0[:, 3].abs().max() == 0        # no neighbours: no attention


def test_ginconv_matches_reference_and_learns_eps():
    g, a = random_graph(8, 0.4, seed=6)
    inner = mlp([3, 5, 2], generator=torch_generator(0)).double()
    conv = gnn.GINConv(inner, eps=0.3, train_eps=True).double()
    x = torch.randn(8, 3, dtype=D, generator=torch_generator(1))
    agg = torch.stack([(1.3) * x[i] + sum((x[j] for j in g[i]),
                                          torch.zeros(3, dtype=D))
                       for i in range(8)])
    assert torch.allclose(conv(x, a), inner(agg), atol=1e-12)
    conv(x, a).sum().backward()
    assert isinstance(conv.eps, torch.nn.Parameter) and conv.eps.grad.abs() > 0
    fixed = gnn.GINConv(inner, eps=0.0)
    assert "eps" in dict(fixed.named_buffers()) and "eps" not in dict(
        fixed.named_parameters())


def test_propagate_sum_mean_max_match_loops():
    g, a = random_graph(12, 0.3, seed=7)
    x = torch.randn(12, 4, dtype=D, generator=torch_generator(0))
    for reduce in ("sum", "mean", "max"):
        out = gnn.propagate(x, a, reduce)
        for i in range(12):
            nb = list(g[i])
            if not nb:
                assert out[i].abs().max() == 0
                continue
            xs = x[nb]
            ref = {"sum": xs.sum(0), "mean": xs.mean(0), "max": xs.amax(0)}[reduce]
            assert torch.allclose(out[i], ref, atol=1e-12)


def test_mean_and_max_fail_on_xu_et_al_multisets_where_sum_succeeds():
    """Xu et al. (2019), Figure 3: multisets of neighbour features."""
    r, gr = torch.tensor([1.0, 0.0], dtype=D), torch.tensor([0.0, 1.0], dtype=D)
    pairs = {"a": ([r, r], [r, r, r]),               # mean and max fail
             "b": ([r, gr], [r, gr, gr]),            # max fails
             "c": ([r, gr], [r, r, gr, gr])}         # mean and max fail
    fails = {}
    for name, (m1, m2) in pairs.items():
        outs = {}
        for reduce in ("sum", "mean", "max"):
            vals = []
            for m in (m1, m2):
                star = nx.star_graph(len(m))          # centre 0, leaves 1..len(m)
                x = torch.stack([torch.zeros(2, dtype=D), *m])
                vals.append(gnn.propagate(x, gnn.adjacency_matrix(star, D), reduce)[0])
            outs[reduce] = torch.allclose(vals[0], vals[1])
        fails[name] = {k for k, same in outs.items() if same}
    assert fails == {"a": {"mean", "max"}, "b": {"max"}, "c": {"mean", "max"}}


# ----------------------------------------------------------------- equivariance

def layers_under_test():
    g = torch_generator(0)
    return {"gcn": gnn.GCNConv(3, 4, generator=g).double(),
            "gat": gnn.GATConv(3, 4, heads=2, generator=g).double(),
            "gin": gnn.GINConv(mlp([3, 8, 4], generator=g).double(), eps=0.1),
            "mean": lambda x, a: gnn.propagate(x, a, "mean"),
            "max": lambda x, a: gnn.propagate(x, a, "max")}


@pytest.mark.parametrize("name", ["gcn", "gat", "gin", "mean", "max"])
def test_layers_are_permutation_equivariant(name):
    layer = layers_under_test()[name]
    for seed in range(5):
        _, a = random_graph(13, 0.3, seed)
        x = torch.randn(13, 3, dtype=D, generator=torch_generator(seed))
        perm = torch.randperm(13, generator=torch_generator(100 + seed))
        px, pa = gnn.permute_graph(x, a, perm)
        with torch.no_grad():
            assert torch.allclose(layer(px, pa), layer(x, a)[perm], atol=1e-12)
            # and a random relabelling really changes the input
            assert not torch.allclose(layer(x, pa), layer(x, a)[perm], atol=1e-6)


def test_batched_layers_and_readout_are_equivariant_and_invariant():
    gs = [nx.gnp_random_graph(9, 0.4, seed=s) for s in range(4)]
    feats = [torch.randn(9, 2, generator=torch_generator(s)) for s in range(4)]
    x, a, mask = gnn.pad_graphs(gs, feats, dtype=D)
    net = gnn.GraphClassifier(2, 8, 3, num_layers=2,
                              generator=torch_generator(0)).double()
    perm = torch.randperm(9, generator=torch_generator(9))
    px, pa = gnn.permute_graph(x, a, perm)
    with torch.no_grad():
        assert torch.allclose(net(px, pa, mask[:, perm]), net(x, a, mask), atol=1e-10)
        single = torch.stack([net(x[b], a[b], mask[b]) for b in range(4)])
        assert torch.allclose(single, net(x, a, mask), atol=1e-10)


def test_readout_ignores_padding():
    x = torch.tensor([[[1.0], [2.0], [99.0]]])
    mask = torch.tensor([[True, True, False]])
    assert gnn.readout(x, mask, "sum").item() == pytest.approx(3.0)
    assert gnn.readout(x, mask, "mean").item() == pytest.approx(1.5)
    assert gnn.readout(x, mask, "max").item() == pytest.approx(2.0)


# ----------------------------------------------------------------- Weisfeiler-Lehman

def random_pairs(n_pairs: int, seed: int):
    """Random pairs, half of them with equal degree sequences (hard for 1-WL)."""
    rng = np.random.default_rng(seed)
    for t in range(n_pairs):
        n = int(rng.integers(5, 10))
        m = int(rng.integers(n - 1, 2 * n))
        g1 = nx.gnm_random_graph(n, m, seed=int(rng.integers(2**30)))
        if t % 2:
            g2 = g1.copy()
            try:
                nx.double_edge_swap(g2, nswap=2, max_tries=200,
                                    seed=int(rng.integers(2**30)))
            except nx.NetworkXException:
                pass
        else:
            g2 = nx.gnm_random_graph(n, m, seed=int(rng.integers(2**30)))
        yield g1, g2, int(rng.integers(2, 5))


def test_wl_distinguishes_agrees_with_networkx_hash_on_random_pairs():
    outcomes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # networkx's hash-change note
        for g1, g2, k in random_pairs(400, seed=0):
            ours = gnn.wl_distinguishes(g1, g2, k)
            theirs = (nx.weisfeiler_lehman_graph_hash(g1, iterations=k)
                      != nx.weisfeiler_lehman_graph_hash(g2, iterations=k))
            assert ours == theirs, (k, list(g1.edges), list(g2.edges))
            outcomes.append(ours)
    assert 50 < sum(outcomes) < 350          # both answers occur often


def test_wl_with_node_attributes_agrees_with_networkx():
    rng = np.random.default_rng(1)
    for g1, g2, k in itertools.islice(random_pairs(100, seed=2), 100):
        for g in (g1, g2):
            nx.set_node_attributes(g, {v: int(rng.integers(2)) for v in g}, "colour")
        ours = gnn.wl_distinguishes(g1, g2, k, node_attr="colour")
        theirs = (nx.weisfeiler_lehman_graph_hash(g1, node_attr="colour", iterations=k)
                  != nx.weisfeiler_lehman_graph_hash(g2, node_attr="colour",
                                                     iterations=k))
        assert ours == theirs


def test_wl_colours_refine_and_are_invariant_under_relabelling():
    g = nx.gnp_random_graph(15, 0.3, seed=3)
    perm = dict(zip(g, np.random.default_rng(0).permutation(15).tolist()))
    h = nx.relabel_nodes(g, perm)
    assert not gnn.wl_distinguishes(g, h)
    cols = gnn.wl_colors(g, 4)
    assert len(cols) == 5 and len(set(cols[0].values())) == 1
    for prev, nxt in zip(cols, cols[1:]):       # each round refines the last
        assert len(set(nxt.values())) >= len(set(prev.values()))
        for u, v in itertools.combinations(g, 2):
            if nxt[u] == nxt[v]:
                assert prev[u] == prev[v]
    degs = dict(g.degree())
    assert all((cols[1][u] == cols[1][v]) == (degs[u] == degs[v])
               for u, v in itertools.combinations(g, 2))


@pytest.mark.parametrize("pair", [two_triangles_and_hexagon,
                                  decalin_and_bicyclopentyl])
def test_known_non_isomorphic_pairs_fool_1wl(pair):
    g1, g2 = pair()
    assert not nx.is_isomorphic(g1, g2)
    assert not gnn.wl_distinguishes(g1, g2)
    assert gnn.wl_distinguishes(nx.cycle_graph(6), nx.path_graph(6), 1)


def test_wl_is_iterative_on_a_long_path():
    path = nx.path_graph(10_000)
    cols = gnn.wl_colors(path, 3)
    assert len(set(cols[3].values())) == 4      # ends, and distances 1, 2, >= 3
    with pytest.raises(ValueError, match="iterations"):
        gnn.wl_colors(path, -1)


def test_wl_features_count_colours():
    gs = [nx.cycle_graph(4), nx.path_graph(4)]
    f = gnn.wl_features(gs, 2)
    assert f.shape[0] == 2 and (f.sum(1) == 4 * 3).all()


# ----------------------------------------------------------------- claims

@pytest.mark.parametrize("conv", ["gin", "gcn", "gcn-mlp"])
def test_message_passing_cannot_separate_what_wl_cannot(conv):
    """Lemma 2 of Xu et al. (2019), at random weights; GIN separates the rest."""
    for seed in range(3):
        net = gnn.GraphClassifier(1, 16, 2, num_layers=3, conv=conv,
                                  generator=torch_generator(seed)).double()
        for pair in (two_triangles_and_hexagon, decalin_and_bicyclopentyl):
            x, a, mask = gnn.pad_graphs(list(pair()), dtype=D)
            with torch.no_grad():
                e = net.embed(x, a, mask)
            assert torch.allclose(e[0], e[1], atol=1e-10)
    gin = gnn.GraphClassifier(1, 16, 2, generator=torch_generator(0)).double()
    x, a, mask = gnn.pad_graphs([nx.cycle_graph(6), nx.path_graph(6)], dtype=D)
    with torch.no_grad():
        e = gin.embed(x, a, mask)
    assert (e[0] - e[1]).abs().max() > 1e-3


def test_label_propagation_is_the_fixed_point_of_spreading():
    a = karate_club().adjacency.double()
    idx, lab = torch.tensor([0, 33]), torch.tensor([0, 1])
    f = gnn.label_propagation(a, idx, lab, 2, alpha=0.8)
    s = gnn.gcn_norm(a, add_self_loops=False)
    y = torch.zeros(34, 2, dtype=D)
    y[idx, lab] = 1
    it = torch.zeros_like(y)
    for _ in range(300):
        it = 0.8 * s @ it + 0.2 * y
    assert torch.allclose(f, it, atol=1e-10)


def test_dirichlet_energy_pairwise_form_and_oversmoothing_bound():
    a = karate_club().adjacency.double()
    x = torch.randn(34, 5, dtype=D, generator=torch_generator(0))
    at = a + torch.eye(34, dtype=D)
    d = at.sum(1)
    y = x / d.sqrt()[:, None]
    pair = 0.5 * (at[:, :, None] * (y[:, None] - y[None]) ** 2).sum()
    assert gnn.dirichlet_energy(x, a).item() == pytest.approx(pair.item(), rel=1e-10)
    ahat = gnn.gcn_norm(a)
    ev = torch.linalg.eigvalsh(ahat)
    lam = max(ev[-2].abs(), ev[0].abs()).item()
    e0, xk = gnn.dirichlet_energy(x, a).item(), x
    for k in range(1, 20):
        xk = ahat @ xk
        assert gnn.dirichlet_energy(xk, a).item() <= lam ** (2 * k) * e0 * (1 + 1e-9)
    # with weights and ReLU (Cai and Wang, 2020): E <= (lam s)^2 E per layer
    g = torch_generator(1)
    h = x
    for _ in range(6):
        w = torch.randn(5, 5, dtype=D, generator=g) / 5 ** 0.5
        s = torch.linalg.matrix_norm(w, 2).item()
        e_before = gnn.dirichlet_energy(h, a).item()
        h = torch.relu(ahat @ h @ w.T)
        assert gnn.dirichlet_energy(h, a).item() <= (lam * s) ** 2 * e_before + 1e-12


def test_karate_club_from_one_label_per_faction():
    """The chapter's claim: GCN and label spreading beat the graph-free MLP."""
    kc = karate_club()
    idx = torch.tensor([0, 33])
    rest = torch.tensor([i for i in range(34) if i not in (0, 33)])
    x = torch.eye(34)
    accs = {}
    for name in ("gcn", "mlp"):
        net = (gnn.GCN(34, 16, 2, generator=torch_generator(0)) if name == "gcn"
               else mlp([34, 16, 2], generator=torch_generator(0)))
        model = gnn.OnNodes(net, x, kc.adjacency) if name == "gcn" else net
        data = (idx, kc.labels[idx]) if name == "gcn" else (x[idx], kc.labels[idx])
        val = (rest, kc.labels[rest]) if name == "gcn" else (x[rest], kc.labels[rest])
        opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
        h = fit(model, F.cross_entropy, opt, data, epochs=100, val=val,
                metrics={"acc": accuracy})
        accs[name] = h.final["val_acc"]
    lp = gnn.label_propagation(kc.adjacency, idx, kc.labels[idx], 2)
    accs["lp"] = (lp.argmax(1)[rest] == kc.labels[rest]).float().mean().item()
    assert accs["gcn"] >= 0.85 and accs["lp"] >= 0.85
    assert accs["mlp"] == pytest.approx(0.5, abs=0.1)   # a constant predictor


@pytest.mark.slow
def test_gin_classifies_graph_families():
    graphs, y = graph_families(30, seed=0)
    test_graphs, y_test = graph_families(20, seed=1)
    x, a, mask = gnn.pad_graphs(graphs)
    xt, at, mt = gnn.pad_graphs(test_graphs)
    net = gnn.GraphClassifier(1, 16, 4, generator=torch_generator(0))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    fit(gnn.OnGraphs(net, x, a, mask), F.cross_entropy, opt,
        (torch.arange(len(graphs)), y), epochs=300)
    with torch.no_grad():
        acc = (net(xt, at, mt).argmax(1) == y_test).float().mean().item()
    assert acc >= 0.85


def test_graph_classifier_gcn_mlp_variant_is_invariant_and_checks_conv():
    gs = [nx.gnp_random_graph(9, 0.4, seed=s) for s in range(3)]
    x, a, mask = gnn.pad_graphs(gs, dtype=D)
    net = gnn.GraphClassifier(1, 8, 3, num_layers=2, conv="gcn-mlp",
                              generator=torch_generator(0)).double()
    assert isinstance(net.convs[0].mlp, torch.nn.Sequential)
    perm = torch.randperm(9, generator=torch_generator(1))
    px, pa = gnn.permute_graph(x, a, perm)
    with torch.no_grad():
        assert torch.allclose(net(px, pa, mask[:, perm]), net(x, a, mask), atol=1e-10)
    with pytest.raises(ValueError, match="conv must be one of"):
        gnn.GraphClassifier(1, 8, 3, conv="sage")


def test_symmetric_gcn_normalization_is_not_a_mean():
    """On constant inputs GCN sees degrees (closed form); a mean aggregator does not."""
    g = nx.star_graph(4)                              # degrees 4, 1, 1, 1, 1
    a = gnn.adjacency_matrix(g, D)
    ones = torch.ones(5, 1, dtype=D)
    d = a.sum(1) + 1
    closed = torch.stack([sum(1 / (d[i] * d[j]).sqrt() for j in range(5)
                              if a[i, j] or i == j) for i in range(5)])
    assert torch.allclose(gnn.gcn_norm(a) @ ones, closed[:, None], atol=1e-12)
    assert (closed - 1).abs().max() > 0.1            # rows do not sum to one
    assert torch.allclose(gnn.propagate(ones, a, "mean"), ones)   # mean: no degrees
    reg = gnn.adjacency_matrix(nx.cycle_graph(7), D)  # regular: GCN is a mean
    assert torch.allclose(gnn.gcn_norm(reg) @ torch.ones(7, 1, dtype=D),
                          torch.ones(7, 1, dtype=D), atol=1e-12)


def test_weighted_min_cut_reproduces_zachary_single_error():
    """Zachary (1977): the max-flow/min-cut split misplaces one member (node 8)."""
    kc = karate_club()
    h = nx.DiGraph()
    for u, v, w in kc.graph.edges(data="weight"):
        h.add_edge(u, v, capacity=float(w))
        h.add_edge(v, u, capacity=float(w))
    _, (side_hi, _) = nx.minimum_cut(h, 0, 33)
    pred = torch.tensor([0 if v in side_hi else 1 for v in range(34)])
    assert torch.nonzero(pred != kc.labels).flatten().tolist() == [8]


@pytest.mark.slow
def test_gcn_gap_on_families_is_the_update_not_the_aggregation():
    """GCN underfits (train accuracy as low as test); an MLP update closes the gap."""
    graphs, y = graph_families(40, seed=0)
    x, a, mask = gnn.pad_graphs(graphs)
    train_acc = {}
    for conv in ("gcn", "gcn-mlp"):
        net = gnn.GraphClassifier(1, 16, 4, num_layers=3, conv=conv, readout="mean",
                                  generator=torch_generator(0))
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        fit(gnn.OnGraphs(net, x, a, mask), F.cross_entropy, opt,
            (torch.arange(len(graphs)), y), epochs=300)
        with torch.no_grad():
            train_acc[conv] = accuracy(net(x, a, mask), y)
    assert train_acc["gcn"] < 0.8 and train_acc["gcn-mlp"] > train_acc["gcn"] + 0.15
