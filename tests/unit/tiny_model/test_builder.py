"""The tiny-model builder: deterministic, small, loadable by the real Auto classes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import transformers
from transformers import AutoConfig, AutoProcessor

from ops.tiny_model import FAMILIES, build, main
from tests.models import tiny_model_dir


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_build_is_deterministic(tmp_path: Path) -> None:
    main(["--family", "qwen2-vl", "--out", str(tmp_path / "a")])
    assert _digest(tmp_path / "a") == _digest(tiny_model_dir("qwen2-vl"))


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_is_small_and_loads(family: str) -> None:
    directory = tiny_model_dir(family)
    assert sum(p.stat().st_size for p in directory.iterdir()) < 4 * 2**20
    config = AutoConfig.from_pretrained(directory)
    model = getattr(transformers, config.architectures[0]).from_pretrained(directory)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    processor = AutoProcessor.from_pretrained(directory)
    assert processor.chat_template
    assert len(processor.tokenizer) <= model.config.get_text_config().vocab_size


def test_unknown_family_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="qwen2-vl"):
        build("gpt2", tmp_path)
