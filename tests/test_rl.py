"""Tests of dlbook.rl (reinforcement learning chapter): dynamic programming
against independent solves, Q-learning against value iteration, the
policy-gradient theorem against autograd, REINFORCE against the exact
gradient, and the chapter's DQN claim at small size."""
import itertools

import numpy as np
import pytest
import torch

from dlbook import rl

torch.set_num_threads(1)
GAMMA = 0.9


def brute_force_optimum(P, R, gamma):
    """V* as the pointwise max of V^pi over all A^S deterministic policies."""
    A, S, _ = P.shape
    best = np.full(S, -np.inf)
    for actions in itertools.product(range(A), repeat=S):
        pi = np.eye(A)[list(actions)]
        best = np.maximum(best, rl.policy_evaluation(P, R, gamma, pi))
    return best


def test_policy_evaluation_matches_iterated_expectation():
    P, R = rl.random_mdp(5, 3, seed=1)
    pi = np.random.default_rng(0).dirichlet(np.ones(3), size=5)
    V = np.zeros(5)
    P_pi, r_pi = np.einsum("sa,ast->st", pi, P), np.einsum("sa,as->s", pi, R)
    for _ in range(2000):  # fixed point of the Bellman expectation operator
        V = r_pi + GAMMA * P_pi @ V
    np.testing.assert_allclose(rl.policy_evaluation(P, R, GAMMA, pi), V,
                               atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_value_iteration_matches_brute_force(seed):
    P, R = rl.random_mdp(4, 3, seed=seed)
    V, Q, _ = rl.value_iteration(P, R, GAMMA, tol=1e-11)
    np.testing.assert_allclose(V, brute_force_optimum(P, R, GAMMA), atol=1e-9)
    np.testing.assert_allclose(Q.max(1), V, atol=1e-9)
    _, V_pi, _ = rl.policy_iteration(P, R, GAMMA)
    np.testing.assert_allclose(V_pi, brute_force_optimum(P, R, GAMMA), atol=1e-9)


def test_value_iteration_contraction_rate():
    P, R = rl.random_mdp(6, 2, seed=3)
    V_star, _, iterates = rl.value_iteration(P, R, GAMMA, tol=1e-12)
    err0 = np.abs(iterates[0] - V_star).max()
    for k, V in enumerate(iterates[:60]):
        assert np.abs(V - V_star).max() <= GAMMA ** k * err0 + 1e-9


def test_policy_iteration_agrees_and_terminates():
    gw = rl.gridworld()
    V, Q, _ = rl.value_iteration(gw.P, gw.R, GAMMA)
    pi, V_pi, iters = rl.policy_iteration(gw.P, gw.R, GAMMA)
    np.testing.assert_allclose(V_pi, V, atol=1e-8)
    assert iters <= 4 ** gw.num_states
    assert iters < 10, "policy iteration stops in a handful of steps"


def test_gridworld_is_a_valid_stochastic_mdp():
    gw = rl.gridworld(slip=0.3)
    rl.check_mdp(gw.P, gw.R, GAMMA)
    assert (gw.P[:, 0].max(-1) < 1.0).all(), "moves from the start are random"


def test_bad_input_fails_early():
    P, R = rl.random_mdp(3, 2)
    with pytest.raises(ValueError, match="gamma"):
        rl.value_iteration(P, R, 1.0)
    with pytest.raises(ValueError, match="R must have shape"):
        rl.value_iteration(P, R.T, 0.5)
    with pytest.raises(ValueError, match="omega"):
        rl.q_learning(P, R, 0.5, 10, omega=0.5)


def test_q_learning_converges_to_q_star():
    gw = rl.gridworld()
    _, Q_star, _ = rl.value_iteration(gw.P, gw.R, GAMMA)
    Q, counts, errors = rl.q_learning(gw.P, gw.R, GAMMA, 150_000,
                                      terminal=gw.terminal, epsilon=1.0,
                                      Q_star=Q_star, log_every=15_000)
    assert errors[-1] < 0.06, errors
    assert errors[-1] < errors[0] / 2
    V_greedy = rl.policy_evaluation(gw.P, gw.R, GAMMA, rl.greedy(Q))
    V_star = Q_star.max(1)
    assert np.abs(V_greedy - V_star).max() < 0.01


def exact_objective_torch(P, R, gamma, mu0, theta):
    """J(theta) in float64 torch, for autograd (independent of pg.py)."""
    P, R, mu0 = (torch.as_tensor(x, dtype=torch.float64) for x in (P, R, mu0))
    pi = torch.softmax(theta, dim=1)
    P_pi = torch.einsum("sa,ast->st", pi, P)
    r_pi = torch.einsum("sa,as->s", pi, R)
    V = torch.linalg.solve(torch.eye(len(mu0), dtype=torch.float64)
                           - gamma * P_pi, r_pi)
    return mu0 @ V


def test_policy_gradient_theorem_matches_autograd():
    gw = rl.gridworld()
    theta = np.random.default_rng(0).standard_normal((17, 4))
    t = torch.tensor(theta, requires_grad=True)
    exact_objective_torch(gw.P, gw.R, GAMMA, gw.mu0, t).backward()
    np.testing.assert_allclose(
        rl.exact_gradient(gw.P, gw.R, GAMMA, gw.mu0, theta), t.grad.numpy(),
        atol=1e-10)
    assert abs(rl.objective(gw.P, gw.R, GAMMA, gw.mu0, theta)
               - exact_objective_torch(gw.P, gw.R, GAMMA, gw.mu0, t).item()) < 1e-10


@pytest.mark.parametrize("use_baseline", [False, True])
def test_reinforce_is_unbiased(use_baseline):
    gw = rl.gridworld()
    theta = 0.5 * np.random.default_rng(1).standard_normal((17, 4))
    pi = rl.softmax_policy(theta)
    b = rl.policy_evaluation(gw.P, gw.R, GAMMA, pi) if use_baseline else None
    n = 6000
    g = rl.reinforce_gradients(gw.P, gw.R, GAMMA, gw.mu0, gw.terminal, theta,
                               n, baseline=b, seed=2)
    exact = rl.exact_gradient(gw.P, gw.R, GAMMA, gw.mu0, theta)
    se = g.std(0) / np.sqrt(n) + 1e-12
    z = np.abs(g.mean(0) - exact) / se
    assert z.max() < 4.5, z.max()  # 68 coordinates, 4.5 standard errors


def test_state_value_baseline_reduces_variance():
    gw = rl.gridworld()
    theta = 0.5 * np.random.default_rng(1).standard_normal((17, 4))
    V_pi = rl.policy_evaluation(gw.P, gw.R, GAMMA, rl.softmax_policy(theta))
    kw = dict(seed=3)
    g0 = rl.reinforce_gradients(gw.P, gw.R, GAMMA, gw.mu0, gw.terminal, theta,
                                3000, **kw)
    gb = rl.reinforce_gradients(gw.P, gw.R, GAMMA, gw.mu0, gw.terminal, theta,
                                3000, baseline=V_pi, **kw)
    assert gb.var(0).sum() < 0.5 * g0.var(0).sum()


def test_bandit_variance_formula_and_optimal_baseline():
    means = np.array([1.0, 0.2, -0.5])
    theta = np.array([0.3, -0.2, 0.1])
    P, R, mu0, term = rl.bandit(means)
    b = np.array([0.0, 0.5, 1.0])
    logits = theta[None].repeat(2, 0)
    g = np.stack([rl.reinforce_gradients(P, R, 0.5, mu0, term, logits, 40_000,
                                         horizon=1, baseline=[bi, 0.0],
                                         seed=4)[:, 0] for bi in b])
    measured = g.var(1).sum(-1)
    np.testing.assert_allclose(measured, rl.bandit_variance(theta, means, b),
                               rtol=0.05)
    grid = np.linspace(-2, 2, 401)
    v = rl.bandit_variance(theta, means, grid)
    assert v.min() <= rl.bandit_variance(theta, means, np.array([0.0]))[0]


def test_actor_critic_and_reinforce_improve():
    gw = rl.gridworld()
    J_star = float(gw.mu0 @ rl.value_iteration(gw.P, gw.R, GAMMA)[0])
    _, h_ac = rl.actor_critic(gw.P, gw.R, GAMMA, gw.mu0, gw.terminal, 200,
                              lr=1.0)
    _, h_rf = rl.reinforce(gw.P, gw.R, GAMMA, gw.mu0, gw.terminal, 200,
                           lr=1.0)
    for h in (h_ac, h_rf):
        assert h[-1] > h[0] + 0.3 and h[-1] <= J_star + 1e-9


def test_reinforce_without_baseline_plateau_is_escaped():
    """The chapter's slow plain-REINFORCE seed: saturated at the start cell,
    with a tiny exact gradient, and it escapes when the run is continued."""
    gw = rl.gridworld()
    J_star = float(gw.mu0 @ rl.value_iteration(gw.P, gw.R, GAMMA)[0])
    theta, _ = rl.reinforce(gw.P, gw.R, GAMMA, gw.mu0, gw.terminal, 400,
                            lr=1.0, baseline=False, seed=2, log_every=400)
    pi = rl.softmax_policy(theta)
    assert pi[0, 0] + pi[0, 3] > 0.9  # up or left: into a wall
    assert np.abs(rl.exact_gradient(gw.P, gw.R, GAMMA, gw.mu0, theta)[0]).max() < 0.01
    _, h = rl.reinforce(gw.P, gw.R, GAMMA, gw.mu0, gw.terminal, 1200, lr=1.0,
                        baseline=False, seed=2, log_every=100)
    assert h[3] < 0 < 0.6 * J_star < h[-1]


def test_replay_buffer_ring_and_sampling():
    buf = rl.ReplayBuffer(3, 2, generator=torch.Generator().manual_seed(0))
    for i in range(5):
        buf.add([i, i], i % 2, float(i), [i + 1, i + 1], i == 4)
    assert buf.size == 3
    assert sorted(buf.rewards.tolist()) == [2.0, 3.0, 4.0]
    obs, a, r, nxt, done = buf.sample(8)
    assert obs.shape == (8, 2) and torch.allclose(nxt - obs, torch.ones(8, 2))
    assert ((done == 1) == (r == 4.0)).all()


def test_dqn_loss_target_has_no_gradient():
    net = torch.nn.Linear(2, 2)
    batch = (torch.ones(4, 2), torch.zeros(4, dtype=torch.long),
             torch.ones(4), torch.ones(4, 2), torch.zeros(4))
    loss = rl.dqn_loss(net, net, batch, 0.9)
    loss.backward()
    q = net(torch.ones(1, 2))[0]
    y = 1 + 0.9 * q.max()
    # gradient of the Huber loss of (q_0 - y) with y held fixed
    diff = (q[0] - y).item()
    expected = np.clip(diff, -1, 1) * np.array([1.0, 1.0])
    np.testing.assert_allclose(net.weight.grad[0].numpy(), expected, atol=1e-6)


@pytest.mark.slow
def test_dqn_target_network_claim_small():
    from dataclasses import replace
    cfg = rl.DQNConfig(steps=3000, hidden=32, lr=3e-3, train_every=2)
    with_t = rl.dqn(cfg, seed=0)
    without = rl.dqn(replace(cfg, target_update=None), seed=0)
    bound = 1 / (1 - cfg.gamma)  # CartPole pays 1 a step
    assert max(with_t.q_probe) < bound
    assert max(without.q_probe) > bound
    assert np.mean(with_t.returns[-5:]) > np.mean(without.returns[-5:])


def test_occupancy_and_stopping_rule():
    P, R = rl.random_mdp(5, 3, seed=7)
    mu0 = np.full(5, 0.2)
    pi = np.random.default_rng(1).dirichlet(np.ones(3), size=5)
    d = rl.pg.occupancy(P, GAMMA, mu0, pi)
    assert abs(d.sum() - 1 / (1 - GAMMA)) < 1e-9 and (d > 0).all()
    # value iteration's stopping rule: the greedy policy is tol-optimal
    tol = 1e-2
    V_star = rl.value_iteration(P, R, GAMMA, tol=1e-12)[0]
    _, Q, iterates = rl.value_iteration(P, R, GAMMA, tol=tol)
    V_greedy = rl.policy_evaluation(P, R, GAMMA, rl.greedy(Q))
    assert np.abs(V_greedy - V_star).max() <= tol
    assert len(iterates) < len(rl.value_iteration(P, R, GAMMA, tol=1e-12)[2])


def test_policy_shape_is_checked():
    gw = rl.gridworld()
    with pytest.raises(ValueError, match="theta"):
        rl.exact_gradient(gw.P, gw.R, GAMMA, gw.mu0, np.zeros((3, 4)))
