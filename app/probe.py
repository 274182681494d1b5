"""Readiness probe for process supervisors: `python -m app.probe` exits 0 when GET /ready says ready.

It sends the first of `API_KEYS` (when set), since with keys enabled /ready is protected like every
route but /health, and a Kubernetes httpGet probe cannot read a key from a Secret.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(f"http://127.0.0.1:{port}/ready")
    keys = [key for key in os.environ.get("API_KEYS", "").split(",") if key.strip()]
    if keys:
        request.add_header("Authorization", f"Bearer {keys[0].strip()}")
    try:
        with urllib.request.urlopen(request, timeout=float(os.environ.get("PROBE_TIMEOUT_S", "2"))):
            return 0
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
