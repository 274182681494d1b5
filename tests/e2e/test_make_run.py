"""`make run` as a new user types it: it serves a chat request with an image, and Ctrl-C stops
every process it started, Redis included."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from ops.redis import free_port
from workers.media import synth

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_serves_an_image_request_and_stops_cleanly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MODE": "agg",
        "PORT": str(free_port()),
        "TRIPTYCH_CACHE": str(tmp_path),
        "VENV": str(Path(sys.executable).parent.parent),
        "LOG_LEVEL": "WARNING",
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
        assert any("redis-server" in " ".join(p.cmdline()) for p in started)
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
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        assert make.wait(timeout=90) in (0, 2, -signal.SIGINT, 130)
        _, alive = psutil.wait_procs(started, timeout=30)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
