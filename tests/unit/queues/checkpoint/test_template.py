"""Our chat-template environment renders what transformers renders, and keeps templates sandboxed."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from transformers.utils.chat_template_utils import render_jinja_template

from queues.checkpoint.template import compile_template

TEMPLATE = (
    "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
    "{% if m.role == 'assistant' %}{% generation %}<a>{{ m.content }}</a>{% endgeneration %}"
    "{% else %}\n  <{{ m.role }}>{{ m.content | tojson }}\n{% endif %}"
    "{% if loop.index > 5 %}{% break %}{% endif %}{% endfor %}{{ ns.n }}"
    "{% if add_generation_prompt %}<a>{% endif %}"
)
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Sé breve <b>&</b> 你好"},
    {"role": "user", "content": {"nested": ["x", 1, None]}},
    {"role": "assistant", "content": "ok"},
]


def test_renders_as_transformers_renders() -> None:
    ours = compile_template(TEMPLATE).render(messages=MESSAGES, add_generation_prompt=True)
    rendered: Any = render_jinja_template([MESSAGES], chat_template=TEMPLATE, add_generation_prompt=True)
    [theirs], _ = rendered  # (texts, generation indices), whatever its annotation says
    assert ours == theirs
    assert "你好" in ours and "<b>&</b>" in ours  # tojson keeps non-ASCII and does not HTML-escape


def test_raise_exception_is_a_template_error() -> None:
    with pytest.raises(jinja2.exceptions.TemplateError, match="no system role"):
        compile_template("{{ raise_exception('no system role') }}").render()


@pytest.mark.parametrize(
    "source",
    [
        "{{ messages.__class__.__mro__ }}",
        "{% set ns = namespace(_x=1) %}",
        "{% set ns = namespace() %}{% set ns._x = 1 %}",
        "{{ messages.append(1) }}",  # immutable sandbox
    ],
)
def test_the_sandbox_holds(source: str) -> None:
    with pytest.raises(jinja2.exceptions.SecurityError):
        compile_template(source).render(messages=[])
