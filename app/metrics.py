"""Prometheus metrics of the front door: requests, latencies, errors, and the backlog per stage."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class FrontDoorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("triptych_requests", "Chat requests by HTTP status", ["status"], registry=r)
        self.errors = Counter("triptych_errors", "Failed requests by error type", ["type"], registry=r)
        self.in_flight = Gauge("triptych_requests_in_flight", "Requests being served", registry=r)
        self.ttft = Histogram(
            "triptych_time_to_first_token_seconds",
            "Acceptance to first token",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "triptych_inter_token_latency_seconds",
            "Between two tokens of a stream",
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "triptych_request_latency_seconds",
            "Acceptance to last token",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("triptych_prompt_tokens", "Prompt tokens incl. media tokens", registry=r)
        self.completion_tokens = Counter("triptych_completion_tokens", "Generated tokens", registry=r)
        self.queue_depth = Gauge("triptych_queue_depth", "Jobs in a stage's stream", ["stage"], registry=r)
        self.queue_pending = Gauge(
            "triptych_queue_pending", "Jobs of a stage being worked on", ["stage"], registry=r
        )
