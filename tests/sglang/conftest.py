"""The sglang backend's tests: run by `make test-sglang` (ops/test_sglang.sh) in `.venv-sglang`.

Where sglang is not installed (the main virtualenv) nothing here is collected. Every sglang
process the tests start records calls of sgl_kernel's placeholders in one file per session
(`TRIPTYCH_SGL_KERNEL_CALLS`, inherited by sglang's scheduler and by the system's workers); each
module checks at its end that the file is still empty.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers.engine.sglang.kernel_compat import CALLS_ENV

if importlib.util.find_spec("sglang") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def placeholder_calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The file sgl_kernel placeholder calls are appended to, set before any sglang starts."""
    path = tmp_path_factory.mktemp("sgl_kernel") / "placeholder-calls.txt"
    path.touch()
    previous = os.environ.get(CALLS_ENV)
    os.environ[CALLS_ENV] = str(path)
    yield path
    if previous is None:
        os.environ.pop(CALLS_ENV, None)
    else:
        os.environ[CALLS_ENV] = previous


@pytest.fixture(scope="module", autouse=True)
def no_placeholder_called(placeholder_calls: Path) -> Iterator[None]:
    yield
    calls = placeholder_calls.read_text()
    assert calls == "", f"sgl_kernel placeholders were called (CPU compatibility is not enough):\n{calls}"
