"""Hostile input through the whole HTTP path: the bad-media corpus (SSRF attempts included), oversized
and malformed bodies, and schemathesis against /openapi.json. Every refusal is a 4xx in OpenAI's
error shape with a message; no 5xx; the workers stay up; the front door's memory stays bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.chaos.cluster import Cluster, cluster
from tests.chaos.conftest import record
from tests.chaos.load import Tally
from tests.integration.media.server import MediaServer
from tests.integration.media.test_bad_inputs import CASES, DRIP, SLOW, TINY, Case, Env, build_env
from tests.models import tiny_model_dir

pytestmark = pytest.mark.timeout(600)

# the media tests' FAST limits: 4 MiB, 0.5 s between bytes, 2 s in all
FAST = {
    f"MEDIA_{modality}_{name}": value
    for modality in ("IMAGE", "VIDEO", "AUDIO")
    for name, value in (("MAX_BYTES", "4MiB"), ("READ_TIMEOUT_S", "0.5"), ("TOTAL_TIMEOUT_S", "2"))
}
LOCAL = {"ENGINE": "mock", "MEDIA_ALLOW_HOSTS": "127.0.0.1"}


def group_of(case: Case) -> str:
    """Cases that need the same media settings share one running system."""
    image = case.config.get("image")
    if image is TINY:
        return "tiny"
    if image in (SLOW, DRIP):
        return "slow"
    if case.config.get("allow_hosts") == () or (
        case.name.startswith("file-") and "file_roots" not in case.config
    ):
        return "closed"  # no allowlist, no file roots
    return "audio" if case.modality == "audio" else "main"


def group_env(group: str, root: Path) -> tuple[str, dict[str, str]]:
    """(model family, environment) of a group's system."""
    if group == "tiny":
        return "qwen2-vl", {**LOCAL, **FAST, "MEDIA_IMAGE_MAX_BYTES": "200"}
    if group == "slow":
        return "qwen2-vl", {
            **LOCAL,
            "MEDIA_IMAGE_READ_TIMEOUT_S": "0.3",
            "MEDIA_IMAGE_TOTAL_TIMEOUT_S": "0.6",
        }
    if group == "closed":
        return "qwen2-vl", {"ENGINE": "mock", **FAST}
    main = {
        **LOCAL,
        **FAST,
        "MEDIA_FILE_ROOTS": str(root),
        "MEDIA_MAX_REDIRECTS": "2",
        "MEDIA_VIDEO_MAX_DURATION_S": "2",
        "MEDIA_AUDIO_MAX_DURATION_S": "2",
    }
    return ("qwen2-audio" if group == "audio" else "qwen2-vl"), main


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with MediaServer() as server:
        yield build_env(server, tmp_path_factory.mktemp("hostile"))


def media_part(case: Case, url: str) -> dict[str, Any]:
    key = {"image": "image_url", "video": "video_url", "audio": "audio_url"}[case.modality]
    return {"type": key, key: {"url": url, **case.ref}}


def assert_openai_error(response: httpx.Response) -> dict[str, Any]:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"], error
    return dict(error)


@pytest.mark.parametrize("group", ["main", "audio", "tiny", "slow", "closed"])
async def test_bad_media_corpus_through_http(corpus: Env, group: str) -> None:
    cases = [case for case in CASES if group_of(case) == group]
    family, env = group_env(group, corpus.root)
    tally = Tally()
    with cluster("agg", tiny_model_dir(family), env) as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=60) as client:
            for case in cases:
                body = {
                    "max_tokens": 4,
                    "messages": [
                        {
                            "role": "user",
                            "content": [media_part(case, case.url(corpus)), {"type": "text", "text": "?"}],
                        }
                    ],
                }
                response = await client.post("/v1/chat/completions", json=body)
                ok = response.status_code == case.status
                tally.add(
                    "error" if ok else "wrong", f"{case.name}: {response.status_code} {response.text[:160]}"
                )
                assert ok, f"{case.name}: expected {case.status}, got {response.status_code}: {response.text}"
                assert_openai_error(response)
            # the workers are still up and serving
            response = await client.post(
                "/v1/chat/completions",
                json={"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]},
            )
            assert response.status_code == 200, response.text
        assert all(proc.poll() is None for proc in running.procs.values())
    record(f"bad media corpus through HTTP ({group} settings): each its documented status", tally)


@pytest.fixture(scope="module")
def vision() -> Iterator[Cluster]:
    with cluster(
        "agg", tiny_model_dir("qwen2-vl"), {"ENGINE": "mock", "MAX_BODY_BYTES": str(4 << 20)}
    ) as running:
        yield running


async def test_oversized_bodies_keep_memory_bounded(vision: Cluster) -> None:
    app = psutil.Process(vision.procs["app"].pid)
    tally = Tally()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):  # 8 MiB, twice the limit, with no Content-Length
            yield b" " * (100 * 1024)

    async with httpx.AsyncClient(base_url=vision.url, timeout=60) as client:
        before = app.memory_info().rss
        for _ in range(30):
            declared = await client.post("/v1/chat/completions", content=b"x" * (5 << 20))
            streamed = await client.post("/v1/chat/completions", content=chunks())
            for response in (declared, streamed):
                tally.add("error" if response.status_code == 413 else "wrong", response.text[:100])
                assert_openai_error(response)
        grown = app.memory_info().rss - before
    record("oversized bodies (declared and chunked)", tally)
    assert tally.bad() == 0, tally.details
    assert grown < 64 << 20, f"the front door grew by {grown >> 20} MiB"


def test_nested_and_malformed_json(vision: Cluster) -> None:
    tally = Tally()
    bodies = [
        b'{"messages":[{"role":"user","content":"x"}],"metadata":{"a":'
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}}",
        b'{"messages": [' * 10_000,
        b"\xff\xfe not even text",
        b"",
        b"[]",
        b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}',
    ]
    for body in bodies:
        response = httpx.post(vision.url + "/v1/chat/completions", content=body, timeout=30)
        tally.add(
            "error" if response.status_code == 400 else "wrong",
            f"{response.status_code} {response.text[:100]}",
        )
        assert_openai_error(response)
    record("malformed and deeply nested JSON", tally)
    assert tally.bad() == 0, tally.details


def test_schemathesis_finds_no_server_error(vision: Cluster) -> None:
    """Every operation of /openapi.json with hypothesis-generated inputs: never a 5xx, and every
    error in OpenAI's shape."""
    schema = schemathesis.openapi.from_url(vision.url + "/openapi.json")
    tally = Tally()
    for result in schema.get_all_operations():
        assert isinstance(result, schemathesis.core.result.Ok), result
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            response = case.call(base_url=vision.url, timeout=30)
            tally.add("error" if response.status_code >= 400 else "completed", f"{response.status_code}")
            assert response.status_code < 500, (
                f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
            )
            if response.status_code >= 400:
                assert_openai_error(response)

        check()
    record("schemathesis on every /openapi.json operation", tally)
