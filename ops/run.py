"""`make run`: serve on the embedded defaults with one command.

Builds the tiny model when MODEL is not given, starts a private Redis when REDIS_URL is not
given, starts the processes of the mode's Procfile (MODE=agg|e-pd|e-p-d, default e-p-d; with
AUTOSCALE=1 the front door and `ops.autoscale`, which starts the workers) under `ops.procfile`,
waits until its own front door answers /ready, then prints `Ready: http://127.0.0.1:PORT` and a
curl command that sends an image. A port already in use stops it before anything starts.

Ctrl-C stops the front door and the workers first (they drain: QUEUE_GRACE_S), then Redis.
Its own settings (`LaunchSettings`): TRIPTYCH_CACHE moves the directory where the tiny model is
built (default `.cache/`), READY_TIMEOUT_S bounds the wait for /ready. The variables it passes on
(MODE, HOST, PORT, MODEL, REDIS_URL ...) it reads as they are, and AUTOSCALE picks the Procfile.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shlex
import socket
import sys
import uuid
from pathlib import Path
from typing import NoReturn

import msgspec

from ops.processes import ROOT, NotReady, wait_ready
from ops.procfile import Runner, StopSignals, parse
from ops.redis import RedisServer
from queues.config import env_names, from_env
from queues.types import MODES

RANDOM_WEIGHTS = """The model is a tiny Qwen2-VL with random weights, built to test the system: its answers
are gibberish. To serve a real checkpoint: MODEL=/path/to/checkpoint make run (README: Configuration).
"""


class LaunchSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
    triptych_cache: str = ""  # empty: .cache/ in the checkout
    ready_timeout_s: float = 300.0


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def fail(message: str) -> NoReturn:
    print(f"make run failed: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def tiny_model(cache: Path) -> Path:
    from ops import tiny_model as builder

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


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def main() -> None:
    try:
        settings = from_env(LaunchSettings)
    except ValueError as exc:
        fail(str(exc))
    mode = os.environ.get("MODE", "e-p-d")
    if mode not in MODES:
        fail(f"MODE={mode} is not one of {', '.join(MODES)}")
    autoscale = os.environ.get("AUTOSCALE", "") not in ("", "0", "false")
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    if port_in_use(host, port):
        fail(f"port {port} is already in use on {host}; free it or choose another: PORT={port + 1} make run")
    own_model = not os.environ.get("MODEL")
    cache = Path(settings.triptych_cache or ROOT / ".cache")
    model = str(tiny_model(cache)) if own_model else os.environ["MODEL"]
    if not Path(model, "config.json").exists():
        fail(f"MODEL={model} is not a checkpoint directory (no config.json)")
    redis: RedisServer | None = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        step("starting a private redis-server")
        redis = RedisServer(die_with_parent=True).start()
        redis_url = redis.url
        print(f"    redis-server {'.'.join(map(str, redis.version))} at {redis_url}", flush=True)
    procfile = ROOT / "ops" / ("Procfile.autoscale" if autoscale else f"Procfile.{mode}")
    instance = uuid.uuid4().hex[:12]
    env = {
        **os.environ,
        "MODE": mode,
        "MODEL": model,
        "REDIS_URL": redis_url,
        "INSTANCE_ID": instance,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }
    if autoscale:  # worker metrics on 9500 + 100 i + n - 1 (i-th stage, n-th worker)
        env.setdefault("AUTOSCALE_WORKER_METRICS_PORT", "9500")
    signals = StopSignals()
    step(f"starting the {'autoscaled ' if autoscale else ''}{mode} processes ({procfile.relative_to(ROOT)})")
    runner = Runner(parse(procfile.read_text()), env, port, ROOT).start()
    url = f"http://{host}:{port}"
    code = 0
    try:
        step("waiting for every stage to be ready (models load)")
        try:
            wait_ready(url, runner.exited_name, settings.ready_timeout_s, instance=instance)
        except NotReady as exc:
            runner.stop("not ready")
            fail(f"{exc}; see the log above")
        model_id = os.environ.get("SERVED_MODEL_NAME") or Path(model).name
        print(f"\nReady: {url}\n", flush=True)
        print("Try it:\n" + curl_example(url, model_id) + "\n", flush=True)
        if own_model:
            print(RANDOM_WEIGHTS, flush=True)
        print("Ctrl-C stops everything (the workers drain first, then Redis).", flush=True)
        code = runner.run_until(signals.reason)
    finally:
        runner.stop("stopping")
        if redis is not None:
            redis.stop()
        step("stopped")
    sys.exit(code)


if __name__ == "__main__":
    main()
