"""Load for the fault tests: streaming clients that classify every request's outcome.

Outcomes: `completed` (exactly the reference tokens), `error` (an explicit error: an HTTP error
status, an error event in the stream, or the connection closed by a server that died), `hung` (no
end before the request's deadline), `duplicated` (a token delivered twice), `wrong` (other tokens).
Only `completed` and `error` are acceptable.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from workers.media import synth

IMAGE = "data:image/png;base64," + base64.b64encode(synth.image_bytes("PNG", 56, 56, seed=3)).decode()


@dataclass(frozen=True)
class Template:
    name: str
    with_image: bool
    seed: int
    max_tokens: int = 24

    def body(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": f"Story {self.name}"}]
        if self.with_image:
            content.insert(0, {"type": "image_url", "image_url": {"url": IMAGE}})
        return {
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
            "temperature": 0.7,
            "seed": self.seed,
            "ignore_eos": True,
            "stream": True,
            "return_token_ids": True,
        }


TEMPLATES = [Template(f"t{i}", with_image=i % 2 == 0, seed=100 + i) for i in range(8)]


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)

    def add(self, outcome: str, detail: str = "") -> None:
        self.outcomes[outcome] += 1
        if outcome not in ("completed", "error") or len(self.details) < 20:
            self.details.append(f"{outcome}: {detail}")

    @property
    def requests(self) -> int:
        return sum(self.outcomes.values())

    def bad(self) -> int:
        return sum(n for kind, n in self.outcomes.items() if kind not in ("completed", "error"))


async def stream(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], limit_s: float
) -> tuple[str, list[int]]:
    """One streaming request: ("done" | "error:<why>" | "hung", token ids received)."""
    ids: list[int] = []
    try:
        async with asyncio.timeout(limit_s):
            async with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    return f"error:http {response.status_code}", ids
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line[6:]
                    if data == "[DONE]":
                        return "done", ids
                    chunk = json.loads(data)
                    if "error" in chunk:
                        return f"error:{chunk['error'].get('code')}", ids
                    for choice in chunk["choices"]:
                        ids.extend(choice.get("token_ids") or [])
        return "error:stream closed without [DONE]", ids
    except TimeoutError:
        return "hung", ids
    except httpx.HTTPError as exc:
        return f"error:{type(exc).__name__}", ids


def classify(status: str, ids: list[int], reference: list[int]) -> tuple[str, str]:
    if status == "hung":
        return "hung", f"{len(ids)} tokens then silence"
    if len(ids) > len(reference):
        return "duplicated", f"{len(ids)} tokens for {len(reference)} ({status})"
    if ids != reference[: len(ids)]:
        return "wrong", f"{ids} is not a prefix of {reference} ({status})"
    if status.startswith("error"):
        return "error", status
    if ids == reference:
        return "completed", ""
    return "wrong", f"ended after {len(ids)} of {len(reference)} tokens"


async def references(url: str) -> dict[Template, list[int]]:
    """Each template's tokens on the undisturbed system (the mock engine is deterministic)."""
    found: dict[Template, list[int]] = {}
    async with httpx.AsyncClient(timeout=60) as client:
        for template in TEMPLATES:
            status, ids = await stream(client, url, template.body(), 60)
            assert status == "done" and len(ids) == template.max_tokens, (status, ids)
            found[template] = ids
    return found


async def run_load(
    url: str,
    refs: dict[Template, list[int]],
    *,
    clients: int,
    duration_s: float,
    limit_s: float,
    tally: Tally,
) -> None:
    """`clients` concurrent streaming clients, each sending requests back to back for `duration_s`."""
    stop_at = time.monotonic() + duration_s

    async def client_loop(index: int) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(limit_s, connect=5)) as client:
            n = index
            while time.monotonic() < stop_at:
                template = TEMPLATES[n % len(TEMPLATES)]
                n += clients
                status, ids = await stream(client, url, template.body(), limit_s)
                tally.add(*classify(status, ids, refs[template]))

    await asyncio.gather(*(client_loop(i) for i in range(clients)))
