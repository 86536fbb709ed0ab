"""Tests of dlbook.language (chapter language-models): BPE against the
``tokenizers`` library, decoding filters against direct computations, LoRA on
the GPT, the RLHF optimum and DPO against closed forms, and the chapter's
claims at small size."""
from __future__ import annotations

import copy
import json
import math
import string

import numpy as np
import pytest
import torch

from dlbook import language as LM
from dlbook import transformer
from dlbook.data import CharVocab, text_corpus
from dlbook.seed import torch_generator
from dlbook.train import fit
from dlbook.transfer import LoRALinear

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus() -> str:
    return text_corpus("python-docs")[:60_000]


# --- tokenization ------------------------------------------------------------

def test_pretokenize_partitions_text():
    s = "def f(x):\n    return  x**2  # ok\t\n"
    assert "".join(LM.pretokenize(s)) == s
    with pytest.raises(ValueError, match="str"):
        LM.pretokenize(b"bytes")


def test_bpe_round_trip_and_vocabulary(corpus):
    bpe = LM.BPE().train(corpus, 100)
    assert len(bpe.merges) == 100 and len(bpe) == len(set(corpus)) + 100
    for s in (corpus[-5000:], "  spaces   and\n\nnewlines ", "x"):
        s = "".join(c for c in s if c in set(corpus))
        ids = bpe.encode(s)
        assert bpe.decode(ids) == s
        assert all(0 <= i < len(bpe) for i in ids)
    assert len(bpe.encode(corpus[-5000:])) < 0.7 * 5000     # it compresses
    with pytest.raises(ValueError, match="not in the vocabulary"):
        bpe.encode("\u2603")


def test_bpe_first_merge_is_most_frequent_pair():
    text = "ab ab ab cd cd"
    bpe = LM.BPE().train(text, 1)
    # pairs inside pre-tokens: (a,b) x3, (' ',a) x2, (c,d) x2, (' ',c) x2
    assert bpe.merges == [("a", "b")]


def test_bpe_matches_tokenizers_library(corpus):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    n = 150
    ours = LM.BPE().train(corpus, n)
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Split(Regex(LM.PRETOKEN_PATTERN), "isolated")
    alpha = sorted(set(corpus))
    hf.train_from_iterator([corpus], trainers.BpeTrainer(
        vocab_size=len(alpha) + n, initial_alphabet=alpha, limit_alphabet=len(alpha),
        min_frequency=0, show_progress=False))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in json.loads(hf.to_str())["model"]["merges"]]
    assert merges == ours.merges                       # same merges, same order
    held = text_corpus("python-docs")[-20_000:]
    held = "".join(c for c in held if c in set(alpha))
    n_ours, n_hf = len(ours.encode(held)), len(hf.encode(held).ids)
    assert abs(n_ours - n_hf) <= 0.001 * n_hf          # same compression


def test_bpe_truncated_equals_shorter_training(corpus):
    long = LM.BPE().train(corpus, 80)
    short = LM.BPE().train(corpus, 30)
    cut = long.truncated(30)
    assert cut.merges == short.merges and cut.tokens == short.tokens
    s = corpus[:3000]
    assert cut.encode(s) == short.encode(s)
    with pytest.raises(ValueError, match="num_merges"):
        long.truncated(81)


# --- decoding ----------------------------------------------------------------

def _nucleus_oracle(logits: np.ndarray, p: float) -> np.ndarray:
    keep = np.zeros_like(logits, dtype=bool)
    for i, row in enumerate(logits):
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        order = np.argsort(-probs, kind="stable")
        total = 0.0
        for j in order:                          # add tokens until mass >= p
            keep[i, j] = True
            total += probs[j]
            if total >= p:
                break
    return keep


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 1.0])
def test_top_p_filter_against_oracle(p):
    logits = torch.randn(16, 30, generator=torch_generator(0), dtype=torch.float64)
    kept = torch.isfinite(LM.top_p_filter(logits, p)).numpy()
    assert (kept == _nucleus_oracle(logits.numpy(), p)).all()
    assert kept.sum(1).min() >= 1
    with pytest.raises(ValueError, match="p must lie"):
        LM.top_p_filter(logits, 0.0)


def test_top_k_filter_keeps_k():
    logits = torch.randn(5, 20, generator=torch_generator(1))
    assert (torch.isfinite(LM.top_k_filter(logits, 4)).sum(1) == 4).all()


def test_distinct_n_hand_example():
    assert LM.distinct_n(["abab"], 2) == pytest.approx(2 / 3)
    assert LM.distinct_n(["abc", "abd"], 1) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="no 3-gram"):
        LM.distinct_n(["ab"], 3)


def _tiny_gpt(V=12, context=16, seed=0):
    cfg = transformer.GPTConfig(vocab_size=V, context=context, n_layer=2, n_head=2,
                                d_model=16, positions="rotary")
    return transformer.GPT(cfg, generator=torch_generator(seed))


def test_decode_greedy_matches_generate_and_sampling_is_seeded():
    gpt = _tiny_gpt()
    idx = torch.randint(0, 12, (3, 5), generator=torch_generator(2))
    ours = LM.decode(gpt, idx, 20, temperature=0.0)          # slides the window
    ref = transformer.generate(gpt, idx, 20, temperature=0.0, use_cache=False)
    assert torch.equal(ours, ref)
    a = LM.decode(gpt, idx, 8, top_p=0.8, generator=torch_generator(3))
    b = LM.decode(gpt, idx, 8, top_p=0.8, generator=torch_generator(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="temperature"):
        LM.decode(gpt, idx, 3, temperature=-1.0)


# --- finetuning and LoRA -----------------------------------------------------

def test_instruction_set_is_correct_and_distinct():
    exs = LM.instruction_set(300, seed=1)
    assert len(set(exs)) == 300
    for e in exs:
        a = e.target[:-1]
        if e.command == "reverse":
            assert a[::-1] == e.word
        else:
            assert list(a) == sorted(e.word)
    with pytest.raises(ValueError, match="command"):
        LM.answer("shout", "abc")


def test_encode_examples_masks_the_prompt():
    vocab = CharVocab(tuple(sorted(set(string.ascii_lowercase + " :->\n"))))
    exs = [LM.Example("reverse", "abc"), LM.Example("sort", "dcab")]
    X, y = LM.encode_examples(exs, vocab)
    for row, (e, xr) in enumerate(zip(exs, X)):
        scored = y[row][y[row] != LM.IGNORE]
        assert vocab.decode(scored) == e.target
        p = len(e.prompt)
        assert vocab.decode(xr[:p]) == e.prompt       # inputs are the prompt...
        assert (y[row, :p - 1] == LM.IGNORE).all()   # ...and are not scored


def test_exact_match_and_char_accuracy():
    y = torch.tensor([[LM.IGNORE, 1, 2], [LM.IGNORE, 3, 3]])
    logits = torch.zeros(2, 3, 5)
    logits[0, 1, 1] = logits[0, 2, 2] = 1.0      # row 0 right
    logits[1, 1, 3] = logits[1, 2, 0] = 1.0      # row 1 half right
    assert LM.exact_match(logits, y) == pytest.approx(0.5)
    assert LM.char_accuracy(logits, y) == pytest.approx(0.75)


def test_lora_gpt_exact_at_init_low_rank_and_parameter_count():
    gpt = _tiny_gpt(V=20, context=12)
    x = torch.randint(0, 20, (4, 12), generator=torch_generator(5))
    lora = LM.add_lora_gpt(gpt, 2, alpha=4.0, generator=torch_generator(6))
    with torch.no_grad():
        assert torch.equal(lora(x), gpt(x))                 # B = 0 at start
    layers = [m for m in lora.modules() if isinstance(m, LoRALinear)]
    assert len(layers) == 4 * gpt.config.n_layer
    d = gpt.config.d_model
    assert LM.trainable_parameters(lora) == 2 * 2 * (4 * d + 2 * d + 5 * d + 5 * d)
    opt = torch.optim.Adam([p for p in lora.parameters() if p.requires_grad], 1e-2)
    y = torch.randint(0, 20, (4, 12), generator=torch_generator(7))
    for _ in range(5):
        loss = LM.masked_loss(lora(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m in layers:
        dw = m.scaling * m.B.detach().double() @ m.A.detach().double()
        assert dw.abs().max() > 0
        assert torch.linalg.matrix_rank(dw) <= 2
    base_params = dict(gpt.named_parameters())
    for name, p in lora.named_parameters():      # the base is untouched
        if not p.requires_grad and name.replace(".base", "") in base_params:
            assert torch.equal(p, base_params[name.replace(".base", "")])
    merged = LM.merge_lora_gpt(lora)
    with torch.no_grad():
        assert torch.allclose(merged(x), lora(x), atol=1e-5)


def test_teacher_forced_exact_match_is_greedy_exact_match():
    vocab = CharVocab(tuple(sorted(set(string.ascii_lowercase[:8] + " :->\n"
                                       + "revsot"))))
    exs = [e for e in LM.instruction_set(40, seed=3) if len(e.word) == 3
           and e.command == "sort"]
    cfg = transformer.GPTConfig(len(vocab), 24, n_layer=1, n_head=2, d_model=16)
    gpt = transformer.GPT(cfg, generator=torch_generator(8))
    X, y = LM.encode_examples(exs, vocab)
    opt = torch.optim.Adam(gpt.parameters(), 1e-2)
    fit(gpt, LM.masked_loss, opt, (X, y), epochs=40)         # partly learned
    gpt.eval()
    with torch.no_grad():
        tf = ((gpt(X).argmax(-1) == y) | (y == LM.IGNORE)).all(1)
    idx = torch.stack([vocab.encode(e.prompt) for e in exs])
    out = LM.decode(gpt, idx, 4, temperature=0.0)
    greedy = [vocab.decode(o[idx.shape[1]:]) == e.target for o, e in zip(out, exs)]
    assert tf.tolist() == greedy


# --- preference optimization -------------------------------------------------

def test_rlhf_optimum_closed_form():
    g = torch_generator(9)
    K, beta = 6, 0.7
    reward = torch.randn(K, generator=g, dtype=torch.float64)
    pi_ref = torch.softmax(torch.randn(K, generator=g, dtype=torch.float64), 0)
    star = LM.rlhf_optimal_policy(pi_ref, reward, beta)
    best = beta * math.log((pi_ref * torch.exp(reward / beta)).sum().item())
    assert LM.rlhf_objective(star, pi_ref, reward, beta) == pytest.approx(best)
    for _ in range(200):
        pi = torch.softmax(3 * torch.randn(K, generator=g, dtype=torch.float64), 0)
        assert LM.rlhf_objective(pi, pi_ref, reward, beta) < best
    # the identity of the proof: objective = beta log Z - beta KL(pi || pi*)
    pi = torch.softmax(torch.randn(K, generator=g, dtype=torch.float64), 0)
    kl = (pi * (pi / star).log()).sum().item()
    value = LM.rlhf_objective(pi, pi_ref, reward, beta)
    assert value == pytest.approx(best - beta * kl)


def test_dpo_loss_value_and_gradient_against_float64():
    g = torch_generator(10)
    lw, ll, rw, rl = (torch.randn(7, generator=g, dtype=torch.float64)
                      for _ in range(4))
    lw.requires_grad_(True)
    beta = 0.3
    loss = LM.dpo_loss(lw, ll, rw, rl, beta)
    m = beta * ((lw - rw) - (ll - rl))
    ref = torch.log1p(torch.exp(-m)).mean()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    loss.backward()
    expected = -beta * torch.sigmoid(-m.detach()) / 7      # exercise ex-...-grad
    assert torch.allclose(lw.grad, expected, rtol=1e-10)


def test_bradley_terry_pairs_follow_the_model():
    reward = torch.tensor([0.0, 1.0])
    pi_ref = torch.tensor([0.5, 0.5])
    w, l_ = LM.bradley_terry_pairs(reward, pi_ref, 20_000,
                                   generator=torch_generator(11))
    assert (w != l_).all()
    frac = (w == 1).float().mean().item()
    assert abs(frac - torch.sigmoid(torch.tensor(1.0)).item()) < 0.015


def test_tabular_dpo_recovers_optimal_policy():
    g = torch_generator(12)
    K, beta = 5, 0.5
    reward = torch.randn(K, generator=g)
    pi_ref = torch.softmax(0.5 * torch.randn(K, generator=g), 0)
    star = LM.rlhf_optimal_policy(pi_ref, reward, beta)
    w, l_ = LM.bradley_terry_pairs(reward, pi_ref, 30_000,
                                   generator=torch_generator(13))
    tv = 0.5 * (LM.fit_tabular_dpo(w, l_, pi_ref, beta) - star).abs().sum().item()
    tv_pft = 0.5 * (LM.preferred_ft_policy(w, K) - star).abs().sum().item()
    assert tv < 0.03 and tv_pft > 3 * tv


def test_train_dpo_widens_the_margin():
    vocab = CharVocab(tuple(sorted(set(string.ascii_lowercase[:8] + " :->\n"
                                       + "revsot"))))
    exs = [e for e in LM.instruction_set(60, seed=4)
           if LM.answer(e.command, e.word) != e.word]
    cfg = transformer.GPTConfig(len(vocab), 24, n_layer=1, n_head=2, d_model=16)
    gpt = transformer.GPT(cfg, generator=torch_generator(14))
    ch = LM.encode_examples(exs, vocab)
    rj = LM.encode_examples(exs, vocab, [e.word + "\n" for e in exs])
    with torch.no_grad():
        m0 = (LM.answer_log_probs(gpt, *ch) - LM.answer_log_probs(gpt, *rj)).mean()
    pol, losses = LM.train_dpo(gpt, ch, rj, beta=0.5, steps=40, batch_size=16,
                               lr=3e-3, generator=torch_generator(15))
    with torch.no_grad():
        m1 = (LM.answer_log_probs(pol, *ch) - LM.answer_log_probs(pol, *rj)).mean()
    assert m1 > m0 + 1.0
    assert np.mean(losses[-5:]) < losses[0]
    fresh = transformer.GPT(cfg, generator=torch_generator(14))
    assert all(torch.equal(a, b)                 # the reference is not modified
               for a, b in zip(gpt.parameters(), fresh.parameters()))


# --- the chapter's claims at small size --------------------------------------

def _pretrained_small() -> tuple[transformer.GPT, CharVocab]:
    """The chapter's pretraining at test size: a 2-layer GPT, 200 steps on the
    python-docs corpus less its last 50,000 characters."""
    text = text_corpus("python-docs")
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)[:-50_000]
    cfg = transformer.GPTConfig(len(vocab), 32, n_layer=2, n_head=4, d_model=48,
                                positions="rotary")
    g = torch_generator(0)
    gpt = transformer.GPT(cfg, generator=g)
    transformer.train_lm(gpt, ids, steps=200, batch_size=32, lr=1e-2, generator=g)
    return gpt, vocab


@pytest.mark.slow
def test_finetuning_teaches_the_task_and_contamination_inflates():
    gpt, vocab = _pretrained_small()
    exs = LM.instruction_set(1000, seed=5)
    train, leak, clean = exs[:700], exs[700:800], exs[800:]
    X, y = LM.encode_examples(train + 4 * leak, vocab)
    Xc, yc = LM.encode_examples(clean, vocab)
    Xl, yl = LM.encode_examples(leak, vocab)
    with torch.no_grad():
        assert LM.exact_match(gpt(Xc), yc) < 0.02         # not solved before
    opt = torch.optim.Adam(gpt.parameters(), 3e-3)
    fit(gpt, LM.masked_loss, opt, (X, y), epochs=10, batch_size=32,
        generator=torch_generator(1))
    gpt.eval()
    with torch.no_grad():
        em_clean, em_leak = LM.exact_match(gpt(Xc), yc), LM.exact_match(gpt(Xl), yl)
        chars = LM.char_accuracy(gpt(Xc), yc)
    assert em_clean > 0.2
    assert em_leak > em_clean + 0.1
    assert chars > em_clean + 0.1


@pytest.mark.slow
def test_lora_catches_up_with_more_steps():
    """LoRA's deficit at a fixed budget is one of speed: with three times the
    epochs, rank 8 passes what full finetuning reached at the short budget."""
    gpt, vocab = _pretrained_small()
    exs = LM.instruction_set(1000, seed=5)
    X, y = LM.encode_examples(exs[:800], vocab)
    Xc, yc = LM.encode_examples(exs[800:], vocab)
    em = {}
    for name, m in (("full", copy.deepcopy(gpt)),
                    ("lora", LM.add_lora_gpt(gpt, 8, 16, generator=torch_generator(1)))):
        opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], 3e-3)
        em[name] = []
        for epochs in (10, 20):                   # 10, then 20 more: 30 in all
            fit(m, LM.masked_loss, opt, (X, y), epochs=epochs, batch_size=32,
                generator=torch_generator(2))
            m.eval()
            with torch.no_grad():
                em[name].append(LM.exact_match(m(Xc), yc))
            m.train()
    assert em["lora"][0] < em["full"][0]                 # slower at the budget
    assert em["lora"][1] > em["full"][0]                 # not capped below it
    assert em["lora"][1] > em["lora"][0] + 0.15          # and still learning
