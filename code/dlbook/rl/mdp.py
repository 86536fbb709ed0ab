"""Finite Markov decision processes and dynamic programming (reinforcement
learning chapter).

Layout, used throughout :mod:`dlbook.rl`: a finite MDP with ``S`` states and
``A`` actions is a pair ``(P, R)`` of NumPy arrays, ``P`` of shape
``(A, S, S)`` with ``P[a, s, s'] = Pr(s' | s, a)`` and ``R`` of shape
``(A, S)`` with ``R[a, s]`` the expected reward of action ``a`` in state
``s``. A stochastic policy is an array ``pi`` of shape ``(S, A)`` whose rows
are distributions; value functions are ``V`` of shape ``(S,)`` and ``Q`` of
shape ``(S, A)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["check_mdp", "bellman_optimality", "q_from_v", "greedy",
           "policy_evaluation", "value_iteration", "policy_iteration",
           "GridWorld", "gridworld", "random_mdp"]


def check_mdp(P: np.ndarray, R: np.ndarray, gamma: float) -> None:
    """Fail early unless ``P`` is ``(A, S, S)`` row-stochastic, ``R`` is
    ``(A, S)`` and ``0 <= gamma < 1``."""
    P, R = np.asarray(P), np.asarray(R)
    if P.ndim != 3 or P.shape[1] != P.shape[2]:
        raise ValueError(f"P must have shape (A, S, S), got {P.shape}")
    if R.shape != P.shape[:2]:
        raise ValueError(f"R must have shape (A, S) = {P.shape[:2]}, "
                         f"got {R.shape}")
    if (P < 0).any() or not np.allclose(P.sum(-1), 1.0):
        raise ValueError("each row P[a, s, :] must be a distribution")
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0, 1), got {gamma}")


def q_from_v(P: np.ndarray, R: np.ndarray, gamma: float,
             V: np.ndarray) -> np.ndarray:
    """``Q(s, a) = R(s, a) + gamma sum_s' P(s'|s, a) V(s')``. Shape (S, A)."""
    return (R + gamma * P @ V).T


def bellman_optimality(P: np.ndarray, R: np.ndarray, gamma: float,
                       V: np.ndarray) -> np.ndarray:
    """The Bellman optimality operator, ``(T V)(s) = max_a Q(s, a)``."""
    return q_from_v(P, R, gamma, V).max(axis=1)


def greedy(Q: np.ndarray) -> np.ndarray:
    """The deterministic greedy policy of ``Q`` as an (S, A) one-hot array
    (ties go to the lowest action index)."""
    pi = np.zeros_like(Q, dtype=float)
    pi[np.arange(len(Q)), Q.argmax(axis=1)] = 1.0
    return pi


def policy_evaluation(P: np.ndarray, R: np.ndarray, gamma: float,
                      pi: np.ndarray) -> np.ndarray:
    """``V^pi`` by solving the linear Bellman equation
    ``(I - gamma P_pi) V = r_pi`` exactly. Shapes: pi (S, A) -> V (S,)."""
    check_mdp(P, R, gamma)
    pi = np.asarray(pi, dtype=float)
    if pi.shape != P.shape[:2][::-1] or not np.allclose(pi.sum(1), 1.0):
        raise ValueError(f"pi must be (S, A) = {P.shape[:2][::-1]} with rows "
                         f"summing to one, got shape {pi.shape}")
    P_pi = np.einsum("sa,ast->st", pi, P)
    r_pi = np.einsum("sa,as->s", pi, R)
    return np.linalg.solve(np.eye(len(r_pi)) - gamma * P_pi, r_pi)


def value_iteration(P: np.ndarray, R: np.ndarray, gamma: float, *,
                    tol: float = 1e-10, max_iter: int = 10_000,
                    V0: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Iterate ``V <- T V`` from ``V0`` (zeros by default).

    Stops when ``||V_{k+1} - V_k||_inf <= tol (1 - gamma) / (2 gamma)``, which
    guarantees that the greedy policy's values are within ``tol`` of optimal.
    Returns ``(V, Q, iterates)``: V (S,), Q (S, A) and the list of all V_k.
    """
    check_mdp(P, R, gamma)
    V = np.zeros(P.shape[1]) if V0 is None else np.asarray(V0, dtype=float)
    iterates = [V]
    threshold = tol * (1 - gamma) / (2 * gamma) if gamma > 0 else tol
    for _ in range(max_iter):
        V_new = bellman_optimality(P, R, gamma, V)
        iterates.append(V_new)
        done = np.abs(V_new - V).max() <= threshold
        V = V_new
        if done:
            break
    return V, q_from_v(P, R, gamma, V), iterates


def policy_iteration(P: np.ndarray, R: np.ndarray, gamma: float, *,
                     max_iter: int = 1_000
                     ) -> tuple[np.ndarray, np.ndarray, int]:
    """Howard's policy iteration: evaluate exactly, improve greedily, stop
    when the policy is stable. Returns ``(pi, V, iterations)``."""
    check_mdp(P, R, gamma)
    A, S, _ = P.shape
    pi = np.zeros((S, A))
    pi[:, 0] = 1.0
    for it in range(1, max_iter + 1):
        V = policy_evaluation(P, R, gamma, pi)
        Q = q_from_v(P, R, gamma, V)
        # keep the current action unless another one is strictly better
        current = pi.argmax(axis=1)
        better = Q.max(axis=1) > Q[np.arange(S), current] + 1e-12
        new = np.where(better, Q.argmax(axis=1), current)
        if not better.any():
            return pi, V, it
        pi = np.eye(A)[new]
    raise RuntimeError(f"policy iteration did not stop in {max_iter} steps")


@dataclass(frozen=True)
class GridWorld:
    """A gridworld as a finite MDP. ``P`` (A, S, S), ``R`` (A, S), ``mu0``
    (S,) the start distribution, ``terminal`` (S,) the absorbing states;
    cell ``(row, col)`` is state ``row * cols + col`` and the last state is the
    absorbing end state."""

    P: np.ndarray
    R: np.ndarray
    mu0: np.ndarray
    terminal: np.ndarray
    shape: tuple[int, int]

    @property
    def num_states(self) -> int:
        return self.P.shape[1]

    @property
    def num_actions(self) -> int:
        return self.P.shape[0]


_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # up, right, down, left


def gridworld(rows: int = 4, cols: int = 4, *, slip: float = 0.2,
              goal: tuple[int, int] | None = None,
              pit: tuple[int, int] | None = (1, 1),
              step_reward: float = -0.04) -> GridWorld:
    """A stochastic ("slippery") gridworld.

    Four actions (up, right, down, left). The intended move happens with
    probability ``1 - slip``; otherwise the move is uniform over the four
    directions. Moving into a wall leaves the agent in place. Any action in
    the goal cell earns ``+1`` and any action in the pit ``-1``, and both
    lead to an absorbing end state of reward 0; every other step earns
    ``step_reward``. Episodes start in cell (0, 0).
    """
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip must lie in [0, 1], got {slip}")
    goal = (rows - 1, cols - 1) if goal is None else goal
    S, end = rows * cols + 1, rows * cols
    P, R = np.zeros((4, S, S)), np.zeros((4, S))
    for r in range(rows):
        for c in range(cols):
            s = r * cols + c
            if (r, c) in (goal, pit):
                P[:, s, end] = 1.0
                R[:, s] = 1.0 if (r, c) == goal else -1.0
                continue
            R[:, s] = step_reward
            for a in range(4):
                for m, (dr, dc) in enumerate(_MOVES):
                    p = (1 - slip) * (m == a) + slip / 4
                    rr = min(max(r + dr, 0), rows - 1)
                    cc = min(max(c + dc, 0), cols - 1)
                    P[a, s, rr * cols + cc] += p
    P[:, end, end] = 1.0
    mu0 = np.zeros(S)
    mu0[0] = 1.0
    terminal = np.zeros(S, dtype=bool)
    terminal[end] = True
    return GridWorld(P, R, mu0, terminal, (rows, cols))


def random_mdp(S: int, A: int, *, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """A random dense MDP: rows of ``P`` from a flat Dirichlet, ``R``
    standard normal. Returns ``(P, R)`` of shapes (A, S, S), (A, S)."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(S), size=(A, S)), rng.standard_normal((A, S))
