"""The GPU check's dry run: every step of `python -m ops.gpu_check` on the CPU with small sizes, so the
script that waits for the first GPU cannot rot."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ops.gpu_check import ROOT


@pytest.mark.slow
def test_every_step_runs_on_the_cpu() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ops.gpu_check", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = out.stdout[out.stdout.rindex("GPU check on cpu (dry run)") :]
    assert out.returncode == 0, summary + out.stderr[-2000:]
    rows = [line.split() for line in summary.splitlines()[2:] if line.strip()]
    assert len(rows) == 3 and all("ok" in row for row in rows), summary
