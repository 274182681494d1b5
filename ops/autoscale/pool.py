"""The worker processes of one stage, owned by the autoscaler.

Workers are named `<stage>.<n>` with the lowest free n (their consumer name), so names stay stable
and a restarted worker re-reads its own pending entries. Scaling down sends SIGTERM to the highest
n: the worker stops reading, finishes its jobs within QUEUE_GRACE_S and exits; one that has not
exited after `kill_after_s` is killed (its jobs stay pending, and are reclaimed after the lease).
A worker that dies unasked is started again under the same name, at once, or after a growing pause
(1, 2, 4 ... 30 s) when it keeps dying within seconds of its start.
"""

from __future__ import annotations

import itertools
import logging
import signal
import subprocess
from collections.abc import Callable, Collection
from dataclasses import dataclass

log = logging.getLogger(__name__)

QUICK_DEATH_S = 10.0  # a worker dying this soon after its start counts towards the restart pause
MAX_PAUSE_S = 30.0

EnvFor = Callable[[str, int], dict[str, str]]  # (consumer name, n) -> environment of the worker


@dataclass
class Slot:
    """A wanted worker: running, or dead and waiting for its restart."""

    n: int
    name: str
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0


@dataclass
class Draining:
    name: str
    proc: subprocess.Popen[bytes]
    since: float
    killed: bool = False


class StagePool:
    def __init__(self, stage: str, argv: list[str], env_for: EnvFor, kill_after_s: float) -> None:
        self.stage = stage
        self.argv = argv
        self.env_for = env_for
        self.kill_after_s = kill_after_s
        self._slots: dict[int, Slot] = {}
        self._draining: list[Draining] = []

    @property
    def running(self) -> int:
        """Workers the stage has (alive, or about to be restarted); draining ones excluded."""
        return len(self._slots)

    @property
    def draining(self) -> int:
        return len(self._draining)

    def names(self) -> set[str]:
        return {slot.name for slot in self._slots.values()} | {d.name for d in self._draining}

    def pids(self) -> dict[str, int]:
        """Consumer name -> pid of every worker process alive (draining ones included)."""
        alive = {s.name: s.proc.pid for s in self._slots.values() if s.proc is not None}
        return alive | {d.name: d.proc.pid for d in self._draining}

    # ---- each round ------------------------------------------------------------------------

    def reap(self, now: float) -> int:
        """Collect exited workers: forget drained ones, restart the ones that died, kill the overdue.

        Returns how many workers were started again."""
        restarted = 0
        for draining in list(self._draining):
            code = draining.proc.poll()
            if code is not None:
                log.info(
                    "stage=%s worker %s exited with code %s after draining", self.stage, draining.name, code
                )
                self._draining.remove(draining)
            elif not draining.killed and now - draining.since > self.kill_after_s:
                log.warning(
                    "stage=%s worker %s still running %.0fs after SIGTERM: killing it",
                    self.stage,
                    draining.name,
                    now - draining.since,
                )
                draining.proc.kill()
                draining.killed = True
        for slot in self._slots.values():
            if slot.proc is not None and slot.proc.poll() is not None:
                self._died(slot, now)
            if slot.proc is None and now >= slot.restart_at and self._start(slot, now):
                restarted += 1
        return restarted

    def scale_to(self, target: int, now: float, taken: Collection[str] = ()) -> None:
        """Start or drain workers until `target` are wanted; `taken`: names used by other processes."""
        while self.running < target:
            used = self.names() | set(taken)
            n = next(i for i in itertools.count(1) if f"{self.stage}.{i}" not in used)
            slot = Slot(n, f"{self.stage}.{n}")
            self._slots[n] = slot
            self._start(slot, now)
        while self.running > target:
            self._drain(self._slots.pop(max(self._slots)), now)

    def stop_all(self, now: float) -> None:
        for n in sorted(self._slots, reverse=True):
            self._drain(self._slots.pop(n), now)

    def kill_all(self) -> None:
        for draining in self._draining:
            if draining.proc.poll() is None:
                draining.proc.kill()
            draining.proc.wait()
        self._draining.clear()

    # ---- one worker ------------------------------------------------------------------------

    def _start(self, slot: Slot, now: float) -> bool:
        slot.started = now
        try:
            slot.proc = subprocess.Popen(self.argv, env=self.env_for(slot.name, slot.n))
        except OSError as exc:
            log.error("stage=%s cannot start %s (%s): %s", self.stage, slot.name, " ".join(self.argv), exc)
            self._pause(slot, now)
            return False
        log.info("stage=%s started worker %s (pid %d)", self.stage, slot.name, slot.proc.pid)
        return True

    def _died(self, slot: Slot, now: float) -> None:
        assert slot.proc is not None
        log.warning(
            "stage=%s worker %s (pid %d) died with code %s: restarting it",
            self.stage,
            slot.name,
            slot.proc.pid,
            slot.proc.returncode,
        )
        slot.proc = None
        if now - slot.started < QUICK_DEATH_S:
            self._pause(slot, now)
        else:
            slot.quick_deaths = 0
            slot.restart_at = now

    def _pause(self, slot: Slot, now: float) -> None:
        slot.quick_deaths += 1
        slot.restart_at = now + min(2.0 ** (slot.quick_deaths - 1), MAX_PAUSE_S)

    def _drain(self, slot: Slot, now: float) -> None:
        if slot.proc is None or slot.proc.poll() is not None:
            return  # not running: nothing to drain
        log.info(
            "stage=%s stopping worker %s (pid %d): SIGTERM, it drains", self.stage, slot.name, slot.proc.pid
        )
        slot.proc.send_signal(signal.SIGTERM)
        self._draining.append(Draining(slot.name, slot.proc, now))
