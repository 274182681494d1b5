"""Front-door start: import time, memory and time to the first `/health` 200, against an older tree.

    python -m ops.bench.startup_bench [--baseline 9e21477] [--repeats 5] [--model DIR]

Both trees run with this interpreter (the same installed libraries), the baseline from a git worktree
under .bench/. Per tree and repetition, alternating: (1) a fresh `python -c "import app.server"`:
wall seconds of the import, peak RSS after it (VmHWM), whether torch/transformers got loaded, and
`-X importtime`'s cumulative microseconds for app.server; (2) `python -m app` with a private Redis:
seconds from spawn to the first `/health` 200, and the process's RSS then. Medians are printed.
The machine's speed drifts: only the ratio of one run means anything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from ops.redis import RedisServer, free_port
from ops.tiny_model import build

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys, time
t = time.perf_counter()
import app.server
took = time.perf_counter() - t
status = open("/proc/self/status").read()
hwm = int(status.split("VmHWM:")[1].split()[0]) / 1024
heavy = [m for m in ("torch", "transformers") if m in sys.modules]
print(json.dumps({"import_s": took, "rss_mb": hwm, "heavy": heavy, "file": app.server.__file__}))
"""


def worktree(ref: str) -> Path:
    path = ROOT / ".bench" / f"baseline-{ref}"
    if not (path / "app").exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT, check=True)
    return path


def env_for(tree: Path, **extra: str) -> dict[str, str]:
    # the tree first on the path: the editable install of this checkout must not answer for it
    return {**os.environ, "PYTHONPATH": str(tree), **extra}


def measure_import(tree: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE],
        cwd=tree,
        env=env_for(tree),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["file"].startswith(str(tree)), f"imported {result['file']}, not {tree}'s app"
    lines = [line for line in out.stderr.splitlines() if line.rstrip().endswith("| app.server")]
    result["importtime_s"] = int(lines[-1].split("|")[1]) / 1e6 if lines else float("nan")
    return result


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def measure_ready(tree: Path, model: Path, redis_url: str, limit_s: float = 120.0) -> dict[str, float]:
    port = free_port()
    env = env_for(
        tree, MODEL=str(model), MODE="agg", PORT=str(port), REDIS_URL=redis_url, LOG_LEVEL="WARNING"
    )
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=tree, env=env, stdout=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"python -m app in {tree} exited with {proc.returncode}")
            if time.perf_counter() - began > limit_s:
                raise RuntimeError(f"python -m app in {tree} not ready in {limit_s:.0f} s")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        return {"ready_s": time.perf_counter() - began, "ready_rss_mb": rss_mb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default="9e21477", help="git ref of the older tree")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: the tiny qwen2-vl)")
    args = parser.parse_args()
    if args.model is None:
        tiny = ROOT / ".cache" / "tiny-models" / "bench-qwen2-vl"
        args.model = tiny if (tiny / "config.json").exists() else build("qwen2-vl", tiny)
    trees = {f"baseline {args.baseline}": worktree(args.baseline), "this tree": ROOT}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    redis = RedisServer().start()
    try:
        for _ in range(args.repeats):
            for name, tree in trees.items():
                runs[name].append({**measure_import(tree), **measure_ready(tree, args.model, redis.url)})
    finally:
        redis.stop()
    columns = ("import s", "importtime s", "RSS MB", "ready s", "ready RSS MB")
    header = f"{'tree':<20} " + " ".join(f"{c:>{max(len(c), 9)}}" for c in columns) + "  loaded"
    print(f"\nfront-door start, median of {args.repeats} alternating runs ({os.cpu_count()} CPUs)\n{header}")
    for name, rows in runs.items():

        def median(key: str, rows: list[dict[str, Any]] = rows) -> float:
            return statistics.median(float(row[key]) for row in rows)

        heavy = ", ".join(sorted({module for row in rows for module in row["heavy"]})) or "no torch"
        print(
            f"{name:<20} {median('import_s'):>9.2f} {median('importtime_s'):>12.2f} {median('rss_mb'):>9.0f}"
            f" {median('ready_s'):>9.2f} {median('ready_rss_mb'):>12.0f}  {heavy}"
        )


if __name__ == "__main__":
    main()
