"""Deep Q-networks with experience replay and a target network
(reinforcement learning chapter), on a classic-control task of
``gymnasium``. The algorithm itself is the subject, so it has its own loop
rather than :func:`dlbook.train.fit`."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from dlbook.nn import mlp

__all__ = ["DQNConfig", "ReplayBuffer", "DQNResult", "dqn_loss", "dqn",
           "greedy_returns"]


@dataclass(frozen=True)
class DQNConfig:
    """Hyper-parameters of :func:`dqn`. ``target_update=None`` removes the
    target network: the bootstrap target then uses the online network."""

    steps: int = 4000
    hidden: int = 64
    lr: float = 1e-3
    gamma: float = 0.99
    batch_size: int = 64
    buffer_size: int = 10_000
    learning_starts: int = 500
    train_every: int = 1
    target_update: int | None = 200
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_steps: int = 2000
    env_id: str = "CartPole-v1"


class ReplayBuffer:
    """A ring buffer of transitions ``(s, a, r, s', terminated)`` with
    uniform sampling. ``obs`` and ``next_obs`` have shape (capacity, D)."""

    def __init__(self, capacity: int, obs_dim: int, *,
                 generator: torch.Generator | None = None) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.obs = torch.zeros(capacity, obs_dim)
        self.next_obs = torch.zeros(capacity, obs_dim)
        self.actions = torch.zeros(capacity, dtype=torch.long)
        self.rewards = torch.zeros(capacity)
        self.done = torch.zeros(capacity)
        self.capacity, self.size, self._next = capacity, 0, 0
        self.generator = generator

    def add(self, obs, action: int, reward: float, next_obs,
            terminated: bool) -> None:
        i = self._next
        self.obs[i] = torch.as_tensor(obs)
        self.next_obs[i] = torch.as_tensor(next_obs)
        self.actions[i], self.rewards[i] = action, reward
        self.done[i] = float(terminated)
        self._next, self.size = (i + 1) % self.capacity, min(self.size + 1,
                                                             self.capacity)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """A uniform mini-batch ``(obs, actions, rewards, next_obs, done)``,
        shapes (B, D), (B,), (B,), (B, D), (B,)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty buffer")
        idx = torch.randint(self.size, (batch_size,), generator=self.generator)
        return (self.obs[idx], self.actions[idx], self.rewards[idx],
                self.next_obs[idx], self.done[idx])


def dqn_loss(online: nn.Module, target: nn.Module, batch: tuple, gamma: float
             ) -> torch.Tensor:
    """Huber loss between ``Q(s, a)`` and the bootstrap target
    ``r + gamma (1 - done) max_a' Q_target(s', a')`` (no gradient through the
    target)."""
    obs, actions, rewards, next_obs, done = batch
    q = online(obs).gather(1, actions[:, None]).squeeze(1)
    with torch.no_grad():
        y = rewards + gamma * (1 - done) * target(next_obs).max(1).values
    return nn.functional.smooth_l1_loss(q, y)


@dataclass
class DQNResult:
    """What :func:`dqn` returns: the online network, the return and the final
    step of every training episode, and the mean of ``max_a Q(s, a)`` over a
    fixed set of probe states every 100 steps."""

    model: nn.Module
    returns: list[float] = field(default_factory=list)
    episode_ends: list[int] = field(default_factory=list)
    q_probe: list[float] = field(default_factory=list)


def _epsilon(cfg: DQNConfig, step: int) -> float:
    frac = min(step / cfg.epsilon_steps, 1.0)
    return cfg.epsilon_start + frac * (cfg.epsilon_end - cfg.epsilon_start)


def dqn(cfg: DQNConfig = DQNConfig(), *, seed: int = 0) -> DQNResult:
    """Train a DQN (Mnih et al. 2015) for ``cfg.steps`` environment steps."""
    import gymnasium as gym  # imported here: no import-time side effects

    env = gym.make(cfg.env_id)
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    obs_dim, n_actions = env.observation_space.shape[0], env.action_space.n
    online = mlp([obs_dim, cfg.hidden, cfg.hidden, n_actions], generator=g)
    target = copy.deepcopy(online) if cfg.target_update else online
    opt = torch.optim.Adam(online.parameters(), lr=cfg.lr)
    buffer = ReplayBuffer(cfg.buffer_size, obs_dim, generator=g)
    probe = torch.as_tensor(np.stack([env.reset(seed=seed + 10_000 + i)[0]
                                      for i in range(32)]))
    result, (obs, _), ret = DQNResult(online), env.reset(seed=seed), 0.0
    for step in range(1, cfg.steps + 1):
        if rng.random() < _epsilon(cfg, step):
            action = int(rng.integers(n_actions))
        else:
            with torch.no_grad():
                action = int(online(torch.as_tensor(obs)).argmax())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated)
        obs, ret = next_obs, ret + reward
        if terminated or truncated:
            result.returns.append(ret)
            result.episode_ends.append(step)
            (obs, _), ret = env.reset(), 0.0
        if step >= cfg.learning_starts and step % cfg.train_every == 0:
            loss = dqn_loss(online, target, buffer.sample(cfg.batch_size),
                            cfg.gamma)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if cfg.target_update and step % cfg.target_update == 0:
            target.load_state_dict(online.state_dict())
        if step % 100 == 0:
            with torch.no_grad():
                result.q_probe.append(float(online(probe).max(1).values.mean()))
    env.close()
    return result


def greedy_returns(model: nn.Module, episodes: int = 5, *, seed: int = 0,
                   env_id: str = "CartPole-v1") -> list[float]:
    """Undiscounted returns of the greedy policy of ``model``."""
    import gymnasium as gym

    env, returns = gym.make(env_id), []
    for i in range(episodes):
        (obs, _), done, ret = env.reset(seed=seed + i), False, 0.0
        while not done:
            with torch.no_grad():
                action = int(model(torch.as_tensor(obs)).argmax())
            obs, reward, terminated, truncated, _ = env.step(action)
            ret, done = ret + reward, terminated or truncated
        returns.append(ret)
    env.close()
    return returns
