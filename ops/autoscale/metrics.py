"""The autoscaler's Prometheus metrics: its inputs, its decisions and what it did, per stage."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from ops.autoscale.decide import Decision


class AutoscaleMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.lag = Gauge(
            "triptych_autoscaler_lag", "Entries of a stage not yet delivered", ["stage"], registry=r
        )
        self.pending = Gauge(
            "triptych_autoscaler_pending",
            "Entries of a stage delivered, not acknowledged",
            ["stage"],
            registry=r,
        )
        self.wish = Gauge(
            "triptych_autoscaler_desired_workers",
            "Workers the backlog asks for (clamped)",
            ["stage"],
            registry=r,
        )
        self.target = Gauge(
            "triptych_autoscaler_target_workers",
            "Workers after the scale-down cool-down",
            ["stage"],
            registry=r,
        )
        self.workers = Gauge(
            "triptych_autoscaler_workers",
            "Worker processes by state (running, draining)",
            ["stage", "state"],
            registry=r,
        )
        self.live = Gauge(
            "triptych_autoscaler_live_consumers", "Consumers with a live heartbeat", ["stage"], registry=r
        )
        self.scalings = Counter(
            "triptych_autoscaler_scale_events",
            "Scaling decisions carried out",
            ["stage", "direction"],
            registry=r,
        )
        self.restarts = Counter(
            "triptych_autoscaler_worker_restarts", "Workers started again after dying", ["stage"], registry=r
        )
        self.forgotten = Counter(
            "triptych_autoscaler_consumers_deleted",
            "Dead consumers deleted from their group",
            ["stage"],
            registry=r,
        )
        self.redis_errors = Counter(
            "triptych_autoscaler_redis_errors", "Rounds skipped because Redis was unavailable", registry=r
        )

    def decided(self, decision: Decision, live: int) -> None:
        stage = decision.stage
        self.lag.labels(stage).set(decision.backlog.lag)
        self.pending.labels(stage).set(decision.backlog.pending)
        self.wish.labels(stage).set(decision.wish)
        self.target.labels(stage).set(decision.target)
        self.live.labels(stage).set(live)

    def pool(self, stage: str, running: int, draining: int) -> None:
        self.workers.labels(stage, "running").set(running)
        self.workers.labels(stage, "draining").set(draining)
