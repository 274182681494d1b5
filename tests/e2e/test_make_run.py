"""`make run` as a new user types it: it serves a chat request with an image, and Ctrl-C during a
stream ends that stream with an error event, stops every process it started within QUEUE_GRACE_S
+ 5 s, Redis last, with no traceback; a port already taken stops it with one clear line."""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from ops.redis import free_port
from workers.media import synth

ROOT = Path(__file__).resolve().parents[2]
GRACE_S = 4


def read_stream(url: str, frames: list[str]) -> None:
    """A long streamed request; every `data:` frame lands in `frames` as it arrives."""
    body = {"messages": [{"role": "user", "content": "Go on"}], "max_tokens": 2000, "ignore_eos": True}
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=60
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                frames.append(line[6:])


def exit_times(processes: list[psutil.Process], within: float) -> dict[int, float]:
    """When each process was first seen gone (monotonic seconds), polled every 20 ms; processes seen
    gone in the same poll share its time, so their order within it is not made up."""
    ended: dict[int, float] = {}
    deadline = time.monotonic() + within
    while len(ended) < len(processes) and time.monotonic() < deadline:
        now = time.monotonic()
        for process in processes:
            if process.pid not in ended and not process.is_running():
                ended[process.pid] = now
        time.sleep(0.02)
    assert len(ended) == len(processes), [p.cmdline() for p in processes if p.pid not in ended]
    return ended


def test_make_run_serves_an_image_request_and_stops_cleanly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MODE": "agg",
        "PORT": str(free_port()),
        "TRIPTYCH_CACHE": str(tmp_path),
        "VENV": str(Path(sys.executable).parent.parent),
        "LOG_LEVEL": "WARNING",
        "ENGINE": "mock",  # a stream that lasts (20 ms a token) when Ctrl-C comes
        "MOCK_DECODE_STEP_S": "0.02",
        "QUEUE_GRACE_S": str(GRACE_S),
    }
    env.pop("REDIS_URL", None)
    env.pop("MODEL", None)
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"VENV={env['VENV']}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    family = psutil.Process(make.pid)
    try:
        assert make.stdout is not None
        url = None
        deadline = time.monotonic() + 300
        output: list[str] = []
        while url is None and time.monotonic() < deadline:
            line = make.stdout.readline()
            if not line:
                break
            output.append(line)
            found = re.search(r"http://[\d.]+:\d+", line)
            if found and line.startswith("Ready: "):
                url = found.group(0)
        assert url is not None, "".join(output)
        started = family.children(recursive=True)
        redis = next(p for p in started if "redis-server" in " ".join(p.cmdline()))
        served = [p.pid for p in started if re.search(r"-m (app|workers\.)", " ".join(p.cmdline()))]
        assert len(served) == 2  # the front door and the agg worker
        image = "data:image/png;base64," + base64.b64encode(synth.image_bytes("PNG", 64, 64)).decode()
        body = {
            "max_tokens": 8,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": image}},
                        {"type": "text", "text": "Hi"},
                    ],
                }
            ],
        }
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["completion_tokens"] > 0

        frames: list[str] = []
        streaming = threading.Thread(target=read_stream, args=(url, frames), daemon=True)
        streaming.start()
        while not any('"content"' in frame for frame in frames):
            time.sleep(0.05)
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        interrupted = time.monotonic()
        ended = exit_times(started, within=GRACE_S + 15)
        assert make.wait(timeout=30) in (0, 2, -signal.SIGINT, 130)
        rest = make.stdout.read()
        assert max(ended.values()) - interrupted < GRACE_S + 5, ended
        assert ended[redis.pid] >= max(ended[pid] for pid in served)  # Redis after the front door and worker
        streaming.join(timeout=10)
        assert '"server_shutting_down"' in frames[-2] and frames[-1] == "[DONE]", frames[-3:]
        assert "Traceback" not in rest and "Redis unavailable" not in rest, rest
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()


def test_make_run_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PORT": str(port), "TRIPTYCH_CACHE": str(tmp_path)}
        venv = str(Path(sys.executable).parent.parent)
        done = subprocess.run(
            ["make", "--no-print-directory", "run", f"VENV={venv}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert f"port {port} is already in use" in output and "Ready:" not in output, output
