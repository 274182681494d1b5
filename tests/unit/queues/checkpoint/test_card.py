"""Checkpoint: family detection, prompt rendering with one placeholder per item, generation defaults,
and every value read from the files equal to what transformers reads (the front door must not need it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoConfig, AutoTokenizer

from queues.checkpoint import Checkpoint, UnsupportedModelError
from tests.models import FAMILIES, tiny_model_dir


@pytest.fixture(scope="module")
def qwen() -> Checkpoint:
    return Checkpoint.load(tiny_model_dir("qwen2-vl"))


def test_families_and_modalities() -> None:
    expected = {
        "qwen2-vl": {"image", "video"},
        "qwen2.5-vl": {"image", "video"},
        "llava": {"image"},
        "qwen2-audio": {"audio"},
    }
    for family, modalities in expected.items():
        card = Checkpoint.load(tiny_model_dir(family))
        assert (card.family.name, set(card.modalities), set(card.placeholder_ids)) == (
            family,
            modalities,
            modalities,
        )


def test_one_placeholder_per_item_in_order(qwen: Checkpoint) -> None:
    content = [{"type": "image"}, {"type": "text", "text": "and"}, {"type": "video"}, {"type": "image"}]
    ids = qwen.render_prompt([{"role": "user", "content": content}])
    image, video = qwen.placeholder_ids["image"], qwen.placeholder_ids["video"]
    assert [i for i in ids if i in (image, video)] == [image, video, image]
    assert qwen.tokenizer.decode(ids, skip_special_tokens=False).endswith("<|im_start|>assistant\n")


def test_string_and_part_content_render_alike() -> None:
    for family in ("qwen2-vl", "llava"):
        card = Checkpoint.load(tiny_model_dir(family))
        as_string = card.render_prompt([{"role": "user", "content": "hello there"}])
        as_parts = card.render_prompt(
            [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
        )
        assert as_string == as_parts
        assert "hello there" in card.tokenizer.decode(as_string)


def test_unsupported_modality_is_refused(qwen: Checkpoint) -> None:
    with pytest.raises(ValueError, match="audio"):
        qwen.render_prompt([{"role": "user", "content": [{"type": "audio"}]}])


def test_generation_defaults_and_eos_ids(qwen: Checkpoint) -> None:
    assert (qwen.generation.temperature, qwen.generation.top_p, qwen.generation.top_k) == (0.01, 0.001, 1)
    assert qwen.generation.repetition_penalty == 1.05 and qwen.generation.max_new_tokens is None
    im_end, end_of_text = (
        qwen.tokenizer.token_to_id("<|im_end|>"),
        qwen.tokenizer.token_to_id("<|endoftext|>"),
    )
    assert set(qwen.eos_token_ids) == {im_end, end_of_text}
    assert qwen.max_context == 32768
    llava = Checkpoint.load(tiny_model_dir("llava"))
    assert llava.generation.temperature is None
    assert llava.eos_token_ids == (llava.tokenizer.token_to_id("</s>"),)


def test_unsupported_model_names_the_supported_families(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
    )
    with pytest.raises(UnsupportedModelError, match=r"qwen2-vl.*qwen2\.5-vl.*llava.*qwen2-audio"):
        Checkpoint.load(tmp_path)


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"config\.json"):
        Checkpoint.load(tmp_path)
    shutil.copytree(tiny_model_dir("qwen2-vl"), tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match=r"tokenizer\.json"):
        Checkpoint.load(tmp_path / "m")


@pytest.mark.parametrize("family", FAMILIES)
def test_what_the_card_reads_is_what_transformers_reads(family: str, tmp_path: Path) -> None:
    """Placeholders, context length, EOS ids and special tokens as transformers' config and tokenizer
    give them, including values config.json leaves to the config class's defaults."""
    path = tiny_model_dir(family)
    card = Checkpoint.load(path)
    config = AutoConfig.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert card.placeholder_ids == {m: getattr(config, f"{m}_token_id") for m in card.family.modalities}
    assert card.max_context == config.get_text_config().max_position_embeddings
    assert card.vocab_size == config.get_text_config().vocab_size
    assert card.special_tokens == tokenizer.special_tokens_map
    assert card.tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()
    generation = json.loads((path / "generation_config.json").read_text())
    generation.pop("eos_token_id", None)  # then the text config's, then the tokenizer's
    bare = shutil.copytree(path, tmp_path / family)
    (bare / "generation_config.json").write_text(json.dumps(generation))
    expected = config.get_text_config().eos_token_id
    expected = [expected] if isinstance(expected, int) else expected or [tokenizer.eos_token_id]
    assert list(Checkpoint.load(bare).eos_token_ids) == expected


def test_defaults_a_config_leaves_out_are_the_config_classes(tmp_path: Path) -> None:
    for family in FAMILIES:
        path = tmp_path / family
        shutil.copytree(tiny_model_dir(family), path)
        config = json.loads((path / "config.json").read_text())
        stripped = {
            key: value
            for key, value in config.items()
            if not key.endswith(("_token_id", "_token_index")) and key != "text_config"
        }
        (path / "config.json").write_text(json.dumps(stripped))
        card = Checkpoint.load(path)
        reference = AutoConfig.from_pretrained(path)
        assert card.placeholder_ids == {
            m: getattr(reference, f"{m}_token_id") for m in card.family.modalities
        }
        assert card.max_context == reference.get_text_config().max_position_embeddings, family


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_ids_equal_the_tokenizer_call(family: str) -> None:
    """The card renders and tokenizes on its own; ids must be transformers' apply_chat_template + call."""
    card = Checkpoint.load(tiny_model_dir(family))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir(family))
    modality = "audio" if family == "qwen2-audio" else "image"
    conversations: list[list[dict[str, Any]]] = [
        [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": modality}, {"type": "text", "text": "Hé, what's this? 你好 <b>"}],
            },
        ],
        [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": [{"type": "text", "text": 'and "quoted" {{ braces }} \n\n'}]},
        ],
    ]
    for messages in conversations:
        ids = card.render_prompt(messages)
        shaped = [card.shape_message(m, []) for m in messages]
        text = tokenizer.apply_chat_template(
            shaped, chat_template=card.chat_template, add_generation_prompt=True, tokenize=False
        )
        assert card.render_text(shaped) == text
        assert ids == tokenizer(text)["input_ids"]


@pytest.mark.parametrize("family", FAMILIES)
def test_token_texts_equal_transformers_decode(family: str) -> None:
    card = Checkpoint.load(tiny_model_dir(family))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir(family))
    for token_id in range(card.tokenizer.get_vocab_size(with_added_tokens=True) + 3):
        assert card.decode_token(token_id) == tokenizer.decode([token_id]), token_id
