"""Tiny random-weight checkpoints for tests, built once and cached under `.cache/tiny-models/`.

    from tests.models import tiny_model_dir
    model_dir = tiny_model_dir("qwen2-vl")

The cache key is a hash of the builder's source, so editing the builder rebuilds; concurrent test
processes are safe (each builds into a private directory and renames it into place).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from functools import cache
from pathlib import Path

from ops import tiny_model

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "tiny-models"
FAMILIES = tiny_model.FAMILIES


def builder_hash() -> str:
    sources = [*sorted((REPO / "ops" / "tiny").glob("*.py")), REPO / "ops" / "tiny_model.py"]
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


@cache
def tiny_model_dir(family: str) -> Path:
    """Directory of the tiny `family` checkpoint (one of `FAMILIES`), built on first use."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; tiny models exist for {', '.join(FAMILIES)}")
    target = CACHE / f"{family}-{builder_hash()}"
    if (target / "config.json").exists():
        return target
    scratch = CACHE / f".{target.name}.{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    tiny_model.build(family, scratch)
    try:
        scratch.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(scratch, ignore_errors=True)
    return target
