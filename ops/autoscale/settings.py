"""The autoscaler's settings, from `AUTOSCALE_*` environment variables (and MODE); the table is in
the package's docstring (ops/autoscale/__init__.py)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from ops.autoscale.decide import Policy
from queues.config import env_names
from queues.types import STAGES, Mode, Stage, stages
from workers.settings import check_device_name

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]


class AutoscaleSettings(
    msgspec.Struct, frozen=True, kw_only=True, rename=env_names("AUTOSCALE_", mode="MODE")
):
    mode: Mode = "e-p-d"  # the deployment mode; its stages are the ones scaled
    stages: list[Stage] = []  # stages to scale instead of the mode's
    min_workers: NonNegative = 1
    max_workers: Positive = 4
    target_per_worker: Positive = 8  # backlog (lag + pending) one worker should carry
    limits: list[str] = []  # per-stage overrides, `stage=min:max[:target]`, e.g. `decode=1:2:64`
    # per-stage DEVICE lists, `stage=device[+device...]`, e.g. `encode=cuda:0,decode=cuda:1+cuda:2`
    devices: list[str] = []
    cooldown_s: Annotated[float, msgspec.Meta(ge=0)] = 60.0  # a lower wish must last this long to drain
    interval_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0  # one round of reading and deciding
    command: str = "python -m workers.{stage}"  # worker command line; `{stage}` is replaced
    spawn: bool = True  # false: only watch, export, log and forget dead consumers (KEDA scales)
    forget_after_leases: Annotated[float, msgspec.Meta(gt=0)] = 10.0  # silent consumers deleted after
    metrics_host: str = "127.0.0.1"
    metrics_port: NonNegative = 9400  # 0: no metrics endpoint
    worker_metrics_port: NonNegative = 0  # first worker metrics port (see launch.metrics_port); 0: none

    def __post_init__(self) -> None:
        if self.min_workers > self.max_workers:
            raise ValueError(
                f"AUTOSCALE_MIN_WORKERS {self.min_workers} > AUTOSCALE_MAX_WORKERS {self.max_workers}"
            )
        for stage in self.scaled_stages():
            self.policy(stage)  # a bad AUTOSCALE_LIMITS entry fails at start, not at the first round
        self.device_lists()

    def device_lists(self) -> dict[str, list[str]]:
        """AUTOSCALE_DEVICES by stage; a stage it does not name: none (its workers inherit DEVICE)."""
        lists: dict[str, list[str]] = {}
        for entry in self.devices:
            name, _, devices = entry.partition("=")
            stage, names = name.strip(), [d.strip() for d in devices.split("+")]
            if stage not in STAGES or not all(names):
                raise ValueError(f"AUTOSCALE_DEVICES entry {entry!r} is not `stage=device[+device...]`")
            if stage in lists:
                raise ValueError(f"AUTOSCALE_DEVICES names {stage} twice; list its devices in one entry")
            lists[stage] = [check_device_name(d, f"AUTOSCALE_DEVICES entry {entry!r}: device") for d in names]
        return lists

    def devices_of(self, stage: str) -> list[str]:
        """The devices the stage's workers take in turn (empty: they keep the inherited DEVICE)."""
        return self.device_lists().get(stage, [])

    def scaled_stages(self) -> list[Stage]:
        return list(self.stages) or stages(self.mode)

    def policy(self, stage: str) -> Policy:
        """The stage's policy: the global numbers, unless AUTOSCALE_LIMITS names the stage."""
        default = Policy(self.min_workers, self.max_workers, self.target_per_worker, self.cooldown_s)
        for entry in self.limits:
            name, _, numbers = entry.partition("=")
            if name.strip() == stage:
                return _parse_limits(entry, numbers, default)
        return default


def _parse_limits(entry: str, numbers: str, default: Policy) -> Policy:
    try:
        values = [int(part) for part in numbers.split(":")]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or not 0 <= values[0] <= values[1] or values[1] < 1 or min(values) < 0:
        raise ValueError(f"AUTOSCALE_LIMITS entry {entry!r} is not `stage=min:max[:target]`, 0 <= min <= max")
    if len(values) == 3 and values[2] < 1:
        raise ValueError(f"AUTOSCALE_LIMITS entry {entry!r}: the target per worker must be at least 1")
    target = values[2] if len(values) == 3 else default.target_per_worker
    return Policy(values[0], values[1], target, default.cooldown_s)
