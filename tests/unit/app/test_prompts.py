"""The front door's prompt cache: same ids as rendering, hits for equal messages only, bounded."""

from __future__ import annotations

from typing import Any

from app.prompts import PromptRenderer
from queues.checkpoint import Checkpoint
from tests.models import tiny_model_dir


def ask(text: str, images: int = 0) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}] * images + [{"type": "text", "text": text}]}]


def test_cached_ids_equal_rendered_ids_and_only_equal_messages_hit() -> None:
    card = Checkpoint.load(tiny_model_dir("qwen2-vl"))
    renderer = PromptRenderer(card, capacity=2)
    first = renderer.render(ask("hello", images=1))
    assert first == card.render_prompt(ask("hello", images=1))
    assert renderer.render(ask("hello", images=1)) == first and renderer.hits == 1
    assert renderer.render(ask("hello", images=2)) != first  # another shape, another prompt
    assert renderer.render(ask("hello!", images=1)) != first
    assert renderer.misses == 3
    renderer.render(ask("hello", images=1))  # evicted by the two since (capacity 2)
    assert renderer.misses == 4


def test_a_caller_cannot_corrupt_the_cache() -> None:
    renderer = PromptRenderer(Checkpoint.load(tiny_model_dir("qwen2-vl")))
    ids = renderer.render(ask("x"))
    ids.append(-1)
    assert renderer.render(ask("x"))[-1] != -1
