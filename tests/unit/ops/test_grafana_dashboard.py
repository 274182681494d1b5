"""The Grafana dashboard (ops/grafana/triptych.json) is valid and only queries metrics the processes
export: the front door (app/metrics.py), the workers (queues/metrics.py), the autoscaler."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

import queues.metrics  # noqa: F401  (registers the workers' metrics in the default registry)
from app.metrics import FrontDoorMetrics
from ops.autoscale.metrics import AutoscaleMetrics

DASHBOARD = Path(__file__).resolve().parents[3] / "ops" / "grafana" / "triptych.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
METRIC = re.compile(r"\btriptych_[a-z_]+\b")


def exported(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry's metrics expose, labelled or not."""
    return {
        family.name + suffix for family in registry.collect() for suffix in SUFFIXES.get(family.type, ("",))
    }


def expressions(dashboard: dict[str, Any]) -> Iterator[str]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


def queried() -> set[str]:
    """Every triptych metric name the dashboard's queries use."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {name for expr in expressions(dashboard) for name in METRIC.findall(expr)}


def test_dashboard_is_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24 and box["h"] > 0, panel["title"]
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
        assert panel["type"] == "row" or refs, f"panel {panel['title']!r} queries nothing"


def test_every_queried_metric_is_exported():
    known = exported(FrontDoorMetrics().registry) | exported(AutoscaleMetrics().registry) | exported(REGISTRY)
    used = queried()
    assert used, "no triptych metric is queried"
    assert used <= known, sorted(used - known)


def test_every_front_door_and_autoscaler_metric_is_shown():
    used = queried()
    for registry in (FrontDoorMetrics().registry, AutoscaleMetrics().registry):
        families = {name for name in exported(registry) if not name.endswith(("_sum", "_count"))}
        assert families <= used, sorted(families - used)
