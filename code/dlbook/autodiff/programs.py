"""Programs that are not networks, to be differentiated (chapter: backprop).

The functions here use only arithmetic and the methods ``sin``/``cos``, so
they run unchanged on :class:`~dlbook.autodiff.Value`, on
:class:`~dlbook.autodiff.Tensor`, on :class:`~dlbook.autodiff.Dual` and on
``torch.Tensor``: one program, several ways to differentiate it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Projectile", "simulate_projectile", "trajectory_loss"]


@dataclass(frozen=True)
class Projectile:
    """Settings of the projectile simulation (SI units).

    ``steps`` explicit Euler steps of length ``dt`` integrate
    ``r'' = -g e_y - k |r'| r'`` for the position ``r`` (quadratic air drag).
    """

    steps: int = 60
    dt: float = 0.05
    g: float = 9.81


def simulate_projectile(
    speed: Any, angle: Any, drag: Any, config: Projectile = Projectile(),
) -> list[tuple[Any, Any]]:
    """Positions ``(x_t, y_t)`` for ``t = 1..steps``, launched from the origin.

    ``speed`` (m/s), ``angle`` (radians above the horizon) and ``drag`` (the
    coefficient ``k``, 1/m) may be numbers of any differentiable type.
    """
    if config.steps < 1 or config.dt <= 0:
        raise ValueError(f"need steps >= 1 and dt > 0, got {config}")
    vx, vy = speed * angle.cos(), speed * angle.sin()
    x = y = 0.0 * speed
    path = []
    for _ in range(config.steps):
        v = (vx * vx + vy * vy) ** 0.5
        ax, ay = -drag * v * vx, -config.g - drag * v * vy
        x, y = x + config.dt * vx, y + config.dt * vy  # explicit Euler
        vx, vy = vx + config.dt * ax, vy + config.dt * ay
        path.append((x, y))
    return path


def trajectory_loss(path: Sequence[tuple[Any, Any]],
                    observed: Sequence[tuple[float, float]]) -> Any:
    """Mean squared distance between simulated and observed positions."""
    if len(path) != len(observed):
        raise ValueError(
            f"path has {len(path)} points, observed has {len(observed)}")
    total = 0.0
    for (x, y), (ox, oy) in zip(path, observed):
        total = total + (x - ox) ** 2 + (y - oy) ** 2
    return total / len(path)
