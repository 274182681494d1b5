"""Readiness probe for process supervisors: `python -m app.probe` exits 0 when GET /ready says ready.

It sends the first of `API_KEYS` (when set), since with keys enabled /ready is protected like every
route but /health, and a Kubernetes httpGet probe cannot read a key from a Secret. It imports no
more than it needs (msgspec, queues.config): supervisors run it every few seconds.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

import msgspec

from queues.config import env_names, from_env


class ProbeSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
    port: int = 8000  # the front door's (AppSettings.port)
    api_keys: list[str] = []
    probe_timeout_s: float = 2.0


def main() -> int:
    settings = from_env(ProbeSettings)
    request = urllib.request.Request(f"http://127.0.0.1:{settings.port}/ready")
    if settings.api_keys:
        request.add_header("Authorization", f"Bearer {settings.api_keys[0]}")
    try:
        with urllib.request.urlopen(request, timeout=settings.probe_timeout_s):
            return 0
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
