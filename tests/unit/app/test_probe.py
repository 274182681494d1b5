"""The readiness probe against a small local server: exit 0 only on 200, and it sends the API key."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import probe


@pytest.fixture
def server() -> Iterator[tuple[int, dict[str, object]]]:
    state: dict[str, object] = {"status": 200, "auth": None}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["auth"] = self.headers.get("Authorization")
            self.send_response(int(state["status"]))  # type: ignore[call-overload]
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], state
    httpd.shutdown()
    httpd.server_close()


def test_ready_exits_zero_and_sends_the_first_key(server, monkeypatch: pytest.MonkeyPatch) -> None:
    port, state = server
    monkeypatch.setenv("PORT", str(port))
    monkeypatch.setenv("API_KEYS", " k1 , k2")
    assert probe.main() == 0
    assert state["auth"] == "Bearer k1"


@pytest.mark.parametrize("status", [503, 401])
def test_not_ready_exits_one(server, monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    port, state = server
    state["status"] = status
    monkeypatch.setenv("PORT", str(port))
    monkeypatch.delenv("API_KEYS", raising=False)
    assert probe.main() == 1
    assert state["auth"] is None


def test_a_bad_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_TIMEOUT_S", "soon")
    with pytest.raises(ValueError, match="PROBE_TIMEOUT_S='soon'"):
        probe.main()


def test_the_probe_imports_nothing_heavy() -> None:
    """Supervisors run it every few seconds: no torch, transformers, starlette or redis."""
    heavy = ("torch", "transformers", "starlette", "redis")
    code = f"import sys, app.probe; print([m for m in {heavy!r} if m in sys.modules])"
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
