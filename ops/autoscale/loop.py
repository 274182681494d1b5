"""The autoscaler's round, every AUTOSCALE_INTERVAL_S: read every stage, decide, act, export.

Per stage: reap the workers (restart the dead), read lag / pending / consumers / heartbeats,
decide (ops.autoscale.decide), start or drain workers, forget dead consumers, and export and log
the decision with its inputs (INFO when it changes something, DEBUG otherwise). With Redis
unreachable a round changes nothing but the restarts. On stop, every worker is sent SIGTERM and
given QUEUE_GRACE_S (+10 s) to drain before it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ops.autoscale.consumers import ConsumerSweeper
from ops.autoscale.decide import Decision, Scaler
from ops.autoscale.launch import metrics_port, worker_argv, worker_device, worker_env
from ops.autoscale.metrics import AutoscaleMetrics
from ops.autoscale.observe import StageState, observe
from ops.autoscale.pool import StagePool
from ops.autoscale.settings import AutoscaleSettings
from queues.config import RuntimeConfig
from queues.keys import Keys
from queues.types import Stage

log = logging.getLogger(__name__)

KILL_MARGIN_S = 10.0  # beyond QUEUE_GRACE_S, for a draining worker to settle and close


class Autoscaler:
    def __init__(
        self,
        settings: AutoscaleSettings,
        runtime: RuntimeConfig,
        client: aioredis.Redis,
        metrics: AutoscaleMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.keys = Keys(runtime.key_prefix)
        self.metrics = metrics or AutoscaleMetrics()
        self.stages = settings.scaled_stages()
        self.kill_after_s = runtime.grace_s + KILL_MARGIN_S
        forget_after_s = settings.forget_after_leases * runtime.lease_s
        self.scalers = {stage: Scaler(stage, settings.policy(stage)) for stage in self.stages}
        self.sweepers = {s: ConsumerSweeper(client, self.keys, s, forget_after_s) for s in self.stages}
        self.pools: dict[str, StagePool] = {}
        if settings.spawn:
            self.pools = {stage: self._pool(i, stage) for i, stage in enumerate(self.stages)}
        self._last: dict[str, tuple[int, int, int]] = {}
        self._stop = asyncio.Event()

    def _pool(self, index: int, stage: str) -> StagePool:
        first = self.settings.worker_metrics_port
        devices = self.settings.devices_of(stage)

        def env_for(name: str, n: int) -> dict[str, str]:
            return worker_env(name, metrics_port(first, index, n), device=worker_device(devices, n))

        return StagePool(stage, worker_argv(self.settings.command, stage), env_for, self.kill_after_s)

    def stop(self) -> None:
        """Stop after the current round and drain every worker. Safe to call from a signal handler."""
        self._stop.set()

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                await self.round(time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.settings.interval_s)
        finally:
            await self.shutdown()

    async def round(self, now: float) -> list[Decision]:
        for stage, pool in self.pools.items():
            restarted = pool.reap(now)
            if restarted:
                self.metrics.restarts.labels(stage).inc(restarted)
        try:
            states = await observe(self.client, self.keys, self.stages)
            await self._announce()
        except (RedisError, OSError) as exc:
            log.warning("Redis unavailable, no scaling this round: %s", exc)
            self.metrics.redis_errors.inc()
            self._export_pools()
            return []
        decisions = [await self._stage_round(now, stage, states[stage]) for stage in self.stages]
        self._export_pools()
        return decisions

    async def _stage_round(self, now: float, stage: Stage, state: StageState) -> Decision:
        pool = self.pools.get(stage)
        running = pool.running if pool is not None else len(state.live)
        decision = self.scalers[stage].decide(now, state.backlog, running)
        self._log(decision)
        self.metrics.decided(decision, len(state.live))
        if pool is not None and decision.action != "hold":
            pool.scale_to(decision.target, now, taken=state.live - pool.names())
            self.metrics.scalings.labels(stage, decision.action).inc()
        forgotten = await self.sweepers[stage].sweep(now, state)
        if forgotten:
            self.metrics.forgotten.labels(stage).inc(len(forgotten))
        return decision

    async def _announce(self) -> None:
        """Tell the front doors which stages get workers on demand: a request for a stage with none
        running then waits for one (ADMISSION_TIMEOUT_S) instead of being refused."""
        if not self.pools:
            return
        ttl_ms = int(max(3 * self.settings.interval_s, 3.0) * 1000)
        pipe = self.client.pipeline(transaction=False)
        for stage in self.pools:
            pipe.set(self.keys.scaler(stage), b"1", px=ttl_ms)
        await pipe.execute()

    def _log(self, decision: Decision) -> None:
        key = (decision.running, decision.wish, decision.target)
        changed = self._last.get(decision.stage) != key
        self._last[decision.stage] = key
        acting = decision.action != "hold" and bool(self.pools)
        level = logging.INFO if changed or acting else logging.DEBUG
        log.log(level, "decision %s", decision.describe())

    def _export_pools(self) -> None:
        for stage, pool in self.pools.items():
            self.metrics.pool(stage, pool.running, pool.draining)

    async def shutdown(self) -> None:
        """SIGTERM every worker, wait for them to drain (kill the overdue), then return."""
        if not self.pools:
            return
        with contextlib.suppress(RedisError, OSError):  # no more workers on demand
            await self.client.delete(*(self.keys.scaler(stage) for stage in self.pools))
        now = time.monotonic()
        for pool in self.pools.values():
            pool.stop_all(now)
        deadline = now + self.kill_after_s
        while any(pool.draining for pool in self.pools.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            for pool in self.pools.values():
                pool.reap(time.monotonic())
        for pool in self.pools.values():
            pool.kill_all()
        self._export_pools()
        log.info("every worker stopped")
