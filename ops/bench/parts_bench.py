"""Per-stage loading: what encode, prefill/decode and agg workers hold, against the whole model.

    python -m ops.bench.parts_bench [--repeats 3] [--model DIR]

Without --model, a random-weight Qwen2-VL whose vision tower and language model are of comparable
size (~40 M and ~30 M parameters, so the saving shows on a CPU) is built once into
.cache/tiny-models/bench-parts-qwen2-vl from the tiny model's tokenizer and processor. Each stage is
loaded with `load_engine(..., stage=...)` in a fresh process, the stages alternating run by run;
the table gives the medians of the load time and of the resident memory the load added (weights
read once, as a first request reads them: safetensors are memory-mapped), and the parameters held.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from ops.tiny.scaled import scaled_qwen2_vl

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("agg", "encode", "prefill")
PROBE = """
import json, sys, time
import torch
from workers.engine.loader import load_engine
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
before = rss()
began = time.perf_counter()
engine = load_engine(sys.argv[1], "cpu", torch.float32, stage=sys.argv[2])
took = time.perf_counter() - began
held = [p for p in engine.family.model.parameters() if p.device.type != "meta"]
for p in held:  # memory-mapped weights count once read, as the first requests would read them
    p.detach().sum()
params = sum(p.numel() for p in held)
print(json.dumps({"load_s": took, "rss_mb": rss() - before, "params_m": params / 1e6}))
"""


def bench_model() -> Path:
    return scaled_qwen2_vl(
        ROOT / ".cache" / "tiny-models" / "bench-parts-qwen2-vl",
        text={"hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 8,
              "num_attention_heads": 8, "num_key_value_heads": 4},
        mrope_section=[8, 12, 12],  # head_dim 64
        vision={"embed_dim": 512, "depth": 12, "num_heads": 8, "hidden_size": 512},
    )  # fmt: skip


def measure(model: Path, stage: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(model), stage], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path)
    args = parser.parse_args()
    model = args.model or bench_model()
    runs: dict[str, list[dict[str, Any]]] = {stage: [] for stage in STAGES}
    for _ in range(args.repeats):
        for stage in STAGES:
            runs[stage].append(measure(model, stage))
    medians = {
        stage: {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        for stage, rows in runs.items()
    }
    whole = medians["agg"]
    print(f"\nper-stage load of {model.name}, median of {args.repeats} alternating runs, CPU float32")
    print(f"{'stage':<22} {'params M':>9} {'load s':>7} {'RSS added MB':>13} {'vs agg (RSS)':>13}")
    labels = {"agg": "agg (whole model)", "encode": "encode (tower)", "prefill": "prefill/decode/pd (LM)"}
    for stage, row in medians.items():
        print(
            f"{labels[stage]:<22} {row['params_m']:>9.1f} {row['load_s']:>7.2f} {row['rss_mb']:>13.0f}"
            f" {row['rss_mb'] / whole['rss_mb']:>12.2f}x"
        )


if __name__ == "__main__":
    main()
