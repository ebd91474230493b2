"""The correction step of forward folding: each group of coupled parameters moves so that
its statistics would match the data's, with the response d statistic / d parameter learnt
from the iterations (Broyden's method; logs for multiplicative quantities)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MIN_STEP = 0.02
"""A group must have moved by this much (relative, or in its unit) between two iterations
for the difference to update its response."""
MAX_STEP = 1.0
"""Largest change of a multiplicative parameter per iteration, in log (a factor e)."""


@dataclass
class Group:
    """Coupled parameters, the statistics they are folded with, and their response."""

    params: tuple[str, ...]
    stats: tuple[str, ...]
    additive: tuple[bool, ...]
    jacobian: np.ndarray = field(init=False)
    last: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.jacobian = np.eye(len(self.params))

    def _x(self, values: dict[str, float]) -> np.ndarray:
        return np.array(
            [
                values[p] if a else math.log(values[p])
                for p, a in zip(self.params, self.additive, strict=True)
            ]
        )

    def _y(self, stats: dict[str, tuple[float, float]]) -> np.ndarray | None:
        y = []
        for s, a in zip(self.stats, self.additive, strict=True):
            if s not in stats or (not a and not stats[s][0] > 0):
                return None
            y.append(stats[s][0] if a else math.log(stats[s][0]))
        return np.array(y)

    def step(
        self,
        values: dict[str, float],
        sim: dict[str, tuple[float, float]],
        data: dict[str, tuple[float, float]],
    ) -> dict[str, float]:
        """New values of this group's parameters (unchanged when a statistic is missing)."""
        x, y, target = self._x(values), self._y(sim), self._y(data)
        if y is None or target is None:
            return {}
        if self.last is not None:
            dx, dy = x - self.last[0], y - self.last[1]
            if np.max(np.abs(dx)) > MIN_STEP:
                j = self.jacobian + np.outer(dy - self.jacobian @ dx, dx) / float(dx @ dx)
                if np.all(np.isfinite(j)):
                    j = np.clip(j, -3.0, 3.0)
                    np.fill_diagonal(j, np.clip(np.diag(j), 0.3, 3.0))
                    if abs(np.linalg.det(j)) > 0.1:
                        self.jacobian = j
        self.last = (x, y)
        move = np.linalg.solve(self.jacobian, target - y)
        limit = np.where(self.additive, np.inf, MAX_STEP)
        x_new = x + np.clip(move, -limit, limit)
        return {
            p: float(v if a else math.exp(v))
            for p, v, a in zip(self.params, x_new, self.additive, strict=True)
        }


def groups(spec: Sequence[tuple[tuple[str, str, bool], ...]]) -> list[Group]:
    """Groups from ((parameter, statistic, additive), ...) tuples."""
    return [
        Group(tuple(p for p, _, _ in g), tuple(s for _, s, _ in g), tuple(a for _, _, a in g))
        for g in spec
    ]
