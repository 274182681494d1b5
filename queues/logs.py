"""Logging for every process: plain text by default, one JSON object per line with LOG_FORMAT=json;
LOG_LEVEL sets the level (both in `LogSettings`).

The runtime sets `request_id` (a context variable) while it runs a job, so every log line a stage
writes about a request carries that request's id, in every process it passes through. A line logged
with `extra={"fields": {...}}` (the front door's access log) has those fields as keys in JSON.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import Literal

import msgspec

from queues.config import env_names, from_env

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


class LogSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("LOG_")):
    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", ""):
            entry["request_id"] = record.request_id  # type: ignore[attr-defined]
        fields = getattr(record, "fields", None)  # `extra={"fields": {...}}`: keys of their own
        if isinstance(fields, dict):
            entry.update({key: value for key, value in fields.items() if key not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(settings: LogSettings | None = None) -> None:
    settings = settings or from_env(LogSettings)
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        fmt = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(request_id)s %(message)s"
        handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
