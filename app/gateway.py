"""The front door's queue client, with its refusals as HTTP errors (429 backlog_full, 503
no_workers / queue_unavailable, each with Retry-After)."""

from __future__ import annotations

from queues.client import QueueClient, Submission
from queues.config import RuntimeConfig
from queues.errors import BacklogFull, ClientError, NoWorkers, QueueUnavailable
from queues.messages import Request
from queues.types import Stage


class Gateway(QueueClient):
    def __init__(
        self,
        config: RuntimeConfig,
        retry_after_s: int = 1,
        *,
        stages: list[Stage] | None = None,
        admission_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(config, stages=stages, admission_timeout_s=admission_timeout_s)
        self.retry_after_s = retry_after_s

    async def accept(self, request: Request) -> Submission:
        """`submit(request)`; a refusal raises its ClientError."""
        try:
            return await self.submit(request)
        except BacklogFull as exc:
            message = (
                f"the server is at capacity ({exc.limit} jobs waiting at {request.route[0]}); retry shortly"
            )
            raise ClientError(429, message, code="backlog_full", retry_after=self.retry_after_s) from None
        except NoWorkers as exc:
            raise ClientError(
                503, f"{exc}; retry shortly", code="no_workers", retry_after=self.retry_after_s
            ) from None
        except QueueUnavailable:
            message = "the job queue is unavailable; retry shortly"
            raise ClientError(
                503, message, code="queue_unavailable", retry_after=self.retry_after_s
            ) from None
