"""Each stage loads exactly the modules it runs, tensor for tensor what the whole model loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from queues.types import Stage
from tests.models import FAMILIES, tiny_model_dir
from workers.engine.families import ADAPTERS
from workers.engine.model_info import ModelInfo
from workers.engine.parts import IncompleteCheckpoint, dropped_by, load_parts

# What each stage holds, by top-level module, for every family.
HOLDS: dict[Stage, str] = {
    "encode": "tower",
    "prefill": "language",
    "decode": "language",
    "pd": "language",
    "agg": "both",
}


def whole(family: str) -> dict[str, torch.Tensor]:
    path = tiny_model_dir(family)
    cls = getattr(transformers, transformers.AutoConfig.from_pretrained(path).architectures[0])
    return dict(cls.from_pretrained(path, dtype=torch.float32).state_dict())


@pytest.mark.parametrize("family", FAMILIES)
def test_each_stage_loads_its_modules_and_only_them(family: str, capfd: pytest.CaptureFixture[str]) -> None:
    path = tiny_model_dir(family)
    adapter = ModelInfo.load(path).family_cls
    cls = getattr(transformers, transformers.AutoConfig.from_pretrained(path).architectures[0])
    reference = whole(family)
    tower = {k for k in reference if k.startswith(tuple(p + "." for p in adapter.tower))}
    language = {k for k in reference if k.startswith(tuple(p + "." for p in adapter.language))}
    assert tower and language and tower | language == set(reference)  # the two parts are the whole
    expected = {"tower": tower, "language": language, "both": tower | language}
    for stage, part in HOLDS.items():
        model = load_parts(cls, path, dropped_by(stage, adapter.tower, adapter.language), torch.float32)
        loaded = model.state_dict()
        assert set(loaded) == expected[part], (family, stage)
        for name, tensor in loaded.items():
            assert torch.equal(tensor, reference[name]), (family, stage, name)
        for name, buffer in model.named_buffers():
            assert buffer.device.type == "cpu", (family, stage, name)  # none left on meta
    report = capfd.readouterr()
    assert "UNEXPECTED" not in report.err + report.out and "MISSING" not in report.err + report.out


def test_every_adapter_names_its_tower() -> None:
    for adapter in ADAPTERS.values():
        assert adapter.tower and adapter.language == ("model.language_model", "lm_head")


def test_a_checkpoint_without_the_tower_stops_the_encode_worker(tmp_path: Path) -> None:
    """Only the stages that run the tower refuse it; transformers would otherwise fill it randomly."""
    source = tiny_model_dir("qwen2-vl")
    path = shutil.copytree(source, tmp_path / "text-only")
    weights = load_file(path / "model.safetensors")
    save_file(
        {k: v for k, v in weights.items() if "visual" not in k}, path / "model.safetensors", {"format": "pt"}
    )
    adapter = ModelInfo.load(path).family_cls
    cls = getattr(transformers, transformers.AutoConfig.from_pretrained(path).architectures[0])
    prefill = load_parts(cls, path, dropped_by("prefill", adapter.tower, adapter.language), torch.float32)
    assert prefill.model.visual is None
    for stage in ("encode", "agg"):
        with pytest.raises(IncompleteCheckpoint, match=r"lacks \d+ tensors this stage runs: model\.visual\."):
            load_parts(cls, path, dropped_by(stage, adapter.tower, adapter.language), torch.float32)
