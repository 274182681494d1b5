"""ModelInfo: the card plus the torch side; every family of the card has an adapter."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from queues.checkpoint import FAMILIES
from tests.models import tiny_model_dir
from workers.engine.families import ADAPTERS
from workers.engine.model_info import ModelInfo


def test_every_family_has_an_adapter() -> None:
    assert {spec.name for spec in FAMILIES} == set(ADAPTERS)
    for name, adapter in ADAPTERS.items():
        assert adapter.spec.name == name


def test_a_tokenizer_transformers_loads_differently_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = shutil.copytree(tiny_model_dir("qwen2-vl"), tmp_path / "m")
    with caplog.at_level(logging.WARNING, logger="workers.engine.model_info"):
        info = ModelInfo.load(path)
    assert info.family == "qwen2-vl"
    assert not [r for r in caplog.records if r.name == "workers.engine.model_info"]
    config = path / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"add_prefix_space": null', '"add_prefix_space": true'))
    with caplog.at_level(logging.WARNING, logger="workers.engine.model_info"):
        ModelInfo.load(path)
    assert "tokenizes prompts with tokenizer.json as saved" in caplog.text
