"""Every Redis key and channel name the system uses, in one place.

All keys of one deployment share the hash tag `{prefix}`, so a stage hand-off (the settle script:
XADD to the next stream, XACK + XDEL of the current entry) stays inside one Redis Cluster slot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "triptych"

    @property
    def tag(self) -> str:
        return "{" + self.prefix + "}"

    def stream(self, stage: str) -> str:
        """The job stream a stage's consumer group reads."""
        return f"{self.tag}:stream:{stage}"

    def group(self, stage: str) -> str:
        return stage

    def dead(self, stage: str) -> str:
        """Dead-letter stream of a stage: entries that failed too often or could not be read."""
        return f"{self.tag}:dead:{stage}"

    def tokens(self, request_id: str) -> str:
        """Pub/sub channel carrying one request's output events to the front door."""
        return f"{self.tag}:tokens:{request_id}"

    def cancel(self, request_id: str) -> str:
        """Marker key (with a TTL) saying a request was cancelled."""
        return f"{self.tag}:cancel:{request_id}"

    @property
    def cancel_channel(self) -> str:
        """Broadcast pub/sub channel on which cancelled request ids are announced to every worker."""
        return f"{self.tag}:cancelled"

    @property
    def heartbeat_prefix(self) -> str:
        """What every heartbeat key starts with; the stage and the consumer follow."""
        return f"{self.tag}:hb:"

    def heartbeat(self, stage: str, consumer: str) -> str:
        return f"{self.heartbeat_prefix}{stage}:{consumer}"

    def heartbeat_pattern(self, stage: str) -> str:
        return f"{self.heartbeat_prefix}{stage}:*"

    def scaler(self, stage: str) -> str:
        """Marker (with a TTL) of an autoscaler that starts workers of `stage` on demand."""
        return f"{self.tag}:scaler:{stage}"

    def agent(self, agent_name: str) -> str:
        """Where a tensor-transfer agent publishes its (NIXL) metadata."""
        return f"{self.tag}:agent:{agent_name}"

    def blob(self, name: str) -> str:
        """A tensor payload stored in Redis (the no-NIXL fallback for large tensors)."""
        return f"{self.tag}:blob:{name}"
