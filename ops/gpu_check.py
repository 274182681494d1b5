"""The GPU check: one run, on the first machine with an NVIDIA GPU, of what CPUs cannot show.

    python -m ops.gpu_check                  # on the GPU machine (about 8 minutes)
    python -m ops.gpu_check --dry-run        # every step on the CPU, small sizes (CI runs this)

Steps, each in its own process with a time limit, then one summary table:
  1. e2e: the e-p-d system on the device (`DEVICE`, float32) answering text, one image, three images,
     video and audio requests, greedy and seeded, each checked token for token against Hugging Face
     `generate` on the same device (tests/e2e, `ORACLE_DEVICE`);
  2. transfer: `ops.bench.transfer_bench` on device tensors (16-256 MiB: NIXL vs the copy bound);
  3. engine: `ops.bench.engine_bench` in bfloat16 on a random-weight model of Qwen2-VL-2B's shape
     (built here, offline): decode tokens/s at batch 1 and 32 beside HF `generate`, and 448x448
     images/s encoded in a batch vs one at a time.
Nothing here has run on a GPU yet: until it has, its GPU figures are unmeasured.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
E2E = [
    "tests/e2e/test_vision.py::test_text",
    "tests/e2e/test_vision.py::test_one_image_data_url",
    "tests/e2e/test_vision.py::test_three_images_of_different_sizes",
    "tests/e2e/test_vision.py::test_video",
    "tests/e2e/test_audio.py::test_input_audio",
]
# Qwen2-VL-2B-Instruct's shape (config.json), with the tiny model's tokenizer and processor.
TEXT_2B: dict[str, int] = {
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
}
MROPE_2B = [16, 24, 24]  # head_dim 128
VISION_2B: dict[str, int] = {
    "embed_dim": 1280,
    "depth": 32,
    "num_heads": 16,
    "hidden_size": 1536,
    "mlp_ratio": 4,
}


@dataclass
class Step:
    name: str
    command: list[str]
    env: dict[str, str]
    limit_s: float


def model_2b(device: str) -> Path:
    """A random-weight Qwen2-VL of 2B's shape in bfloat16, built once into .cache/gpu-check/."""
    import torch

    from ops.tiny.scaled import scaled_qwen2_vl

    out = ROOT / ".cache" / "gpu-check" / "qwen2-vl-2b-shape"
    return scaled_qwen2_vl(
        out, text=TEXT_2B, mrope_section=MROPE_2B, vision=VISION_2B, device=device, dtype=torch.bfloat16
    )


def steps(device: str, dry_run: bool) -> list[Step]:
    python = sys.executable
    env = {"DEVICE": device, "DTYPE": "float32", "ORACLE_DEVICE": device}
    e2e = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "e-p-d", *E2E]
    transfer = [python, "-m", "ops.bench.transfer_bench", "--device", device]
    transfer += (
        ["--sizes", "1", "--reps", "2", "--latency-reps", "20"] if dry_run else ["--sizes", "16,64,256"]
    )
    engine = [python, "-m", "ops.bench.engine_bench", "--device", device]
    if dry_run:  # the tiny model (engine_bench builds it), float32, a token or two
        engine += ["--concurrency", "1,2", "--max-tokens", "4", "--repeats", "1", "--sequential-sample", "1",
                   "--encode-items", "2", "--image-size", "56"]  # fmt: skip
    else:
        engine += ["--model", str(model_2b(device)), "--dtype", "bfloat16", "--concurrency", "1,32",
                   "--max-tokens", "64", "--encode-items", "32", "--image-size", "448"]  # fmt: skip
    return [
        Step("e2e e-p-d == HF generate", e2e, env, 240),
        Step("transfer (device tensors)", transfer, {}, 120),
        Step("engine (2B shape, bf16)" if not dry_run else "engine (tiny, dry run)", engine, {}, 240),
    ]


def run(step: Step) -> tuple[int, float]:
    print(f"\n==> {step.name}: {' '.join(step.command)}", flush=True)
    began = time.perf_counter()
    try:
        code = subprocess.run(
            step.command, cwd=ROOT, env={**os.environ, **step.env}, timeout=step.limit_s
        ).returncode
    except subprocess.TimeoutExpired:
        code = 124
    return code, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU, small sizes")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --dry-run")
    args = parser.parse_args()
    device = args.device or ("cpu" if args.dry_run else "cuda")
    results = [(step, *run(step)) for step in steps(device, args.dry_run)]
    print(f"\nGPU check on {device}{' (dry run)' if args.dry_run else ''}")
    print(f"{'step':<28} {'result':<10} {'seconds':>8}")
    for step, code, seconds in results:
        verdict = "ok" if code == 0 else ("timeout" if code == 124 else f"exit {code}")
        print(f"{step.name:<28} {verdict:<10} {seconds:>8.1f}")
    sys.exit(0 if all(code == 0 for _, code, _ in results) else 1)


if __name__ == "__main__":
    main()
