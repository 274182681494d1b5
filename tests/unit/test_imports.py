"""The processes that do not run a model start without torch or transformers.

import-linter (`make lint`, contracts in pyproject.toml) checks the static imports; this checks what
an import really loads, lazy imports included, in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "transformers")
# the front door (python -m app imports app.__main__), its readiness probe, the autoscaler
LIGHT = ("app.__main__", "app.server", "app.probe", "ops.autoscale.__main__", "queues.checkpoint")


def loaded_after(module: str) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("module", LIGHT)
def test_no_model_libraries_in(module: str) -> None:
    assert loaded_after(module) == []


def test_the_check_sees_them_where_they_are() -> None:
    assert {"torch", "transformers"} <= set(loaded_after("workers.engine.model_info"))
