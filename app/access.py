"""The end of a chat request: its outcome counted in the metrics and one access-log line.

Every request ends here exactly once, refused or served, streamed or not, with its real outcome: a
streamed request whose events end in an error counts as that error's status and code, although its
HTTP status was already 200 when the error came. The line goes to the `triptych.access` logger at
INFO (`LOG_LEVEL=WARNING` turns it off); with `LOG_FORMAT=json` its fields are keys of the object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from app.metrics import FrontDoorMetrics
from queues.metrics import child

log = logging.getLogger("triptych.access")
CLIENT_LEFT = 499  # nginx's status for a client that closed the connection first


@dataclass
class Outcome:
    """How one request ended, and what it cost."""

    status: int = 200
    code: str | None = None  # the error's code when status is not 200
    stream: bool = False
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    timings: dict[str, float] = field(default_factory=dict)


def finish(metrics: FrontDoorMetrics, mode: str, outcome: Outcome, total_s: float) -> None:
    child(metrics.requests, str(outcome.status)).inc()
    if outcome.code is not None and outcome.status != 200:
        child(metrics.errors, outcome.code).inc()
    if not log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {
        "route": "/v1/chat/completions",
        "mode": mode,
        "stream": outcome.stream,
        "status": outcome.status,
    }
    if outcome.code is not None:
        fields["code"] = outcome.code
    if outcome.finish_reason is not None:
        fields["finish_reason"] = outcome.finish_reason
    if outcome.completion_tokens or outcome.prompt_tokens:
        fields["prompt_tokens"] = outcome.prompt_tokens
        fields["completion_tokens"] = outcome.completion_tokens
    if outcome.ttft_s is not None:
        fields["ttft_s"] = round(outcome.ttft_s, 4)
    fields["total_s"] = round(total_s, 4)
    fields.update({name: round(seconds, 4) for name, seconds in outcome.timings.items()})
    text = " ".join(f"{name}={value}" for name, value in fields.items())
    log.info("chat %s", text, extra={"fields": fields})  # the request id: the log filter adds it
