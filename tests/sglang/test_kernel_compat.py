"""The sgl_kernel CPU compatibility module, in a fresh interpreter (it must act before any import of
sgl_kernel): real pure-Python parts, no common_ops, placeholders that record and raise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.e2e.conftest import ROOT
from workers.engine.sglang.kernel_compat import CALLS_ENV

SCRIPT = """
import logging, sys, torch
logging.basicConfig(level=logging.INFO)
from workers.engine.sglang import kernel_compat
assert kernel_compat.activate()
import sgl_kernel
from sgl_kernel import copy_all_layer_kv_cache_cpu, rmsnorm  # real wrappers from the real files
assert getattr(sgl_kernel, kernel_compat.MARKER)
assert sgl_kernel.common_ops is None
assert rmsnorm.__module__ == "sgl_kernel.elementwise", rmsnorm.__module__
assert not hasattr(torch.ops.sgl_kernel, "fused_qk_norm_cpu")  # optional fast path: absent
assert not hasattr(torch.ops.sgl_kernel, "int8_scaled_mm")  # not a *_cpu name: absent
op = torch.ops.sgl_kernel.rmsnorm_cpu  # looked up fine ...
try:
    op(torch.zeros(2), torch.ones(2), 1e-6)  # ... but raises when called
except NotImplementedError as exc:
    print("raised:", exc)
else:
    sys.exit("the placeholder did not raise")
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="the compatibility module is off with a CUDA device")
def test_placeholders_record_and_raise(tmp_path: Path, placeholder_calls: Path) -> None:
    calls = tmp_path / "calls.txt"
    env = {**os.environ, CALLS_ENV: str(calls), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "raised: torch.ops.sgl_kernel.rmsnorm_cpu was called, but it is a placeholder" in done.stdout
    assert "sgl_kernel CPU compatibility is active" in done.stderr  # says so in the log
    assert "without common_ops" in done.stderr
    [line] = calls.read_text().splitlines()
    assert line.endswith("torch.ops.sgl_kernel.rmsnorm_cpu") and "pid=" in line
