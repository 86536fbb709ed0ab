"""Policy gradients for tabular softmax policies (reinforcement learning
chapter): the exact gradient of the policy-gradient theorem, the REINFORCE
estimator with and without a baseline, and a one-step actor-critic.

A softmax policy has logits ``theta`` of shape (S, A):
``pi(a | s) = exp(theta[s, a]) / sum_b exp(theta[s, b])``. The objective is
``J(theta) = sum_s mu0(s) V^pi(s)`` for a start distribution ``mu0`` (S,).
"""
from __future__ import annotations

import numpy as np

from .mdp import policy_evaluation, q_from_v

__all__ = ["softmax_policy", "objective", "occupancy", "exact_gradient",
           "sample_episodes", "reinforce_gradients", "bandit",
           "bandit_variance", "reinforce", "actor_critic"]


def _check_theta(P: np.ndarray, theta: np.ndarray) -> None:
    if np.shape(theta) != (P.shape[1], P.shape[0]):
        raise ValueError(f"theta must have shape (S, A) = "
                         f"{(P.shape[1], P.shape[0])}, got {np.shape(theta)}")


def softmax_policy(theta: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits (S, A) -> policy (S, A)."""
    z = np.exp(theta - theta.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def objective(P: np.ndarray, R: np.ndarray, gamma: float, mu0: np.ndarray,
              theta: np.ndarray) -> float:
    """``J(theta) = mu0 . V^pi`` computed exactly by a linear solve."""
    return float(mu0 @ policy_evaluation(P, R, gamma, softmax_policy(theta)))


def occupancy(P: np.ndarray, gamma: float, mu0: np.ndarray,
              pi: np.ndarray) -> np.ndarray:
    """Discounted state occupancy ``d(s) = sum_t gamma^t Pr(s_t = s)``,
    that is ``mu0^T (I - gamma P_pi)^{-1}``. Shape (S,); sums to
    ``1 / (1 - gamma)``."""
    P_pi = np.einsum("sa,ast->st", pi, P)
    return np.linalg.solve((np.eye(len(mu0)) - gamma * P_pi).T, mu0)


def exact_gradient(P: np.ndarray, R: np.ndarray, gamma: float,
                   mu0: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``grad J`` by the policy-gradient theorem: for softmax logits,
    ``dJ / dtheta[s, a] = d(s) pi(a|s) (Q(s, a) - V(s))``. Shape (S, A)."""
    _check_theta(P, theta)
    pi = softmax_policy(theta)
    V = policy_evaluation(P, R, gamma, pi)
    Q = q_from_v(P, R, gamma, V)
    return occupancy(P, gamma, mu0, pi)[:, None] * pi * (Q - V[:, None])


def sample_episodes(P: np.ndarray, R: np.ndarray, mu0: np.ndarray,
                    terminal: np.ndarray, pi: np.ndarray, n: int,
                    horizon: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` episodes of at most ``horizon`` steps, simulated in parallel.

    Returns ``(states, actions, rewards, alive)``, each (horizon, n);
    ``alive[t]`` is False once an episode has reached a terminal state (its
    later rewards are zero)."""
    S = len(mu0)
    cum_pi, cum_P = pi.cumsum(1), P.cumsum(-1)
    s = np.minimum((mu0.cumsum()[None] < rng.random((n, 1))).sum(1), S - 1)
    states, actions = np.zeros((horizon, n), int), np.zeros((horizon, n), int)
    rewards, alive = np.zeros((horizon, n)), np.zeros((horizon, n), bool)
    for t in range(horizon):
        live = ~terminal[s]
        a = np.minimum((cum_pi[s] < rng.random((n, 1))).sum(1), pi.shape[1] - 1)
        states[t], actions[t], alive[t] = s, a, live
        rewards[t] = np.where(live, R[a, s], 0.0)
        s2 = (cum_P[a, s] < rng.random((n, 1))).sum(1)
        s = np.where(live, np.minimum(s2, S - 1), s)
    return states, actions, rewards, alive


def reinforce_gradients(P: np.ndarray, R: np.ndarray, gamma: float,
                        mu0: np.ndarray, terminal: np.ndarray,
                        theta: np.ndarray, n: int, *, horizon: int = 60,
                        baseline: np.ndarray | float | None = None,
                        seed: int = 0) -> np.ndarray:
    """``n`` independent REINFORCE estimates of ``grad J``, each from one
    episode: ``sum_t gamma^t grad log pi(a_t|s_t) (G_t - b(s_t))`` with
    ``G_t`` the discounted return from ``t``. ``baseline`` is None, a
    constant, or an array (S,). Shape (n, S, A)."""
    _check_theta(P, theta)
    rng = np.random.default_rng(seed)
    pi = softmax_policy(theta)
    states, actions, rewards, alive = sample_episodes(
        P, R, mu0, terminal, pi, n, horizon, rng)
    S, A = theta.shape
    b = np.zeros(S) + (0.0 if baseline is None else baseline)
    G, grads = np.zeros(n), np.zeros((n, S, A))
    for t in range(horizon - 1, -1, -1):  # returns by backward recursion
        G = rewards[t] + gamma * G
        weight = np.where(alive[t], gamma ** t * (G - b[states[t]]), 0.0)
        score = -pi[states[t]]  # grad log pi(a|s) = e_a - pi(.|s), row s
        score[np.arange(n), actions[t]] += 1.0
        grads[np.arange(n), states[t]] += weight[:, None] * score
    return grads


def bandit(means: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                       np.ndarray]:
    """A multi-armed bandit as a two-state MDP: in state 0 every arm ``a``
    pays ``means[a]`` and leads to the absorbing state 1. Returns
    ``(P, R, mu0, terminal)``."""
    A = len(means)
    P = np.zeros((A, 2, 2))
    P[:, :, 1] = 1.0
    R = np.zeros((A, 2))
    R[:, 0] = means
    return P, R, np.array([1.0, 0.0]), np.array([False, True])


def bandit_variance(theta: np.ndarray, means: np.ndarray,
                    b: np.ndarray) -> np.ndarray:
    """Exact total variance ``E||g_b||^2 - ||grad J||^2`` of the one-step
    REINFORCE estimate ``g_b = grad log pi(a) (r_a - b)`` of a bandit with
    deterministic rewards ``means`` (A,), for each constant baseline in
    ``b`` (K,). Shape (K,)."""
    pi = softmax_policy(theta[None])[0]
    score_sq = ((np.eye(len(pi)) - pi) ** 2).sum(1)  # ||e_a - pi||^2
    grad = pi * (means - pi @ means)
    second = (pi * score_sq * (means[None] - b[:, None]) ** 2).sum(1)
    return second - (grad ** 2).sum()


def reinforce(P: np.ndarray, R: np.ndarray, gamma: float, mu0: np.ndarray,
              terminal: np.ndarray, episodes: int, *, lr: float = 0.5,
              lr_baseline: float = 0.2, baseline: bool = True,
              horizon: int = 60, seed: int = 0, log_every: int = 10
              ) -> tuple[np.ndarray, list[float]]:
    """REINFORCE (Williams 1992), one episode per update, with a learned
    state-value baseline (Monte Carlo regression) if ``baseline``. Returns
    ``(theta, J_history)``, J evaluated exactly every ``log_every``
    episodes."""
    rng = np.random.default_rng(seed)
    A, S, _ = P.shape
    theta, V, history = np.zeros((S, A)), np.zeros(S), []
    for ep in range(episodes):
        pi, V_old = softmax_policy(theta), V.copy()  # baseline fixed per episode
        st, ac, rw, al = sample_episodes(P, R, mu0, terminal, pi, 1, horizon, rng)
        G = 0.0
        for t in range(horizon - 1, -1, -1):
            G = rw[t, 0] + gamma * G
            if not al[t, 0]:
                continue
            s, a = st[t, 0], ac[t, 0]
            delta = G - (V_old[s] if baseline else 0.0)
            V[s] += lr_baseline * (G - V[s])
            score = -pi[s]
            score[a] += 1.0
            theta[s] += lr * gamma ** t * delta * score
        if ep % log_every == 0:
            history.append(objective(P, R, gamma, mu0, theta))
    return theta, history


def actor_critic(P: np.ndarray, R: np.ndarray, gamma: float, mu0: np.ndarray,
                 terminal: np.ndarray, episodes: int, *, lr: float = 0.5,
                 lr_critic: float = 0.2, horizon: int = 60, seed: int = 0,
                 log_every: int = 10) -> tuple[np.ndarray, list[float]]:
    """One-step actor-critic: a TD(0) critic ``V`` and the actor step
    ``theta[s] += lr gamma^t delta_t grad log pi(a_t|s_t)`` with the TD error
    ``delta_t = r_t + gamma V(s_{t+1}) - V(s_t)``. Returns
    ``(theta, J_history)`` as :func:`reinforce` does."""
    rng = np.random.default_rng(seed)
    A, S, _ = P.shape
    theta, V, history = np.zeros((S, A)), np.zeros(S), []
    cum_P, cum_mu = P.cumsum(-1), mu0.cumsum()
    for ep in range(episodes):
        s = min(int(np.searchsorted(cum_mu, rng.random())), S - 1)
        for t in range(horizon):
            if terminal[s]:
                break
            pi_s = softmax_policy(theta[s][None])[0]
            a = min(int(np.searchsorted(pi_s.cumsum(), rng.random())), A - 1)
            s2 = min(int(np.searchsorted(cum_P[a, s], rng.random())), S - 1)
            v2 = 0.0 if terminal[s2] else V[s2]
            delta = R[a, s] + gamma * v2 - V[s]
            V[s] += lr_critic * delta
            score = -pi_s
            score[a] += 1.0
            theta[s] += lr * gamma ** t * delta * score
            s = s2
        if ep % log_every == 0:
            history.append(objective(P, R, gamma, mu0, theta))
    return theta, history
