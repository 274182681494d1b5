"""ModelInfo: family detection, prompt rendering with one placeholder per item, generation defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.models import tiny_model_dir
from workers.engine.families import UnsupportedModelError
from workers.engine.model_info import ModelInfo


@pytest.fixture(scope="module")
def qwen() -> ModelInfo:
    return ModelInfo.load(tiny_model_dir("qwen2-vl"))


def test_families_and_modalities() -> None:
    expected = {
        "qwen2-vl": {"image", "video"},
        "qwen2.5-vl": {"image", "video"},
        "llava": {"image"},
        "qwen2-audio": {"audio"},
    }
    for family, modalities in expected.items():
        info = ModelInfo.load(tiny_model_dir(family))
        assert (info.family, set(info.modalities), set(info.placeholder_ids)) == (
            family,
            modalities,
            modalities,
        )


def test_one_placeholder_per_item_in_order(qwen: ModelInfo) -> None:
    content = [{"type": "image"}, {"type": "text", "text": "and"}, {"type": "video"}, {"type": "image"}]
    ids = qwen.render_prompt([{"role": "user", "content": content}])
    image, video = qwen.placeholder_ids["image"], qwen.placeholder_ids["video"]
    assert [i for i in ids if i in (image, video)] == [image, video, image]
    assert qwen.tokenizer.decode(ids).endswith("<|im_start|>assistant\n")  # generation prompt


def test_string_and_part_content_render_alike() -> None:
    for family in ("qwen2-vl", "llava"):
        info = ModelInfo.load(tiny_model_dir(family))
        as_string = info.render_prompt([{"role": "user", "content": "hello there"}])
        as_parts = info.render_prompt(
            [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
        )
        assert as_string == as_parts
        assert "hello there" in info.tokenizer.decode(as_string)


def test_unsupported_modality_is_refused(qwen: ModelInfo) -> None:
    with pytest.raises(ValueError, match="audio"):
        qwen.render_prompt([{"role": "user", "content": [{"type": "audio"}]}])


def test_generation_defaults_and_eos_ids(qwen: ModelInfo) -> None:
    assert (qwen.generation.temperature, qwen.generation.top_p, qwen.generation.top_k) == (0.01, 0.001, 1)
    assert qwen.generation.repetition_penalty == 1.05 and qwen.generation.max_new_tokens is None
    assert set(qwen.eos_token_ids) == set(
        qwen.tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    )
    assert qwen.max_context == 32768
    llava = ModelInfo.load(tiny_model_dir("llava"))
    assert llava.generation.temperature is None and llava.eos_token_ids == (llava.tokenizer.eos_token_id,)


def test_unsupported_model_names_the_supported_families(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
    )
    with pytest.raises(UnsupportedModelError, match=r"qwen2-vl.*qwen2\.5-vl.*llava.*qwen2-audio"):
        ModelInfo.load(tmp_path)


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen2.5-vl", "llava", "qwen2-audio"])
def test_prompt_ids_equal_the_tokenizer_call(family: str) -> None:
    """render_prompt encodes through the Rust tokenizer directly; the ids must be the slow path's."""
    info = ModelInfo.load(tiny_model_dir(family))
    modality = "audio" if family == "qwen2-audio" else "image"
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": modality}, {"type": "text", "text": "Hé, what's this? 你好 <b>"}],
        },
    ]
    ids = info.render_prompt(messages)
    shaped = [info._shape_message(m, []) for m in messages]
    text = info.tokenizer.apply_chat_template(
        shaped, chat_template=info.chat_template, add_generation_prompt=True, tokenize=False
    )
    assert ids == info.tokenizer(text)["input_ids"]
