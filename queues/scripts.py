"""The runtime's Lua scripts, and how to call them (EVALSHA, reloaded after NOSCRIPT).

Each script is atomic, like MULTI/EXEC, and also checks that the entry is still owned by the
calling consumer: a worker whose lease expired (and whose job another worker reclaimed) can no
longer hand that job on a second time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

Call = tuple[Sequence[Any], Sequence[Any]]  # (keys, args) of one script call

# KEYS[1] stream to enqueue on. ARGV[1] backlog limit (0 = none), ARGV[2..] entry fields.
# Returns the new entry id, or false when the stream is at its limit.
ENQUEUE = """
local limit = tonumber(ARGV[1])
if limit > 0 and redis.call('XLEN', KEYS[1]) >= limit then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
"""

# Settle one entry: optionally XADD a new entry somewhere, then XACK + XDEL the current one, and
# publish to the request's channel. KEYS[1] current stream, KEYS[2] target stream, KEYS[3] the
# request's cancellation marker. ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer, ARGV[4] channel,
# ARGV[5] event to publish ('' = none), ARGV[6] stage named in a progress event carrying the new
# entry id ('' = none), ARGV[7] '1' to drop the new entry when the request was cancelled,
# ARGV[8..] fields of the new entry (none = acknowledge only).
# Returns the new entry id, '' when nothing was added, or false when the entry is not ours.
SETTLE = """
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[3])
if #owned == 0 then return false end
local new_id = ''
if #ARGV >= 8 and not (ARGV[7] == '1' and redis.call('EXISTS', KEYS[3]) == 1) then
  new_id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 8))
  if ARGV[6] ~= '' then
    local progress = {kind='progress', stage=ARGV[6], stream=KEYS[2], entry_id=new_id}
    redis.call('PUBLISH', ARGV[4], cmsgpack.pack(progress))
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return new_id
"""

# Renew the lease of in-flight entries still owned by the caller (XCLAIM resets the idle time).
# KEYS[1] stream. ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids.
# Returns the ids that are no longer ours (another worker reclaimed them, or they are gone).
RENEW = """
local lost = {}
for i = 3, #ARGV do
  local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #owned > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""


# Publish several messages in one command: ARGV is channel, message, channel, message, ...
# Returns the receiver count of each. (One reply to parse instead of one per message.)
PUBLISH_MANY = """
local counts = {}
for i = 1, #ARGV, 2 do
  counts[#counts + 1] = redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return counts
"""


class Commands(Protocol):
    """Where scripts run: a `WireLink` on the hot paths, `Pooled` (redis-py) for the occasional call."""

    async def call(self, *args: Any) -> Any: ...

    async def call_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Replies of several commands in one round trip; error replies returned, not raised."""
        ...


class Pooled:
    """A redis-py client as `Commands`."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def call(self, *args: Any) -> Any:
        return await self.client.execute_command(*args)

    async def call_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))


class Script:
    """A Lua script called by SHA; loaded on first use and again after a Redis restart."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def command(self, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    async def __call__(self, conn: Commands, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return await conn.call(*self.command(keys, args))
        except NoScriptError:
            await conn.call("SCRIPT", "LOAD", self.source)
            return await conn.call(*self.command(keys, args))

    async def many(self, conn: Commands, calls: Sequence[Call]) -> list[Any]:
        """Run the script once per (keys, args) in one pipelined round trip. Per-call errors are
        returned in place of results, not raised."""
        commands = [self.command(keys, args) for keys, args in calls]
        results = await conn.call_many(commands)
        if any(isinstance(r, NoScriptError) for r in results):
            await conn.call("SCRIPT", "LOAD", self.source)
            results = await conn.call_many(commands)
        return results


enqueue_script = Script(ENQUEUE)
settle_script = Script(SETTLE)
renew_script = Script(RENEW)
publish_script = Script(PUBLISH_MANY)
