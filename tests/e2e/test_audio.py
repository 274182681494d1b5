"""The whole system in each mode with the tiny Qwen2-Audio: audio requests (input_audio and
audio_url) return exactly the tokens Hugging Face `generate` gives for the same clip."""

from __future__ import annotations

import base64

import pytest

from queues.messages import MediaRef, SamplingParams
from tests.e2e.client import GREEDY, SAMPLED, ask, expected
from tests.e2e.conftest import MediaServer, System
from tests.unit.engine.oracle import Reference
from workers.media import synth

FAMILY = "qwen2-audio"


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
async def test_input_audio(system: System, reference: Reference, sampling: SamplingParams) -> None:
    wav = synth.audio_bytes("wav", seconds=1.0, rate=16000)
    ref = MediaRef(modality="audio", url="data:audio/wav;base64," + base64.b64encode(wav).decode())
    want = await expected(reference, "What do you hear?", [ref], sampling)
    assert await ask(system, "What do you hear?", [ref], sampling, input_audio=True) == want


async def test_audio_url(system: System, reference: Reference, media_server: MediaServer) -> None:
    url = media_server.add("tone.flac", synth.audio_bytes("flac", seconds=1.5, rate=22050), "audio/flac")
    ref = MediaRef(modality="audio", url=url)
    want = await expected(reference, "Transcribe.", [ref], SAMPLED)
    assert await ask(system, "Transcribe.", [ref], SAMPLED) == want


async def test_text_only(system: System, reference: Reference) -> None:
    assert await ask(system, "Hello.", [], GREEDY) == await expected(reference, "Hello.", [], GREEDY)
