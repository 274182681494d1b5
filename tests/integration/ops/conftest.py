"""Fixtures for the autoscaler tests: an autoscaler process over gated_stage.py workers (fake_stage's
jobs, plus jobs that wait for a gate), with short leases and cool-downs, and a reader of its metrics.

The autoscaler runs in its own process group, so the teardown can kill it and every worker it
started, whatever state a failed test left them in.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.redis import free_port
from tests.helpers import ROOT

TEST_ENV = {
    "QUEUE_LEASE_S": "4.0",  # long enough that a loaded machine never delays a renewal past it
    "QUEUE_BLOCK_MS": "100",
    "QUEUE_GRACE_S": "20",
    "QUEUE_HEARTBEAT_S": "0.25",
    "LOG_LEVEL": "WARNING",
    "MODE": "e-pd",
    "AUTOSCALE_COMMAND": "python -m tests.integration.ops.gated_stage {stage}",
    "AUTOSCALE_MIN_WORKERS": "1",
    "AUTOSCALE_MAX_WORKERS": "4",
    "AUTOSCALE_TARGET_PER_WORKER": "4",
    "AUTOSCALE_COOLDOWN_S": "1.0",
    "AUTOSCALE_INTERVAL_S": "0.1",
    "AUTOSCALE_FORGET_AFTER_LEASES": "0.5",
    "TEST_CONCURRENCY": "2",  # jobs per fake worker, so a burst needs several workers
}


@dataclass
class AutoscalerProcess:
    proc: subprocess.Popen[bytes]
    metrics_url: str

    async def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of the autoscaler's /metrics (0 when absent)."""
        async with httpx.AsyncClient() as client:
            text = (await client.get(self.metrics_url, timeout=5)).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


@pytest.fixture
def start_autoscaler(redis_url: str) -> Iterator[Callable[..., AutoscalerProcess]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> AutoscalerProcess:
        port = free_port()
        full_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": redis_url,
            "AUTOSCALE_METRICS_PORT": str(port),
            **TEST_ENV,
            **env,
        }
        argv = [sys.executable, "-m", "ops.autoscale"]
        proc = subprocess.Popen(argv, cwd=ROOT, env=full_env, start_new_session=True)
        started.append(proc)
        return AutoscalerProcess(proc, f"http://127.0.0.1:{port}/metrics")

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the autoscaler and every worker still alive
        proc.wait()
