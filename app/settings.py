"""The front door's settings, read from environment variables (see the README's table)."""

from __future__ import annotations

import os

import msgspec

from queues.config import env_names
from queues.types import Mode


class AppSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
    model: str  # checkpoint directory (Hugging Face layout)
    served_model_name: str = ""  # model id in the API; default: the directory's name
    mode: Mode = "e-p-d"
    host: str = "127.0.0.1"
    port: int = 8000
    app_workers: int = 1  # front-door processes on the port (uvicorn workers)
    api_keys: list[str] = []  # when set, every route but /health needs `Authorization: Bearer <key>`
    max_body_bytes: int = 64 * 1024 * 1024
    max_images_per_request: int = 16
    max_videos_per_request: int = 2
    max_audios_per_request: int = 4
    max_prompt_tokens: int = 0  # 0: the model's context length
    max_tokens_limit: int = 4096  # largest max_tokens a request may ask for
    default_max_tokens: int = 256  # when the request gives none (nor does generation_config.json)
    prompt_cache_entries: int = 1024  # rendered prompts kept for requests with the same messages
    request_timeout_s: float = 300.0  # deadline of every request, from acceptance
    retry_after_s: int = 1  # Retry-After of a 429 / 503
    admission_timeout_s: float = 30.0  # a stage without workers, started on demand by an autoscaler
    instance_id: str = ""  # answered by /health (default: random per process); `make run` checks it

    @property
    def model_id(self) -> str:
        return self.served_model_name or os.path.basename(os.path.normpath(self.model))
