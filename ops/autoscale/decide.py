"""The scaling decision of one stage: how many workers for its backlog, with a cool-down on the way down.

    wish   = clamp(ceil((lag + pending) / target_per_worker), min, max)
    target = wish                                   when wish >= running (scale up at once)
           = max(wishes of the last cooldown_s)     otherwise (never below wish, never above running)

So a stage grows as soon as its backlog does, and shrinks only once every wish of the whole
cool-down window was lower than the workers it has (the Kubernetes HPA's scale-down window).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    min_workers: int = 1
    max_workers: int = 4
    target_per_worker: int = 8  # backlog (waiting + in flight) one worker is meant to carry
    cooldown_s: float = 60.0  # how long the wish must stay lower before workers are stopped


@dataclass(frozen=True)
class Backlog:
    """One stage's stream: entries not yet delivered (`lag`) and delivered but not acknowledged."""

    lag: int
    pending: int
    lag_reported: bool = True  # False: Redis gave no lag (older than 7, or null) and it was computed

    @property
    def total(self) -> int:
        return self.lag + self.pending


@dataclass(frozen=True)
class Decision:
    stage: str
    backlog: Backlog
    running: int  # workers the stage has now (not counting those draining)
    wish: int  # what the backlog alone asks for
    target: int  # what the stage gets: the wish, held up during the cool-down

    @property
    def action(self) -> str:
        if self.target > self.running:
            return "up"
        if self.target < self.running:
            return "down"
        return "hold"

    def describe(self) -> str:
        """The decision and its inputs as `key=value` pairs, for the log."""
        b = self.backlog
        computed = "" if b.lag_reported else " (computed)"
        return (
            f"stage={self.stage} action={self.action} lag={b.lag}{computed} pending={b.pending} "
            f"running={self.running} wish={self.wish} target={self.target}"
        )


def desired_workers(backlog: int, policy: Policy) -> int:
    """clamp(ceil(backlog / target_per_worker), min_workers, max_workers)."""
    wanted = math.ceil(max(backlog, 0) / policy.target_per_worker)
    return max(policy.min_workers, min(policy.max_workers, wanted))


class Scaler:
    """Decisions for one stage; remembers the wishes of the cool-down window."""

    def __init__(self, stage: str, policy: Policy) -> None:
        self.stage = stage
        self.policy = policy
        self._wishes: deque[tuple[float, int]] = deque()

    def decide(self, now: float, backlog: Backlog, running: int) -> Decision:
        wish = desired_workers(backlog.total, self.policy)
        self._wishes.append((now, wish))
        while self._wishes and self._wishes[0][0] < now - self.policy.cooldown_s:
            self._wishes.popleft()
        if wish >= running:
            target = wish
        else:
            held = max(w for _, w in self._wishes)
            target = max(wish, min(running, held))
        return Decision(self.stage, backlog, running, wish, target)
