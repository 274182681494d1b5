"""How a worker process is started: its command line (from a template) and its environment.

The template is split like a shell line and `{stage}` is replaced by the stage's name; a leading
`python` or `python3` means this interpreter (the autoscaler's virtualenv), whatever is on PATH.
Each worker gets its consumer name in CONSUMER_NAME. The Procfile runner's PORT belongs to the
autoscaler's own process, so it is not passed on; a worker gets a metrics port (WORKER_METRICS_PORT)
only when a first port is configured. Where AUTOSCALE_DEVICES lists devices for the stage, worker
`<stage>.<n>` gets the n-th of them in turn as DEVICE (`worker_device`): a worker keeps its device for
its life, a restarted one gets it again (same name, same n), and the next worker to take a freed
name takes that name's device.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence

PYTHONS = ("python", "python3")
_NOT_INHERITED = ("PORT", "CONSUMER_NAME", "WORKER_METRICS_PORT")


def worker_argv(template: str, stage: str) -> list[str]:
    argv = [part.replace("{stage}", stage) for part in shlex.split(template)]
    if not argv:
        raise ValueError("the worker command is empty")
    if argv[0] in PYTHONS:
        argv[0] = sys.executable
    return argv


def worker_env(
    name: str, metrics_port: int | None, base: Mapping[str, str] | None = None, *, device: str | None = None
) -> dict[str, str]:
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _NOT_INHERITED}
    env["CONSUMER_NAME"] = name
    if metrics_port is not None:
        env["WORKER_METRICS_PORT"] = str(metrics_port)
    if device is not None:
        env["DEVICE"] = device
    return env


def worker_device(devices: Sequence[str], n: int) -> str | None:
    """Worker `<stage>.<n>`'s device: the stage's devices in turn, n = 1 the first (None: no list)."""
    return devices[(n - 1) % len(devices)] if devices else None


def metrics_port(first: int, stage_index: int, n: int) -> int | None:
    """Worker `<stage>.<n>` of the i-th stage serves metrics on first + 100 * i + n - 1 (None: off)."""
    return first + 100 * stage_index + n - 1 if first else None
