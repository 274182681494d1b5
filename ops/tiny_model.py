"""Build a tiny random-weight checkpoint of a supported family, offline, in the Hugging Face layout.

    python -m ops.tiny_model --family qwen2-vl --out DIR

The result loads with the real `AutoProcessor` / model classes (tokenizer trained with `tokenizers`,
the family's chat template, image/video processors or audio feature extractor). Deterministic: the
same builder source always writes the same weights.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ops.tiny import llava, qwen2_audio, qwen_vl

BUILDERS: dict[str, Callable[[Path], None]] = {
    "qwen2-vl": lambda out: qwen_vl.build("qwen2-vl", out),
    "qwen2.5-vl": lambda out: qwen_vl.build("qwen2.5-vl", out),
    "llava": llava.build,
    "qwen2-audio": qwen2_audio.build,
}
FAMILIES = tuple(BUILDERS)


def build(family: str, out: Path) -> Path:
    """Write the tiny `family` checkpoint into `out` (created if missing) and return `out`."""
    if family not in BUILDERS:
        raise ValueError(f"unknown family {family!r}; supported: {', '.join(FAMILIES)}")
    BUILDERS[family](out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", required=True, choices=FAMILIES)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    print(build(args.family, args.out))


if __name__ == "__main__":
    main()
