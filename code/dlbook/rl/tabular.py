"""Tabular Q-learning on a finite MDP given as ``(P, R)`` (reinforcement
learning chapter). The MDP is used only as a simulator: the learner sees
sampled transitions, never ``P`` itself."""
from __future__ import annotations

import bisect

import numpy as np

from .mdp import check_mdp

__all__ = ["q_learning"]


def _step_size(n: int, omega: float) -> float:
    # alpha_n = 1 / n^omega: sum alpha = inf, sum alpha^2 < inf iff omega > 1/2
    return 1.0 / n ** omega


def q_learning(P: np.ndarray, R: np.ndarray, gamma: float, steps: int, *,
               terminal: np.ndarray | None = None, epsilon: float = 0.2,
               omega: float = 0.8, horizon: int = 50, seed: int = 0,
               Q_star: np.ndarray | None = None, log_every: int = 1000
               ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Watkins's Q-learning with an epsilon-greedy behaviour policy.

    Each episode starts in a uniformly random non-terminal state (so that
    every pair (s, a) keeps being visited) and lasts until a terminal state
    or ``horizon`` steps. The step size of the n-th update of (s, a) is
    ``1 / n**omega``. Returns ``(Q, counts, errors)``: Q and visit counts of
    shape (S, A), and ``||Q - Q_star||_inf`` every ``log_every`` steps (empty
    if ``Q_star`` is None).
    """
    check_mdp(P, R, gamma)
    if not 0.5 < omega <= 1.0:
        raise ValueError(f"omega must lie in (1/2, 1] (Robbins-Monro), "
                         f"got {omega}")
    A, S, _ = P.shape
    terminal = np.zeros(S, bool) if terminal is None else np.asarray(terminal)
    starts = np.flatnonzero(~terminal).tolist()
    rng = np.random.default_rng(seed)
    # plain Python lists and bisect: this loop is a few microseconds a step
    cum_P = P.cumsum(axis=-1).tolist()
    R_, term = R.tolist(), terminal.tolist()
    Q = [[0.0] * A for _ in range(S)]
    counts = [[0] * A for _ in range(S)]
    errors: list[float] = []
    u = rng.random((steps, 3)).tolist()
    pick = rng.integers(0, A, steps).tolist()
    restart = rng.integers(0, len(starts), steps).tolist()
    s, t = starts[restart[0]], 0
    for step in range(steps):
        q_s = Q[s]
        a = pick[step] if u[step][0] < epsilon else q_s.index(max(q_s))
        s2 = min(bisect.bisect_left(cum_P[a][s], u[step][1]), S - 1)
        target = R_[a][s] + (0.0 if term[s2] else gamma * max(Q[s2]))
        counts[s][a] += 1
        q_s[a] += _step_size(counts[s][a], omega) * (target - q_s[a])
        s, t = s2, t + 1
        if term[s] or t >= horizon:
            s, t = starts[restart[step]], 0
        if Q_star is not None and (step + 1) % log_every == 0:
            errors.append(float(np.abs(np.array(Q) - Q_star).max()))
    return np.array(Q), np.array(counts), errors
