"""Session-wide tiny models for the engine tests: one engine and one HF reference per family."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.models import tiny_model_dir
from tests.unit.engine.oracle import Reference
from workers.engine.engine import TransformersEngine
from workers.engine.loader import load_engine


@pytest.fixture(scope="session")
async def engine_for() -> AsyncIterator[Callable[[str], TransformersEngine]]:
    engines: dict[str, TransformersEngine] = {}

    def get(family: str) -> TransformersEngine:
        if family not in engines:
            engines[family] = load_engine(tiny_model_dir(family))
        return engines[family]

    yield get
    for engine in engines.values():
        await engine.close()


@pytest.fixture(scope="session")
def reference_for() -> Callable[[str], Reference]:
    references: dict[str, Reference] = {}

    def get(family: str) -> Reference:
        if family not in references:
            references[family] = Reference(tiny_model_dir(family))
        return references[family]

    return get
