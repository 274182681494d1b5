"""Prometheus metrics of a worker process: jobs by outcome, handler time, queue wait, step timings,
and the KV budget its engine settled on at start.

Every worker serves them on `WORKER_METRICS_PORT` (else on the Procfile runner's `PORT`) at
`WORKER_METRICS_HOST` (`WorkerMetricsSettings`); the front door has its own set (app/metrics.py).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import msgspec
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

from queues.config import env_names, from_env
from queues.types import Outcome

SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

JOBS_STARTED = Counter("triptych_jobs_started", "Jobs a worker started", ["stage"])
JOBS_FINISHED = Counter("triptych_jobs_finished", "Jobs a worker finished, by outcome", ["stage", "outcome"])
HANDLER_SECONDS = Histogram(
    "triptych_job_seconds", "Time a job spent in its stage's handler", ["stage", "outcome"], buckets=SECONDS
)
QUEUE_WAIT_SECONDS = Histogram(
    "triptych_queue_wait_seconds", "Time a job waited in its stage's stream", ["stage"], buckets=SECONDS
)
STEP_SECONDS = Histogram(
    "triptych_stage_step_seconds",
    "Time of one step of a stage (media, encode, transfer, prefill, decode)",
    ["stage", "step"],
    buckets=SECONDS,
)
KV_TOKENS = Gauge(
    "triptych_kv_tokens",
    "KV positions a decoding worker's batch may reserve (MAX_KV_TOKENS, or what auto settled on)",
    ["stage"],
)


class WorkerMetricsSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
    worker_metrics_port: int | None = None
    port: int | None = None  # the Procfile runner's port for the process: the fallback
    worker_metrics_host: str = "127.0.0.1"

    @property
    def metrics_port(self) -> int | None:
        return self.port if self.worker_metrics_port is None else self.worker_metrics_port


@functools.cache
def child(metric: MetricWrapperBase, *labels: str) -> Any:
    """`metric.labels(*labels)`, looked up once: the lookup validates and takes a lock every time,
    a few microseconds on every job."""
    return metric.labels(*labels)


class PrometheusHooks:
    """The runtime's metrics hooks (queues.runtime.Hooks) backed by the counters above."""

    def job_started(self, stage: str, queue_wait_s: float) -> None:
        child(JOBS_STARTED, stage).inc()
        child(QUEUE_WAIT_SECONDS, stage).observe(queue_wait_s)

    def job_finished(self, stage: str, outcome: Outcome, seconds: float) -> None:
        child(JOBS_FINISHED, stage, outcome).inc()
        child(HANDLER_SECONDS, stage, outcome).observe(seconds)


def observe_step(stage: str, step: str, seconds: float) -> None:
    child(STEP_SECONDS, stage, step).observe(seconds)


def serve_metrics(settings: WorkerMetricsSettings | None = None) -> int | None:
    """Start the metrics HTTP server on WORKER_METRICS_PORT, else the runner's PORT; returns the port."""
    settings = settings or from_env(WorkerMetricsSettings)
    port = settings.metrics_port
    if port is None:
        return None
    try:
        start_http_server(port, addr=settings.worker_metrics_host)
    except OSError as exc:  # metrics are not worth failing the worker for
        logging.getLogger(__name__).warning("no metrics server on port %s: %s", port, exc)
        return None
    return port
