"""Every settings class of the system, and the document whose table lists its variables.

It lives at the top layer because it names classes of every package (`queues.config` is the
mechanism and imports none of them).
"""

from __future__ import annotations

import importlib

import msgspec

# Every settings class ("module:Class") and the document whose table lists all its variables; the
# README's configuration section points to the ones that are not README.md itself. A test checks
# both directions (tests/unit/ops/test_settings.py). Imported lazily: most are heavy or unrelated.
SETTINGS: dict[str, str] = {
    "queues.config:RuntimeConfig": "README.md",
    "queues.logs:LogSettings": "README.md",
    "queues.metrics:WorkerMetricsSettings": "README.md",
    "queues.heartbeat:ConsumerSettings": "README.md",
    "app.settings:AppSettings": "README.md",
    "app.probe:ProbeSettings": "README.md",
    "workers.settings:WorkerSettings": "README.md",
    "queues.media.config:MediaConfig": "queues/media/config.py",
    "queues.transfer.config:TransferConfig": "queues/transfer/config.py",
    "ops.autoscale.settings:AutoscaleSettings": "ops/autoscale/__init__.py",
    "ops.run:LaunchSettings": "README.md",
    "ops.redis:RedisServerSettings": "README.md",
}


def registered() -> dict[type[msgspec.Struct], str]:
    """The classes of `SETTINGS`, imported, with their documents."""
    classes: dict[type[msgspec.Struct], str] = {}
    for path, doc in SETTINGS.items():
        module, _, name = path.partition(":")
        classes[getattr(importlib.import_module(module), name)] = doc
    return classes
