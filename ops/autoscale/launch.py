"""How a worker process is started: its command line (from a template) and its environment.

The template is split like a shell line and `{stage}` is replaced by the stage's name; a leading
`python` or `python3` means this interpreter (the autoscaler's virtualenv), whatever is on PATH.
Each worker gets its consumer name in CONSUMER_NAME. The Procfile runner's PORT belongs to the
autoscaler's own process, so it is not passed on; a worker gets a metrics port (WORKER_METRICS_PORT)
only when a first port is configured.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping

PYTHONS = ("python", "python3")
_NOT_INHERITED = ("PORT", "CONSUMER_NAME", "WORKER_METRICS_PORT")


def worker_argv(template: str, stage: str) -> list[str]:
    argv = [part.replace("{stage}", stage) for part in shlex.split(template)]
    if not argv:
        raise ValueError("the worker command is empty")
    if argv[0] in PYTHONS:
        argv[0] = sys.executable
    return argv


def worker_env(name: str, metrics_port: int | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _NOT_INHERITED}
    env["CONSUMER_NAME"] = name
    if metrics_port is not None:
        env["WORKER_METRICS_PORT"] = str(metrics_port)
    return env


def metrics_port(first: int, stage_index: int, n: int) -> int | None:
    """Worker `<stage>.<n>` of the i-th stage serves metrics on first + 100 * i + n - 1 (None: off)."""
    return first + 100 * stage_index + n - 1 if first else None
