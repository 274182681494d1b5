"""Queue benchmark: no-op jobs/s and hop latency of this runtime against arq, taskiq-redis and a
bare redis-py loop, on one private Redis, in one run.

    python -m ops.bench.queue_bench [--jobs 10000] [--latency-jobs 1000] [--rate 100]

Throughput: `--jobs` jobs enqueued first, then one worker; jobs/s between the first and the last
handler start. Hop: one worker waiting, `--latency-jobs` jobs enqueued at `--rate` per second;
enqueue -> handler start. The peers need incompatible redis-py versions, so each gets its own
virtualenv under `.bench/` on first use; nothing of theirs enters the project's dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

from ops.redis import RedisServer

ROOT = Path(__file__).resolve().parents[2]
PEERS_DIR = Path(__file__).resolve().parent / "queue_peers"
BENCH_DIR = ROOT / ".bench"

# name -> (peer script, pip requirements of its own virtualenv, or None to use this one)
PEERS: dict[str, tuple[str, list[str] | None]] = {
    "triptych (this)": ("ours.py", None),
    "taskiq-redis 1.2.4": ("taskiq_peer.py", ["taskiq-redis==1.2.4", "taskiq==0.13.0", "uvloop"]),
    "arq 0.28": ("arq_peer.py", ["arq==0.28.0", "uvloop"]),
    "bare redis-py loop": ("bare.py", None),
}


def peer_python(name: str, requirements: list[str] | None) -> str:
    if requirements is None:
        return sys.executable
    env_dir = BENCH_DIR / name.split()[0]
    python = env_dir / "bin" / "python"
    stamp = env_dir / ".requirements"
    if not python.exists() or not stamp.exists() or stamp.read_text() != "\n".join(requirements):
        print(f"creating {env_dir} for {name} ...", file=sys.stderr, flush=True)
        venv.create(env_dir, with_pip=True, clear=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
        stamp.write_text("\n".join(requirements))
    return str(python)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--latency-jobs", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--only", action="append", help="run only peers whose name contains this")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with RedisServer() as server:
        for name, (script, requirements) in PEERS.items():
            if args.only and not any(part in name for part in args.only):
                continue
            python = peer_python(name, requirements)
            print(f"running {name} ...", file=sys.stderr, flush=True)
            cmd = [python, str(PEERS_DIR / script), "--redis-url", server.url, "--jobs", str(args.jobs)]
            cmd += ["--latency-jobs", str(args.latency_jobs), "--rate", str(args.rate)]
            env = {**os.environ, "BENCH_REDIS_URL": server.url}
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            results[name] = json.loads(out.strip().splitlines()[-1])
    print_table(results, args)


def print_table(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    def ratio(name: str, peer: str) -> str:
        if name not in results or peer not in results:
            return "-"
        return f"{results[name]['jobs_per_s'] / results[peer]['jobs_per_s']:.2f}x"

    print(f"\nno-op jobs, one worker: {args.jobs} for throughput, ", end="")
    print(f"{args.latency_jobs} at {args.rate:.0f}/s for hop latency")
    cells = ["system".ljust(20), "jobs/s".rjust(8), "vs taskiq", "vs bare", "hop p50 ms", "hop p99 ms"]
    print("| " + " | ".join(cells) + " |")
    print("|" + "|".join("-" * (len(cell) + 2) for cell in cells) + "|")
    for name, row in results.items():
        values = [
            name.ljust(20),
            f"{row['jobs_per_s']:>8.0f}",
            ratio(name, "taskiq-redis 1.2.4").rjust(9),
            ratio(name, "bare redis-py loop").rjust(7),
            f"{row['hop_p50_ms']:>10.2f}",
            f"{row['hop_p99_ms']:>10.2f}",
        ]
        print("| " + " | ".join(values) + " |")


if __name__ == "__main__":
    main()
