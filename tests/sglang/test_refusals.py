"""What `ENGINE=sglang` cannot serve is refused at start with the reason, never served by HF."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, launch
from tests.models import tiny_model_dir
from workers.engine.sglang.support import PD_ON_CPU, SglangUnsupported, check_supported


def start_worker(stage: str, model: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENGINE": "sglang", "MODEL": str(model), "REDIS_URL": "redis://127.0.0.1:1/0"}
    env.pop("PORT", None)
    command = [sys.executable, "-m", f"workers.{stage}"]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("stage", ["prefill", "decode"])
def test_e_p_d_stages_refuse_to_start_on_cpu(stage: str) -> None:
    done = start_worker(stage, tiny_model_dir("qwen2-vl"))
    assert done.returncode != 0
    assert "SglangUnsupported" in done.stderr and PD_ON_CPU in done.stderr, done.stderr[-2000:]


def test_e_p_d_system_does_not_start(capfd: pytest.CaptureFixture[str]) -> None:
    with (
        pytest.raises(RuntimeError, match="exited"),
        launch("e-p-d", tiny_model_dir("qwen2-vl"), {"ENGINE": "sglang", "LOG_LEVEL": "WARNING"}),
    ):
        pass
    captured = capfd.readouterr()
    assert "cannot run the prefill stage (MODE=e-p-d)" in captured.out + captured.err


def test_audio_family_refuses_to_start() -> None:
    done = start_worker("agg", tiny_model_dir("qwen2-audio"))
    assert done.returncode != 0
    assert "serves qwen2-vl and qwen2.5-vl checkpoints, not qwen2-audio" in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("family", ["llava", "qwen2-audio"])
def test_unwired_families_are_refused(family: str) -> None:
    with pytest.raises(SglangUnsupported, match=f"not {family}"):
        check_supported("agg", family, "cpu")


def test_e_p_d_on_a_gpu_names_what_is_missing() -> None:
    with pytest.raises(SglangUnsupported, match="not wired"):
        check_supported("prefill", "qwen2-vl", "cuda")
