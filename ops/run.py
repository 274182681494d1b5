"""`make run`: serve on the embedded defaults with one command.

Builds the tiny model when MODEL is not given, starts a private Redis when REDIS_URL is not
given, starts the processes of the mode's Procfile (MODE=agg|e-pd|e-p-d, default e-p-d) under
honcho, waits until /ready answers, then prints `Ready: http://127.0.0.1:PORT` and a curl command
that sends an image. Ctrl-C stops everything, Redis included. TRIPTYCH_CACHE moves the directory
where the tiny model is built (default `.cache/`).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shlex
import sys
from pathlib import Path

from ops.processes import MODES, ROOT, NotReady, start_mode, stop, wait_ready
from ops.redis import RedisServer


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def fail(message: str) -> None:
    print(f"make run failed: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def tiny_model() -> Path:
    from ops import tiny_model as builder

    cache = Path(os.environ.get("TRIPTYCH_CACHE", ROOT / ".cache"))
    target = cache / "run" / "tiny-qwen2-vl"
    if not (target / "config.json").exists():
        step(f"building the tiny qwen2-vl model into {target}")
        builder.build("qwen2-vl", target)
    return target


def sample_image_data_url() -> str:
    from PIL import Image

    image = Image.new("RGB", (64, 64))
    for x in range(64):
        for y in range(64):
            image.putpixel((x, y), (x * 4, y * 4, 128))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def curl_example(url: str, model_id: str) -> str:
    content = [
        {"type": "image_url", "image_url": {"url": sample_image_data_url()}},
        {"type": "text", "text": "What is in this image?"},
    ]
    messages = [{"role": "user", "content": content}]
    body = json.dumps({"model": model_id, "max_tokens": 16, "messages": messages})
    return f"curl -s {url}/v1/chat/completions -H 'Content-Type: application/json' -d {shlex.quote(body)}"


def main() -> None:
    mode = os.environ.get("MODE", "e-p-d")
    if mode not in MODES:
        fail(f"MODE={mode} is not one of {', '.join(MODES)}")
    port = int(os.environ.get("PORT", "8000"))
    model = os.environ.get("MODEL") or str(tiny_model())
    if not Path(model, "config.json").exists():
        fail(f"MODEL={model} is not a checkpoint directory (no config.json)")
    redis: RedisServer | None = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        step("starting a private redis-server")
        redis = RedisServer().start()
        redis_url = redis.url
        print(f"    redis-server {'.'.join(map(str, redis.version))} at {redis_url}", flush=True)
    step(f"starting the {mode} processes (ops/Procfile.{mode})")
    proc = start_mode(mode, {"MODEL": model, "REDIS_URL": redis_url, "PORT": str(port)})
    url = f"http://127.0.0.1:{port}"
    try:
        step("waiting for every stage to be ready (models load)")
        try:
            wait_ready(url, proc, float(os.environ.get("READY_TIMEOUT_S", "300")))
        except NotReady as exc:
            fail(f"{exc}; see the log above")
        model_id = os.environ.get("SERVED_MODEL_NAME") or Path(model).name
        print(f"\nReady: {url}\n", flush=True)
        print("Try it:\n" + curl_example(url, model_id) + "\n", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop(proc)
        if redis is not None:
            redis.stop()
        step("stopped")


if __name__ == "__main__":
    main()
