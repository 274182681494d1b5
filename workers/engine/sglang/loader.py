"""`load_sglang_engine`: the engine a stage worker gets with `ENGINE=sglang`.

- agg: sglang serves everything; `encode` turns our loaded media into pixel values for sglang's
  own vision tower.
- pd: sglang prefills and decodes from the embeddings our encode stage published.
- encode (e-pd): the transformers engine's vision tower makes the embeddings (the design's encode
  stage): `load_sglang_engine` returns None and the worker builds the transformers engine.
- prefill / decode (e-p-d), and families the backend does not serve: refused (`support`).

`ENGINE_SGLANG_ARGS` (a JSON object) adds or overrides `sglang.Engine` arguments, e.g.
`{"enable_deterministic_inference": true}` on a GPU so that seeded sampling repeats.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
from transformers import AutoConfig

from workers.devices import Placement, fixed_kv_tokens, place
from workers.engine.base import Engine
from workers.engine.model_info import ModelInfo
from workers.engine.sglang import kernel_compat
from workers.engine.sglang.engine import SglangEngine
from workers.engine.sglang.media import PixelEncoder, VisionLayout
from workers.engine.sglang.support import check_supported
from workers.settings import WorkerSettings

log = logging.getLogger(__name__)

ARGS_ENV = "ENGINE_SGLANG_ARGS"


async def load_sglang_engine(
    settings: WorkerSettings, info: ModelInfo, stage: str, placement: Placement | None = None
) -> Engine | None:
    """The stage's sglang engine; None for the encode stage, which runs the transformers engine.
    `placement`: the checked DEVICE and DTYPE (`workers.devices.place`), checked here if not given."""
    check_supported(stage, info.family, settings.device)
    if stage == "encode":
        log.info("ENGINE=sglang, encode stage: the transformers vision tower makes the embeddings for sglang")
        return None
    runtime = start_sglang(engine_arguments(settings, placement or place(settings)))
    layout = VisionLayout.of(AutoConfig.from_pretrained(settings.model), info.family)
    if stage == "agg":
        encoder = PixelEncoder(settings.model, timed_video=layout.tokens_per_second > 0)
        return SglangEngine(runtime, info, layout, "pixels", encoder)
    return SglangEngine(runtime, info, layout, "embeddings", None)


def engine_arguments(settings: WorkerSettings, placement: Placement) -> dict[str, Any]:
    device = placement.device
    arguments: dict[str, Any] = {
        "model_path": settings.model,
        "device": device.type,
        "dtype": str(placement.dtype).removeprefix("torch."),
        "max_running_requests": settings.max_batch_size,
        "log_level": "warning",
    }
    kv_tokens = fixed_kv_tokens(settings, device.type)
    if kv_tokens is not None:  # on CPU always: sglang reserves most of the RAM otherwise
        arguments["max_total_tokens"] = kv_tokens
    else:  # MAX_KV_TOKENS=auto on a GPU: sglang sizes its KV pool within the same share of it
        arguments["mem_fraction_static"] = settings.gpu_memory_fraction
    if device.type == "cpu":
        arguments["disable_cuda_graph"] = True
    elif device.index is not None:
        arguments["base_gpu_id"] = device.index
    extra = json.loads(os.environ.get(ARGS_ENV) or "{}")
    if not isinstance(extra, dict):
        raise ValueError(f"{ARGS_ENV} must be a JSON object of sglang.Engine arguments")
    return {**arguments, **extra}


def start_sglang(arguments: dict[str, Any]) -> Any:
    """Start sglang in this process (blocks until its scheduler is ready, ~30 s on CPU)."""
    kernel_compat.activate()  # before sglang is imported; a no-op with a CUDA device
    # logprobs of the model's distribution, as the transformers engine reports them
    os.environ.setdefault("SGLANG_RETURN_ORIGINAL_LOGPROB", "1")
    try:
        sglang = importlib.import_module("sglang")  # the optional [sglang] install; untyped
    except ImportError as exc:
        raise RuntimeError(f"ENGINE=sglang needs sglang: pip install -e '.[sglang]' ({exc})") from exc
    log.info("starting sglang %s: %s", sglang.__version__, arguments)
    with _scheduler_threads(arguments["device"]):
        runtime = sglang.Engine(**arguments)
    # sglang installs its SIGTERM handler on the loop when it first serves; do it now, so the
    # worker's own handler (installed after the engine is built) replaces it and shutdown drains.
    runtime.tokenizer_manager.auto_create_handle_loop()
    return runtime


@contextlib.contextmanager
def _scheduler_threads(device: str) -> Iterator[None]:
    """On CPU, sglang's scheduler (spawned now, it reads the environment) gets this worker's torch
    threads (TORCH_THREADS) unless OMP_NUM_THREADS is set: with torch's default, every core, it spins
    a core and stalls when the cores are shared (docs/SGLANG.md)."""
    if device != "cpu" or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    os.environ["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    try:
        yield
    finally:
        del os.environ["OMP_NUM_THREADS"]
