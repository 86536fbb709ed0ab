"""Tests of dlbook.scaling: power-law fits, compute-optimal allocation, the
random-feature scaling study, data-parallel training and memory accounting."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import wishart

from dlbook import scaling as S

torch.set_num_threads(1)


# ---------------------------------------------------------------- power laws
@pytest.mark.slow
def test_fit_power_law_recovers_planted_exponent():
    x = np.logspace(1, 4, 24)
    a, alpha, e = 4.0, 0.6, 0.05
    covered, errors = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        y = S.power_law(x, a, alpha, e) * np.exp(0.02 * rng.standard_normal(24))
        fit = S.fit_power_law(x, y, n_boot=100, level=0.9, seed=seed)
        lo, hi = fit.intervals["alpha"]
        covered.append(lo <= alpha <= hi)
        errors.append(abs(fit.alpha - alpha))
        assert hi - lo < 0.2
    # a 90% percentile interval from 24 points: coverage near nominal
    assert np.mean(covered) >= 0.65
    assert np.median(errors) < 0.03


def test_no_offset_fit_is_biased_when_there_is_a_floor():
    x = np.logspace(1, 4, 24)
    y = S.power_law(x, 4.0, 0.6, 0.05)
    pure = S.fit_power_law(x, y, offset=False, n_boot=0)
    full = S.fit_power_law(x, y, n_boot=0)
    assert pure.alpha < 0.6 - 0.15          # the floor flattens the log-log line
    assert abs(full.alpha - 0.6) < 1e-4     # noiseless: exact recovery


def test_local_exponent_of_pure_power_law_is_constant():
    x = np.logspace(0, 3, 10)
    _, s = S.local_exponent(x, 3 * x ** -0.7)
    np.testing.assert_allclose(s, 0.7, rtol=1e-10)


def test_fit_power_law_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        S.fit_power_law([1, 2, 3, 4], [1, -1, 1, 1])
    with pytest.raises(ValueError, match="equal length"):
        S.fit_power_law([1, 2, 3, 4], [1, 2, 3])
    with pytest.raises(ValueError, match="level"):
        S.fit_power_law([1, 2, 3, 4], [4, 3, 2, 1], level=1.5)


def test_fit_scaling_law_recovers_planted_constants():
    Ns, Ds = np.logspace(6, 9, 7), np.logspace(8, 11, 7)
    N, D = (v.ravel() for v in np.meshgrid(Ns, Ds))
    truth = S.ChinchillaLaw(1.8, 480.0, 2000.0, 0.35, 0.37)
    L = truth.loss(N, D) * np.exp(0.002 * np.random.default_rng(0)
                                  .standard_normal(N.size))
    fit = S.fit_scaling_law(N, D, L)
    assert abs(fit.alpha - 0.35) < 0.03 and abs(fit.beta - 0.37) < 0.03
    assert abs(fit.E - 1.8) < 0.05


# -------------------------------------------------------- compute-optimal
@pytest.mark.parametrize("law", [S.HOFFMANN2022, S.BESIROGLU2024,
                                 S.ChinchillaLaw(2.0, 10.0, 50.0, 0.5, 0.2)])
@pytest.mark.parametrize("C", [1e18, 5.88e23, 1e26])
def test_closed_form_matches_scipy(law, C):
    N, D = S.compute_optimal(law, C)
    Nn, Dn = S.compute_optimal_numeric(law, C)
    np.testing.assert_allclose([N, D], [Nn, Dn], rtol=1e-5)
    np.testing.assert_allclose(6 * N * D, C, rtol=1e-12)
    # a 10% move along the constraint raises the loss
    for f in (0.9, 1.1):
        assert law.loss(N * f, D / f) > law.loss(N, D)


def test_tokens_per_parameter_constant_iff_equal_exponents():
    eq = S.ChinchillaLaw(1.0, 400.0, 400.0, 0.3, 0.3)
    r = S.tokens_per_parameter(eq, np.array([1e18, 1e22, 1e26]))
    np.testing.assert_allclose(r, r[0], rtol=1e-12)
    r = S.tokens_per_parameter(S.HOFFMANN2022, np.array([1e18, 1e26]))
    assert r[1] > r[0]                      # beta < alpha: data grow faster


def test_published_constants_at_chinchilla_budget():
    C = 6 * 70e9 * 1.4e12
    N, D = S.compute_optimal(S.BESIROGLU2024, C)
    assert 15 < D / N < 25                  # the replication: ~20 tokens/param
    assert 50e9 < N < 100e9
    N, D = S.compute_optimal(S.HOFFMANN2022, C)
    assert D / N > 60                       # the printed constants: far more
    assert S.kaplan_optimal_n(C) > 5 * 70e9  # Kaplan: a much larger model


def test_allocation_rejects_bad_budget():
    with pytest.raises(ValueError, match="positive"):
        S.compute_optimal(S.HOFFMANN2022, -1.0)
    with pytest.raises(ValueError, match="positive"):
        S.ChinchillaLaw(1.0, -1.0, 1.0, 0.3, 0.3)


# ------------------------------------------------------------ the study
def test_wishart_bartlett_matches_scipy_moments():
    rng = np.random.default_rng(0)
    scale = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 0.5]])
    draws = np.array([S.wishart_bartlett(scale, 7, rng) for _ in range(4000)])
    ref = wishart(df=7, scale=scale).rvs(4000, random_state=1)
    np.testing.assert_allclose(draws.mean(0), 7 * scale, atol=0.25)
    np.testing.assert_allclose(draws.var(0), ref.var(0), rtol=0.15, atol=0.3)


def test_wishart_shortcut_matches_explicit_samples():
    task = S.TeacherTask(M=256)
    fast = [S.random_feature_run(task, 24, 96, seed=s) for s in range(120)]
    slow = [S.random_feature_run_sampled(task, 24, 96, seed=s)
            for s in range(120)]
    se = np.hypot(np.std(fast), np.std(slow)) / np.sqrt(120)
    assert abs(np.mean(fast) - np.mean(slow)) < 4 * se


def test_study_law_predicts_held_out_run_and_breaks_at_interpolation():
    task = S.TeacherTask(M=512)
    Ns, Ds = [16, 32, 64, 128], [2 ** k for k in range(9, 16)]
    L = S.run_grid(task, Ns, Ds, seeds=2)
    N, D = (v.ravel() for v in np.meshgrid(Ns, Ds, indexing="ij"))
    law = S.fit_scaling_law(N, D, L.ravel())
    actual = np.mean([S.random_feature_run(task, 256, 2 ** 17, seed=s)
                      for s in range(2)])
    assert abs(law(256, 2 ** 17) - actual) / actual < 0.1
    assert law.E < task.sigma ** 2 * 1.5       # floor near the noise level
    # at D = 512, inside the fitted range, push N to D: the interpolation
    # peak (double descent) that the law cannot describe
    peak = np.mean([S.random_feature_run_sampled(task, 512, 512, seed=s)
                    for s in range(2)])
    assert peak > 5 * law(512, 512)


def test_study_rejects_bad_sizes():
    with pytest.raises(ValueError, match="D > N"):
        S.random_feature_run(S.TeacherTask(M=64), 32, 32)


# --------------------------------------------------------- data parallel
def test_ddp_two_gloo_processes_match_single_process():
    cfg = S.DDPConfig(steps=10, allreduce_sizes=(1024, 65536),
                      allreduce_reps=3)
    out = S.run_ddp(cfg, world_size=2)
    ref = S.train_single(cfg)
    init = S.make_model(cfg).state_dict()
    for k in ref:
        torch.testing.assert_close(out["state"][k], ref[k], atol=1e-5,
                                   rtol=1e-5)
    moved = max((ref[k] - init[k]).abs().max().item() for k in ref)
    assert moved > 1e-2                     # the weights really trained
    assert len(out["allreduce_s"]) == 2 and min(out["allreduce_s"]) > 0


def test_ddp_rejects_uneven_shards():
    with pytest.raises(ValueError, match="divisible"):
        S.ddp._train_ddp(S.DDPConfig(batch=63), 0, 2)


def test_ring_model_and_alpha_beta_fit():
    assert S.ring_allreduce_bytes(1000, 1) == 0
    np.testing.assert_allclose(S.ring_allreduce_bytes(1000, 4), 1500)
    n = np.array([1e3, 1e5, 1e6, 1e7])
    t = 2 * 3 * 2e-5 + 2 * 3 / 4 * n * 1e-9
    t0, tau = S.fit_ring_model(n, t, 4)
    np.testing.assert_allclose([t0, tau], [2e-5, 1e-9], rtol=1e-8)
    with pytest.raises(ValueError, match="positive time"):
        S.fit_ring_model(n, -t, 4)


@pytest.mark.slow
def test_torchrun_launch_matches_single_process(tmp_path):
    out = tmp_path / "w.pt"
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([str(torchrun), "--standalone", "--nproc-per-node=2", "-m",
                    "dlbook.scaling.ddp", "--steps", "5", "--out", str(out)],
                   check=True, env=env, capture_output=True, timeout=120)
    got = torch.load(out)["state"]
    ref = S.train_single(S.DDPConfig(steps=5))
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------- memory
def test_zero_paper_example():
    # Rajbhandari et al. (2020), Figure 1: 7.5B parameters, 64 GPUs, K = 12
    gb = [S.model_state_bytes(7.5e9, dp=64, zero=z) / 1e9 for z in range(4)]
    np.testing.assert_allclose(gb, [120, 31.4, 16.6, 1.9], atol=0.05)


def test_memory_splits_and_validation():
    full = S.model_state_bytes(70e9)
    np.testing.assert_allclose(S.model_state_bytes(70e9, tp=8, pp=4), full / 32)
    np.testing.assert_allclose(S.model_state_bytes(70e9, dp=8), full)
    np.testing.assert_allclose(S.model_state_bytes(70e9, dp=8, zero=3), full / 8)
    with pytest.raises(ValueError, match="zero"):
        S.model_state_bytes(1e9, zero=4)
    t = S.memory_table({"m": 1e9}, {"dp": {}, "fsdp": {"dp": 4, "zero": 3}})
    np.testing.assert_allclose([t["dp"]["m"], t["fsdp"]["m"]], [16, 4])


def test_run_ddp_raises_instead_of_hanging_when_a_worker_fails():
    # odd batch: every worker raises after joining the group; run_ddp must
    # surface the error promptly and leave no process behind
    with pytest.raises(Exception, match="divisible"):
        S.run_ddp(S.DDPConfig(batch=63, steps=1), world_size=2,
                  start_method="fork", timeout_s=60)


def test_saved_activation_bytes_of_an_mlp_matches_hand_count():
    from dlbook.nn import mlp
    B, d, h = 16, 8, 32
    model = mlp([d, h, 1], generator=torch.Generator().manual_seed(0))
    x = torch.randn(B, d)
    # Linear 1 saves its input (B, d); ReLU saves its output (B, h), which is
    # also the input Linear 2 saves (one storage); weights are not counted
    assert S.saved_activation_bytes(model, x) == 4 * (B * d + B * h)


def test_transformer_activation_count_is_exact_in_context_and_batch():
    from dlbook.transformer import GPT, GPTConfig

    def per_layer(T, B):
        b = []
        for L in (1, 2):
            m = GPT(GPTConfig(vocab_size=32, context=128, n_layer=L, n_head=2,
                              d_model=32), generator=torch.Generator().manual_seed(0))
            b.append(S.saved_activation_bytes(m, torch.zeros(B, T, dtype=torch.long)))
        return (b[1] - b[0]) / 4 / (B * T * 32)
    v = {T: per_layer(T, 2) for T in (32, 64, 96)}
    c_att = (v[64] - v[32]) / (2 * 32 / 32)
    c_lin = v[32] - c_att * 2 * 32 / 32
    np.testing.assert_allclose(v[96], c_lin + c_att * 2 * 96 / 32, rtol=1e-2)
    np.testing.assert_allclose(per_layer(32, 4), v[32], rtol=1e-2)  # linear in B
    got = S.transformer_activation_bytes(32, 2, 32, 2, 3, c_lin, c_att,
                                         bytes_per_value=4)
    np.testing.assert_allclose(got, 3 * 2 * 32 * 32 * v[32] * 4, rtol=1e-9)
    with pytest.raises(ValueError, match=">= 1"):
        S.transformer_activation_bytes(0, 1, 1, 1, 1, 1.0, 1.0)
