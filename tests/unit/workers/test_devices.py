"""DEVICE, DTYPE and MAX_KV_TOKENS: the settings, the checks against the machine, the KV budget.

This machine has no GPU, so every CUDA path is tested by monkeypatching torch's CUDA queries
(`torch.cuda.is_available`, `device_count`, `set_device`, `is_bf16_supported`, `mem_get_info`,
`memory_reserved`): that is the only way to run them here. What they check is our side of each
answer; that torch answers them as assumed on a real GPU has not been run yet.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig

from queues.config import ConfigError, from_env
from tests.models import FAMILIES, tiny_model_dir
from workers.devices import (
    DeviceError,
    Placement,
    check_device,
    choose_dtype,
    fixed_kv_tokens,
    kv_bytes_of,
    kv_tokens_on_device,
    place,
    resolve_dtype,
)
from workers.engine.engine import batch_cache_for
from workers.engine.limits import MIN_KV_TOKENS, kv_bytes_per_token, kv_tokens_for_memory
from workers.engine.loader import load_engine
from workers.engine.sglang.loader import engine_arguments
from workers.settings import DEFAULT_KV_TOKENS, WorkerSettings

ROOT = Path(__file__).resolve().parents[3]
GIB = 1 << 30


def settings(**env: str) -> WorkerSettings:
    return from_env(WorkerSettings, {"MODEL": "m", **env})


def fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int, *, bf16_native: bool = True) -> list[object]:
    """Pretend this process sees `count` GPUs; returns the devices `set_device` was called with."""
    chosen: list[object] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16_native or including_emulation
    )
    return chosen


# ---- the settings ------------------------------------------------------------------------------


def test_defaults() -> None:
    s = settings()
    assert (s.device, s.dtype, s.max_kv_tokens, s.gpu_memory_fraction) == ("cpu", "auto", "auto", 0.9)


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_names(device: str) -> None:
    assert settings(DEVICE=device).device == device


@pytest.mark.parametrize("device", ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:0,cuda:1", "mps"])
def test_other_device_names_are_configuration_errors(device: str) -> None:
    with pytest.raises(ConfigError, match=f"DEVICE={device!r}: expected cpu, cuda or cuda:N"):
        settings(DEVICE=device)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAX_KV_TOKENS": "lots"}, r"MAX_KV_TOKENS='lots': .*\(one of: auto, an integer\)"),
        ({"MAX_KV_TOKENS": "0"}, r"MAX_KV_TOKENS='0': Expected `int` >= 1"),
        ({"DTYPE": "half"}, r"DTYPE='half': .*\(one of: auto, "),
        ({"GPU_MEMORY_FRACTION": "0"}, r"GPU_MEMORY_FRACTION='0': Expected `float` > 0"),
        ({"GPU_MEMORY_FRACTION": "1.5"}, r"GPU_MEMORY_FRACTION='1.5': Expected `float` <= 1"),
    ],
)
def test_bad_values_name_their_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^bad configuration: {message}"):
        settings(**env)


def test_max_kv_tokens_takes_a_number_or_auto() -> None:
    assert settings(MAX_KV_TOKENS="4096").max_kv_tokens == 4096
    assert settings(MAX_KV_TOKENS="AUTO").max_kv_tokens == "auto"


# ---- DEVICE ------------------------------------------------------------------------------------


def test_cpu_needs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 0)
    assert check_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    fake_gpus(monkeypatch, 0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(DeviceError, match=f"^DEVICE={name}: this process sees no CUDA GPU") as caught:
        check_device(name)
    assert "\n" not in str(caught.value)


def test_the_refusal_shows_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(DeviceError, match="CUDA_VISIBLE_DEVICES=''"):
        check_device("cuda")


def test_an_index_past_the_gpus_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 2)
    assert check_device("cuda") == torch.device("cuda")
    assert check_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match=r"^DEVICE=cuda:2: this process sees 2 GPUs \(cuda:0 to cuda:1"):
        check_device("cuda:2")


def test_a_device_error_is_a_configuration_error() -> None:
    assert issubclass(DeviceError, ConfigError)  # the worker stops with its one line (workers/stage.py)


def test_place_makes_an_indexed_gpu_the_current_one(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = fake_gpus(monkeypatch, 2)
    assert place(settings(DEVICE="cuda:1")) == Placement(torch.device("cuda", 1), torch.bfloat16)
    assert place(settings(DEVICE="cuda", DTYPE="float16")) == Placement(torch.device("cuda"), torch.float16)
    assert chosen == [torch.device("cuda", 1)]  # `cuda` is the current GPU already


def test_place_logs_the_chosen_dtype(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="workers.devices"):
        assert place(settings()) == Placement(torch.device("cpu"), torch.float32)
    assert "device cpu, dtype float32 (DEVICE=cpu, DTYPE=auto)" in caplog.text


# ---- DTYPE -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "device", "native", "runs", "expected"),
    [
        ("auto", "cpu", False, False, torch.float32),
        ("float16", "cpu", False, False, torch.float16),  # torch runs it on CPU (module docstring)
        ("bfloat16", "cpu", False, False, torch.bfloat16),
        ("auto", "cuda", True, True, torch.bfloat16),
        ("auto", "cuda", False, True, torch.float16),  # emulated bfloat16 is not chosen
        ("auto", "cuda", False, False, torch.float16),
        ("bfloat16", "cuda", False, True, torch.bfloat16),  # asked for: emulated, with a warning
        ("float32", "cuda", True, True, torch.float32),
        ("float16", "cuda", True, True, torch.float16),
    ],
)
def test_dtype_choice(requested: str, device: str, native: bool, runs: bool, expected: torch.dtype) -> None:
    assert choose_dtype(requested, device, bf16_native=native, bf16_runs=runs) == expected  # type: ignore[arg-type]


def test_bfloat16_where_the_gpu_cannot_run_it_is_refused() -> None:
    with pytest.raises(DeviceError, match=r"^DTYPE=bfloat16: this GPU cannot compute in bfloat16"):
        choose_dtype("bfloat16", "cuda", bf16_native=False, bf16_runs=False)


def test_resolve_dtype_asks_torch_about_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, 1, bf16_native=False)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bfloat16", torch.device("cuda")) == torch.bfloat16
    fake_gpus(monkeypatch, 1, bf16_native=True)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32


# ---- MAX_KV_TOKENS -----------------------------------------------------------------------------


def test_bytes_per_kv_position() -> None:
    # a 7B-class model with grouped KV heads: 28 layers, 4 KV heads of 128, bfloat16
    assert kv_bytes_per_token(layers=28, kv_heads=4, head_dim=128, dtype_bytes=2) == 57_344


@pytest.mark.parametrize("family", FAMILIES)
def test_bytes_per_position_match_the_engines_batch_cache(family: str) -> None:
    model = tiny_model_dir(family)
    engine = load_engine(model, dtype=torch.bfloat16)
    cache = batch_cache_for(engine.family)
    expected = kv_bytes_per_token(cache.num_layers, cache.num_kv_heads, cache.head_dim, cache.dtype.itemsize)
    assert kv_bytes_of(AutoConfig.from_pretrained(model).get_text_config(), torch.bfloat16) == expected


def test_bytes_per_position_without_head_dim_or_kv_heads() -> None:
    class Text:
        num_hidden_layers, num_attention_heads, hidden_size = 2, 8, 512
        num_key_value_heads = None

    assert kv_bytes_of(Text(), torch.float16) == 2 * 2 * 8 * 64 * 2


@pytest.mark.parametrize(
    ("free", "total", "used", "fraction", "expected"),
    [
        (60 * GIB, 80 * GIB, 16 * GIB, 0.9, (72 - 16) * GIB // 57_344),  # the fraction binds
        (20 * GIB, 80 * GIB, 16 * GIB, 0.9, 20 * GIB // 57_344),  # other processes hold the rest
        (60 * GIB, 80 * GIB, 16 * GIB, 1.0, 60 * GIB // 57_344),
        (60 * GIB, 80 * GIB, 75 * GIB, 0.9, 0),  # the model alone is past the fraction
    ],
)
def test_kv_tokens_for_memory(free: int, total: int, used: int, fraction: float, expected: int) -> None:
    assert (
        kv_tokens_for_memory(
            free_bytes=free, total_bytes=total, used_bytes=used, fraction=fraction, bytes_per_token=57_344
        )
        == expected
    )


def fake_memory(monkeypatch: pytest.MonkeyPatch, free: int, total: int, used: int) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, total))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: used)


def test_auto_on_a_gpu_is_measured_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_memory(monkeypatch, free=60 * GIB, total=80 * GIB, used=16 * GIB)
    with caplog.at_level("INFO", logger="workers.devices"):
        tokens = kv_tokens_on_device(torch.device("cuda", 0), 0.9, 57_344)
    assert tokens == (72 - 16) * GIB // 57_344
    assert f"MAX_KV_TOKENS=auto: {tokens} KV positions" in caplog.text


def test_auto_with_no_room_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_memory(monkeypatch, free=4 * GIB, total=80 * GIB, used=72 * GIB - 1000 * 57_344)
    with pytest.raises(
        DeviceError, match=f"^MAX_KV_TOKENS=auto: room for 1000 KV positions, fewer than {MIN_KV_TOKENS}"
    ) as caught:
        kv_tokens_on_device(torch.device("cuda", 0), 0.9, 57_344)
    assert "GPU_MEMORY_FRACTION=0.9" in str(caught.value) and "\n" not in str(caught.value)


def test_what_is_known_before_loading() -> None:
    assert fixed_kv_tokens(settings(), "cpu") == DEFAULT_KV_TOKENS
    assert fixed_kv_tokens(settings(), "cuda") is None  # measured once the model is on the GPU
    assert fixed_kv_tokens(settings(MAX_KV_TOKENS="8192"), "cuda") == 8192


def test_sglang_arguments() -> None:
    cpu = engine_arguments(settings(), Placement(torch.device("cpu"), torch.float32))
    assert (cpu["dtype"], cpu["max_total_tokens"], cpu["device"]) == ("float32", DEFAULT_KV_TOKENS, "cpu")
    gpu = engine_arguments(
        settings(GPU_MEMORY_FRACTION="0.5"), Placement(torch.device("cuda", 1), torch.bfloat16)
    )
    assert (gpu["dtype"], gpu["mem_fraction_static"], gpu["base_gpu_id"]) == ("bfloat16", 0.5, 1)
    assert "max_total_tokens" not in gpu  # auto on a GPU: sglang sizes its pool within the fraction
    fixed = engine_arguments(settings(MAX_KV_TOKENS="4096"), Placement(torch.device("cuda"), torch.float16))
    assert fixed["max_total_tokens"] == 4096 and "mem_fraction_static" not in fixed


# ---- a worker that cannot start ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEVICE": "cuda:99"}, "DEVICE=cuda:99: this process sees "),  # no GPU here; fewer than 100 anywhere
        ({"DEVICE": "gpu"}, "bad configuration: DEVICE='gpu': expected cpu, cuda or cuda:N"),
    ],
)
def test_a_worker_that_cannot_start_says_why_in_one_line(env: dict[str, str], message: str) -> None:
    run_env = {
        **os.environ,
        "MODEL": str(tiny_model_dir("qwen2-vl")),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        **env,
    }
    run_env.pop("WORKER_METRICS_PORT", None)
    run_env.pop("PORT", None)
    done = subprocess.run(
        [sys.executable, "-m", "workers.decode"],
        cwd=ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "the decode worker cannot start" in lines[0]
