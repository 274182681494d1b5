"""Prometheus metrics of a worker process: jobs by outcome, handler time, queue wait, step timings.

Every worker serves them on `WORKER_METRICS_PORT` (else on the Procfile runner's `PORT`); the front door has
its own set (app/metrics.py).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

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

    def job_finished(self, stage: str, outcome: str, seconds: float) -> None:
        child(JOBS_FINISHED, stage, outcome).inc()
        child(HANDLER_SECONDS, stage, outcome).observe(seconds)


def observe_step(stage: str, step: str, seconds: float) -> None:
    child(STEP_SECONDS, stage, step).observe(seconds)


def serve_metrics() -> int | None:
    """Start the metrics HTTP server on WORKER_METRICS_PORT, else the runner's PORT; returns the port."""
    port = os.environ.get("WORKER_METRICS_PORT") or os.environ.get("PORT")
    if not port:
        return None
    try:
        start_http_server(int(port), addr=os.environ.get("WORKER_METRICS_HOST", "127.0.0.1"))
    except OSError as exc:  # metrics are not worth failing the worker for
        logging.getLogger(__name__).warning("no metrics server on port %s: %s", port, exc)
        return None
    return int(port)
