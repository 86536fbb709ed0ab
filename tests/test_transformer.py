"""Tests for dlbook.transformer: oracle tests against PyTorch in float64
(attention forward and backward, MultiheadAttention through its state_dict,
FLOP counts), n-gram models against direct counting, the KV cache against
the uncached model, and the transformers chapter's claims at small size."""
import math
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook import transformer as T

torch.set_num_threads(1)
DT = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _grads(out, inputs, seed=0):
    u = torch.randn(out.shape, dtype=out.dtype, generator=_gen(seed))
    return torch.autograd.grad((out * u).sum(), inputs)


def _qkv(batch=(2, 3), L=5, S=7, E=8, Ev=6, seed=0):
    g = _gen(seed)
    return [torch.randn(*batch, n, e, generator=g, dtype=DT, requires_grad=True)
            for n, e in ((L, E), (S, E), (S, Ev))]


MASKS = ["none", "bool", "float", "bool-broadcast", "causal", "causal-square"]


def _mask(kind, L, S, g):
    if kind == "bool":
        m = torch.rand(2, 3, L, S, generator=g) > 0.4
        m[..., 0] = True          # no fully masked row: torch's fast path
        return m
    if kind == "bool-broadcast":
        m = torch.rand(L, S, generator=g) > 0.5
        m[:, -1] = True
        return m
    if kind == "float":
        return torch.randn(3, 1, S, generator=g, dtype=DT)
    return None


@pytest.mark.parametrize("kind", MASKS)
def test_sdpa_matches_torch_forward_and_backward(kind):
    L = 7 if kind == "causal-square" else 5
    q, k, v = _qkv(L=L)
    m = _mask(kind, L, 7, _gen(1))
    causal = kind.startswith("causal")
    ours = T.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal)
    assert ours.shape == ref.shape == (2, 3, L, 6)
    assert (ours - ref).abs().max() < 1e-12
    for a, b in zip(_grads(ours, (q, k, v)), _grads(ref, (q, k, v))):
        assert (a - b).abs().max() < 1e-12


def test_sdpa_custom_scale_unbatched_and_fully_masked_rows():
    q, k, v = _qkv(batch=(), L=4, S=6)
    ours = T.scaled_dot_product_attention(q, k, v, scale=0.3)
    ref = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert (ours - ref).abs().max() < 1e-12
    m = torch.ones(4, 6, dtype=torch.bool)
    m[2] = False                               # row 2 sees nothing
    out = T.scaled_dot_product_attention(q, k, v, attn_mask=m)
    assert torch.isfinite(out).all() and out[2].abs().max() == 0
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    assert (out - ref).abs().max() < 1e-12


def test_sdpa_rejects_bad_input():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="last dimension"):
        T.scaled_dot_product_attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match="either attn_mask"):
        T.scaled_dot_product_attention(q, k, v, torch.ones(5, 7, dtype=bool),
                                       is_causal=True)
    with pytest.raises(ValueError, match="same length"):
        T.scaled_dot_product_attention(q, k, v[..., :3, :])


def test_attention_dropout_is_unbiased_and_seeded():
    q, k, v = (t.detach() for t in _qkv(batch=(64,)))
    a = T.scaled_dot_product_attention(q, k, v, dropout_p=0.5, generator=_gen(3))
    b = T.scaled_dot_product_attention(q, k, v, dropout_p=0.5, generator=_gen(3))
    assert torch.equal(a, b)
    mean = torch.stack([T.scaled_dot_product_attention(
        q, k, v, dropout_p=0.5, generator=_gen(s)) for s in range(200)]).mean(0)
    exact = T.scaled_dot_product_attention(q, k, v)
    assert (mean - exact).abs().mean() < 0.05


def _pair_mha(E=12, h=3, bias=True, seed=0):
    ours = T.MultiheadAttention(E, h, bias=bias, generator=_gen(seed)).double()
    ref = nn.MultiheadAttention(E, h, bias=bias, batch_first=True).double()
    ref.load_state_dict(ours.state_dict())
    return ours, ref


@pytest.mark.parametrize("masks", ["none", "padding", "attn-bool", "attn-float",
                                   "both", "3d"])
def test_multihead_attention_state_dict_loads_into_torch(masks):
    ours, ref = _pair_mha()
    assert list(ours.state_dict()) == list(ref.state_dict())
    g = _gen(1)
    x = torch.randn(2, 5, 12, generator=g, dtype=DT, requires_grad=True)
    mem = torch.randn(2, 6, 12, generator=g, dtype=DT, requires_grad=True)
    kw = {}
    if masks in ("padding", "both"):
        pad = torch.zeros(2, 6, dtype=torch.bool)
        pad[0, 4:] = True
        kw["key_padding_mask"] = pad
    if masks in ("attn-bool", "both"):
        am = torch.rand(5, 6, generator=g) > 0.6
        am[:, 0] = False
        kw["attn_mask"] = am
    if masks == "attn-float":
        kw["attn_mask"] = torch.randn(5, 6, generator=g, dtype=DT)
    if masks == "3d":
        kw["attn_mask"] = torch.randn(2 * 3, 5, 6, generator=g, dtype=DT)
    for avg in (True, False):
        o1, w1 = ours(x, mem, mem, average_attn_weights=avg, **kw)
        o2, w2 = ref(x, mem, mem, average_attn_weights=avg, **kw)
        assert (o1 - o2).abs().max() < 1e-12 and (w1 - w2).abs().max() < 1e-12
    params = [x, mem, *ours.parameters()]
    params_ref = [x, mem, *ref.parameters()]
    o1, _ = ours(x, mem, mem, need_weights=False, **kw)
    o2, _ = ref(x, mem, mem, need_weights=False, **kw)
    for a, b in zip(_grads(o1, params), _grads(o2, params_ref)):
        assert (a - b).abs().max() < 1e-11


def test_multihead_attention_torch_weights_load_into_ours_and_layouts():
    ref = nn.MultiheadAttention(8, 2, batch_first=True).double()
    ours = T.MultiheadAttention(8, 2).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 4, 8, generator=_gen(2), dtype=DT)
    assert (ours(x, x, x)[0] - ref(x, x, x)[0]).abs().max() < 1e-12
    seq_first = T.MultiheadAttention(8, 2, batch_first=False).double()
    seq_first.load_state_dict(ref.state_dict())
    out = seq_first(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1))[0]
    assert (out.transpose(0, 1) - ref(x, x, x)[0]).abs().max() < 1e-12
    out_u, w_u = ours(x[0], x[0], x[0])
    assert out_u.shape == (4, 8) and w_u.shape == (4, 4)
    assert (out_u - ref(x, x, x)[0][0]).abs().max() < 1e-12
    nb = T.MultiheadAttention(8, 2, bias=False)
    assert nb.in_proj_bias is None and nb.out_proj.bias is None
    with pytest.raises(ValueError, match="divisible"):
        T.MultiheadAttention(10, 3)


def test_mha_initialization_statistics_match_torch():
    ours = T.MultiheadAttention(64, 4, generator=_gen(0))
    ref = nn.MultiheadAttention(64, 4, batch_first=True)
    for name in ("in_proj_weight", "out_proj.weight"):
        a, b = ours.state_dict()[name], ref.state_dict()[name]
        assert abs(a.abs().max() / b.abs().max() - 1) < 0.02
        assert abs(a.std() / b.std() - 1) < 0.05


def test_attention_without_positions_is_permutation_equivariant():
    g = _gen(4)
    mha = T.MultiheadAttention(16, 4, generator=g).double()
    x = torch.randn(1, 9, 16, generator=g, dtype=DT)
    perm = torch.randperm(9, generator=g)
    out = mha(x, x, x)[0]
    xp = x[:, perm]
    assert (mha(xp, xp, xp)[0] - out[:, perm]).abs().max() < 1e-12
    # a causal mask breaks the symmetry
    causal = ~T.causal_mask(9)
    out_c = mha(x, x, x, attn_mask=causal)[0]
    out_cp = mha(x[:, perm], x[:, perm], x[:, perm], attn_mask=causal)[0]
    assert (out_cp - out_c[:, perm]).abs().max() > 1e-2


def test_masked_attention_equivariance_and_the_causal_case():
    """f(PX, P M P^T) = P f(X, M); causal: not equivariant, but one layer
    ignores the order of the strict past (theorem, part b)."""
    g = _gen(30)
    mha = T.MultiheadAttention(8, 2, generator=g).double()
    x = torch.randn(1, 7, 8, generator=g, dtype=DT)
    perm = torch.randperm(7, generator=g)
    blocked = ~T.causal_mask(7)                      # torch's convention
    M = torch.zeros(7, 7, dtype=DT).masked_fill(blocked, float("-inf"))
    out = mha(x, x, x, attn_mask=M)[0]
    xp = x[:, perm]
    out_p = mha(xp, xp, xp, attn_mask=M[perm][:, perm])[0]  # P M P^T
    assert (out_p - out[:, perm]).abs().max() < 1e-12
    # one causal layer: shuffling x_<5 leaves output 5 (and later ones) unchanged
    past = torch.cat([torch.randperm(5, generator=g), torch.arange(5, 7)])
    out_s = mha(x[:, past], x[:, past], x[:, past], attn_mask=blocked)[0]
    out_c = mha(x, x, x, attn_mask=blocked)[0]
    assert (out_s[:, 5:] - out_c[:, 5:]).abs().max() < 1e-12
    # a causal stack without positions is not equivariant
    cfg = T.GPTConfig(11, 10, n_layer=2, n_head=2, d_model=16, positions="none")
    gpt = T.GPT(cfg, generator=_gen(31)).double()
    with torch.no_grad():
        for p in gpt.parameters():
            p.normal_(0.0, 0.3, generator=_gen(32))
        idx = torch.randint(0, 11, (3, 10), generator=_gen(33))
        pm = torch.randperm(10, generator=_gen(34))
        assert (gpt(idx[:, pm]) - gpt(idx)[:, pm]).abs().max() > 1e-2


@pytest.mark.parametrize("positions", ["none", "learned", "sinusoidal", "rotary"])
def test_encoder_equivariance_holds_only_without_positions(positions):
    cfg = T.GPTConfig(11, 10, n_layer=2, n_head=2, d_model=16, positions=positions)
    model = T.Encoder(cfg, generator=_gen(5)).double()
    with torch.no_grad():              # break GPT-2 init symmetry in learned pe
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=_gen(6), dtype=DT))
    idx = torch.randint(0, 11, (3, 10), generator=_gen(7))
    perm = torch.randperm(10, generator=_gen(8))
    dev = (model(idx[:, perm]) - model(idx)[:, perm]).abs().max().item()
    assert (dev < 1e-12) == (positions == "none"), dev


def test_sinusoidal_encoding_formula_and_relative_shift():
    pe = T.sinusoidal_encoding(50, 8, dtype=DT)
    p, i = 13, 2
    assert abs(pe[p, 2 * i] - math.sin(p / 10000 ** (2 * i / 8))) < 1e-14
    assert abs(pe[p, 2 * i + 1] - math.cos(p / 10000 ** (2 * i / 8))) < 1e-14
    # PE[p + k] is a fixed linear map (rotation) of PE[p], for every p
    k = 5
    M = torch.linalg.lstsq(pe[:40], pe[k:40 + k]).solution
    assert (pe[:40] @ M - pe[k:40 + k]).abs().max() < 1e-9
    gram = pe @ pe.T
    diag = torch.diagonal(gram, 3)
    assert (diag[:20] - diag[5]).abs().max() < 1e-12
    with pytest.raises(ValueError, match="even"):
        T.sinusoidal_encoding(4, 5)


def test_rotary_is_a_rotation_whose_scores_depend_on_offset_only():
    g = _gen(9)
    q = torch.randn(12, 8, generator=g, dtype=DT)
    k = torch.randn(12, 8, generator=g, dtype=DT)
    pos = torch.arange(12)
    rq, rk = T.apply_rotary(q, pos), T.apply_rotary(k, pos)
    R5 = T.rotation_blocks(5, 8)
    assert (rq[5] - R5 @ q[5]).abs().max() < 1e-13
    assert (R5.T @ R5 - torch.eye(8, dtype=DT)).abs().max() < 1e-13
    # same q and k placed at positions (m, n) and (m + s, n + s): equal score
    qq, kk = q[0], k[0]
    s1 = T.apply_rotary(qq[None], torch.tensor([7]))[0] @ \
        T.apply_rotary(kk[None], torch.tensor([3]))[0]
    s2 = T.apply_rotary(qq[None], torch.tensor([11]))[0] @ \
        T.apply_rotary(kk[None], torch.tensor([7]))[0]
    assert abs(s1 - s2) < 1e-12
    assert abs(s1 - qq @ T.rotation_blocks(-4, 8) @ kk) < 1e-12


def test_causal_mask_offsets_and_torch_alignment():
    m = T.causal_mask(3, 5, offset=2)
    assert m.tolist() == [[True, True, True, False, False],
                          [True, True, True, True, False],
                          [True] * 5]
    ref = torch.ones(4, 6, dtype=torch.bool).tril()
    assert torch.equal(T.causal_mask(4, 6), ref)


def test_masked_attention_is_message_passing_on_the_mask_graph():
    gnn = pytest.importorskip("dlbook.gnn")
    nx = pytest.importorskip("networkx")
    graph = nx.cycle_graph(8)
    A = gnn.adjacency_matrix(graph, dtype=DT) + torch.eye(8, dtype=DT)
    g = _gen(10)
    q, k, v = (torch.randn(8, 4, generator=g, dtype=DT) for _ in range(3))
    w = T.attention_weights(q, k, A > 0)
    assert (w[A == 0]).abs().max() == 0
    out = T.scaled_dot_product_attention(q, k, v, A > 0)
    assert (out - gnn.propagate(v, w, "sum")).abs().max() < 1e-13


# --- GPT ------------------------------------------------------------------

def _tiny(positions="learned", **kw):
    cfg = T.GPTConfig(13, 16, n_layer=2, n_head=2, d_model=16,
                      positions=positions, **kw)
    return T.GPT(cfg, generator=_gen(11)).double()


def test_gpt_config_is_frozen_and_validated():
    cfg = T.GPTConfig(10, 8, 2, 2, 16)
    with pytest.raises(Exception):
        cfg.d_model = 32
    with pytest.raises(ValueError, match="divisible"):
        T.GPTConfig(10, 8, 2, 3, 16)
    with pytest.raises(ValueError, match="positions"):
        T.GPTConfig(10, 8, 2, 2, 16, positions="alibi")
    with pytest.raises(ValueError, match="exceeds the context"):
        T.GPT(cfg)(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rotary", "none"])
def test_gpt_is_causal(positions):
    model = _tiny(positions)
    idx = torch.randint(0, 13, (2, 16), generator=_gen(12))
    idx2 = idx.clone()
    idx2[:, 9:] = (idx2[:, 9:] + 1) % 13
    a, b = model(idx), model(idx2)
    assert (a[:, :9] - b[:, :9]).abs().max() < 1e-12
    assert (a[:, 9:] - b[:, 9:]).abs().max() > 1e-6


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_kv_cache_gives_the_uncached_logits(positions):
    model = _tiny(positions)
    idx = torch.randint(0, 13, (2, 12), generator=_gen(13))
    full = model(idx)
    cache = T.KVCache()
    parts = [model(idx[:, :5], cache)] + [model(idx[:, t:t + 1], cache)
                                          for t in range(5, 12)]
    assert cache.length == 12
    assert (torch.cat(parts, 1) - full).abs().max() < 1e-12


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.7, 5), (0.0, None)])
def test_generate_with_cache_equals_without(temperature, top_k):
    model = _tiny("rotary")
    prompt = torch.randint(0, 13, (3, 4), generator=_gen(14))
    # 30 new tokens: the window slides past the context of 16
    a = T.generate(model, prompt, 30, temperature, top_k, _gen(15), use_cache=True)
    b = T.generate(model, prompt, 30, temperature, top_k, _gen(15), use_cache=False)
    assert a.shape == (3, 34) and torch.equal(a, b) and torch.equal(a[:, :4], prompt)


def test_top_k_one_and_zero_temperature_are_greedy():
    model = _tiny()
    prompt = torch.randint(0, 13, (2, 3), generator=_gen(16))
    a = T.generate(model, prompt, 10, 1.0, top_k=1, generator=_gen(1))
    b = T.generate(model, prompt, 10, 0.0)
    assert torch.equal(a, b)


def test_parameter_counts_match_the_module():
    from dlbook.nn import count_parameters
    for kw in ({}, {"positions": "rotary"}, {"tie_weights": False},
               {"bias": False}):
        cfg = T.GPTConfig(37, 20, n_layer=3, n_head=4, d_model=24, **kw)
        counts = T.gpt_parameter_counts(cfg)
        assert counts["total"] == count_parameters(T.GPT(cfg))


@pytest.mark.parametrize("positions,tie", [("learned", True), ("rotary", False)])
def test_training_flops_equal_the_counted_matmuls(positions, tie):
    cfg = T.GPTConfig(29, 12, n_layer=2, n_head=2, d_model=16,
                      positions=positions, tie_weights=tie)
    model = T.GPT(cfg, generator=_gen(17))
    idx = torch.randint(0, 29, (3, 12), generator=_gen(18))
    measured = T.measured_training_flops(model, idx, idx)
    per_token = T.training_flops_per_token(cfg)
    assert measured["total"] == 3 * 12 * per_token
    assert measured["total"] == 3 * measured["forward"]


def test_encoder_decoder_counts_near_the_papers_sizes():
    base = T.encoder_decoder_parameters(6, 512, 2048, 37000)["total"]
    big = T.encoder_decoder_parameters(6, 1024, 4096, 37000)["total"]
    assert abs(base / 65e6 - 1) < 0.05 and abs(big / 213e6 - 1) < 0.02


# --- n-gram models ----------------------------------------------------------

def _direct(ids, order, V, smoothing, k):
    """Conditional probabilities by counting with Python dictionaries."""
    seq = ids.tolist()
    grams = [Counter(tuple(seq[i:i + m]) for i in range(len(seq) - m + 1))
             for m in range(1, order + 1)]

    def p(ctx, c):
        m = len(ctx) + 1
        if smoothing == "add-k" or m == 1:
            n_h = sum(grams[m - 1][ctx + (x,)] for x in range(V))
            return (grams[m - 1][ctx + (c,)] + k) / (n_h + k * V)
        n_h = sum(grams[m - 1][ctx + (x,)] for x in range(V))
        u_h = sum(grams[m - 1][ctx + (x,)] > 0 for x in range(V))
        lower = p(ctx[1:], c)
        if n_h == 0:
            return lower
        lam = n_h / (n_h + u_h)
        return lam * grams[m - 1][ctx + (c,)] / n_h + (1 - lam) * lower
    return p


@pytest.mark.parametrize("order,smoothing,k", [(1, "add-k", 1.0), (2, "add-k", 0.5),
                                               (3, "add-k", 0.1),
                                               (2, "interpolated", 1.0),
                                               (3, "interpolated", 0.5)])
def test_ngram_probabilities_equal_direct_counts(order, smoothing, k):
    V = 5
    ids = torch.randint(0, V, (300,), generator=_gen(19))
    ids[100:140] = 2                       # some structure, some unseen grams
    model = T.NGramLM(order, V, smoothing, k).fit(ids)
    P = model.probabilities()
    p = _direct(ids, order, V, smoothing, k)
    rng = np.random.default_rng(0)
    for _ in range(40):
        key = tuple(int(c) for c in rng.integers(0, V, order))
        assert abs(P[key] - p(key[:-1], key[-1])) < 1e-12
    assert np.allclose(P.sum(-1), 1.0)
    test = torch.randint(0, V, (50,), generator=_gen(20))
    bpc = -np.mean([math.log2(p(tuple(test[t - order + 1:t].tolist()), int(test[t])))
                    for t in range(2, 50)])
    assert abs(model.bits_per_char(test, start=2) - bpc) < 1e-10


def test_ngram_on_a_deterministic_cycle_and_bad_input():
    ids = torch.arange(200) % 4                # 0 1 2 3 0 1 2 3 ...
    bi = T.NGramLM(2, 4, "add-k", k=1e-6).fit(ids)
    assert bi.bits_per_char(ids) < 1e-4        # the next symbol is determined
    uni = T.NGramLM(1, 4).fit(ids)
    assert abs(uni.bits_per_char(ids) - 2.0) < 1e-3
    assert bi.sample(5, [2], np.random.default_rng(0)) == [3, 0, 1, 2, 3]
    with pytest.raises(ValueError, match="lie in"):
        bi.fit(torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="smoothing"):
        T.NGramLM(2, 4, "kneser-ney")


# --- the chapter's claims at small size -------------------------------------

def test_unscaled_scores_saturate_the_softmax():
    g = _gen(21)
    n, trials = 32, 200
    ratios = {}
    for d in (4, 1024):
        q = torch.randn(trials, 1, d, generator=g, dtype=DT)
        k = torch.randn(trials, n, d, generator=g, dtype=DT)
        s = (q @ k.transpose(1, 2))[:, 0]
        assert abs(s.var().item() / d - 1) < 0.2          # Var(q.k) = d_k
        for name, sc in (("raw", s), ("scaled", s / math.sqrt(d))):
            p = torch.softmax(sc, -1)
            jac = torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)
            ratios[name, d] = torch.linalg.matrix_norm(jac).mean().item()
    assert ratios["raw", 1024] < 0.5 * ratios["raw", 4]
    assert 0.7 < ratios["scaled", 1024] / ratios["scaled", 4] < 1.3


@pytest.mark.slow
def test_reverse_task_is_learned_with_positions_and_not_without():
    res = T.train_sequence_task("reverse", length=8, vocab_size=8, n_train=2000,
                                n_test=300, epochs=10, seed=0)
    assert res.history.final["val_acc"] > 0.95
    logits, maps = res.model(res.test[0][:50], return_attention=True)
    anti = maps[0][:, 0].argmax(-1)            # (50, 8): the key each row reads
    assert (anti == torch.arange(7, -1, -1)).float().mean() > 0.9
    with torch.no_grad():                      # positions alone give the pattern
        blk = res.model.blocks[0]
        _, w = blk.attn(blk.ln_1(res.model.wpe.weight[None]), need_weights=True)
    assert (w[0, 0].argmax(-1) == torch.arange(7, -1, -1)).float().mean() > 0.9
    cfg = T.GPTConfig(8, 8, n_layer=1, n_head=1, d_model=64, positions="none")
    blind = T.train_sequence_task("reverse", length=8, vocab_size=8, n_train=2000,
                                  n_test=300, epochs=10, config=cfg, seed=0)
    assert blind.history.final["val_acc"] < 0.4


@pytest.mark.slow
def test_small_gpt_beats_the_unigram_and_bigram_baselines():
    from dlbook.data import CharVocab, text_corpus
    text = text_corpus("python-docs")
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    train, held = ids[:-50_000], ids[-50_000:]
    cfg = T.GPTConfig(len(vocab), 32, n_layer=2, n_head=4, d_model=48,
                      positions="rotary")
    g = _gen(0)
    model = T.GPT(cfg, generator=g)
    probe, curve = held[:2001], {}

    def record(step, m):
        if step % 50 == 0:
            curve[step] = T.lm_bits_per_char(m, probe[1:])
    losses = T.train_lm(model, train, steps=150, batch_size=16, lr=6e-3, generator=g,
                        callback=record)
    assert losses[-1] < losses[0] - 1.0
    assert curve[50] > curve[100] > curve[150] + 0.05      # still falling
    sub = held[:20_001]
    bpc = T.lm_bits_per_char(model, sub[1:])               # targets sub[2:]
    ngram = {n: T.NGramLM(n, len(vocab), "interpolated", k=0.1).fit(train)
             for n in (2, 3)}
    bigram, trigram = (ngram[n].bits_per_char(sub, start=2) for n in (2, 3))
    assert bigram > bpc > trigram, (bigram, bpc, trigram)  # the chapter's ordering


def test_position_free_ceiling_matches_enumeration():
    # length 3, two symbols: positions 0 and 2 swap, the middle is fixed.
    # Removing x_0 leaves {x_1, x_2}: right with prob. 1 if equal, else 1/2.
    exact = (0.75 + 1.0 + 0.75) / 3
    est = T.position_free_ceiling("reverse", 3, 2, n=40000, seed=1)
    assert abs(est - exact) < 0.01
    assert T.position_free_ceiling("copy", 5, 4) == 1.0
    with pytest.raises(ValueError, match="kind"):
        T.position_free_ceiling("sort", 5, 4)


class _ContextFree(nn.Module):
    """Logits depend on the current token only: an exact oracle for scoring."""
    config = T.GPTConfig(5, 8, 1, 1, 2)

    def __init__(self):
        super().__init__()
        self.table = torch.randn(5, 5, generator=_gen(40))

    def forward(self, x):
        return self.table[x]


@pytest.mark.parametrize("n,stride", [(9, None), (50, None), (53, 3), (77, 8)])
def test_lm_bits_per_char_scores_every_target_exactly_once(n, stride):
    model = _ContextFree()
    ids = torch.randint(0, 5, (n,), generator=_gen(41))
    nll = F.cross_entropy(model.table[ids[:-1]], ids[1:], reduction="none")
    exact = nll.mean().item() / math.log(2)
    assert abs(T.lm_bits_per_char(model, ids, stride=stride) - exact) < 1e-6
    # with max_windows only the covered targets count: the first window's 8
    first = nll[:8].mean().item() / math.log(2)
    assert abs(T.lm_bits_per_char(model, ids, max_windows=1) - first) < 1e-6
    with pytest.raises(ValueError, match="at least context"):
        T.lm_bits_per_char(model, ids[:8])


def test_train_lm_calls_back_every_step_and_validates():
    model = _tiny()
    ids = torch.randint(0, 13, (200,), generator=_gen(42))
    seen = []
    T.train_lm(model, ids, steps=3, batch_size=2, warmup=1, generator=_gen(43),
               callback=lambda step, m: seen.append((step, m.training)))
    assert seen == [(1, True), (2, True), (3, True)]
    with pytest.raises(ValueError, match="steps"):
        T.train_lm(model, ids, steps=0, batch_size=2)


def test_lm_bits_per_char_of_a_uniform_model_is_log2_of_the_vocabulary():
    class Uniform(nn.Module):            # logits 0: log2(V) bits everywhere
        config = T.GPTConfig(7, 8, 1, 1, 2)

        def forward(self, x):
            return torch.zeros(*x.shape, 7)
    ids = torch.randint(0, 7, (100,), generator=_gen(22))
    assert abs(T.lm_bits_per_char(Uniform(), ids) - math.log2(7)) < 1e-6
