"""The lean Redis connection against a real Redis: replies in order, errors, pushes, a stalled server
and a killed connection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from queues.scripts import Script
from queues.wire import Wire, WireLink


async def test_pipelined_replies_come_back_in_order(redis: aioredis.Redis) -> None:
    wire = await Wire.open(redis, timeout_s=2.0)
    try:
        commands = [("SET", "w:a", "1"), ("INCRBY", "w:a", 41), ("GET", "w:a"), ("GET", "w:none")]
        futures = wire.send_many(commands)
        assert [await f for f in futures] == [b"OK", 42, b"42", None]
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await wire.call("HSET", "w:a", "f", "v")
    finally:
        wire.close()


async def test_error_replies_stay_in_place_and_scripts_load_themselves(redis: aioredis.Redis) -> None:
    link = WireLink(redis, timeout_s=2.0)
    try:
        replies = await link.call_many([("PING",), ("NOSUCHCOMMAND",), ("ECHO", b"x")])
        assert replies[0] == b"PONG" and isinstance(replies[1], ResponseError) and replies[2] == b"x"
        script = Script("return ARGV[1] .. KEYS[1]")
        await redis.script_flush()
        with pytest.raises(NoScriptError):
            await link.call(*script.command(["k"], ["v"]))
        assert await script(link, ["k"], ["v"]) == b"vk"  # loaded after NOSCRIPT
        await redis.script_flush()
        assert await script.many(link, [(["a"], ["1"]), (["b"], ["2"])]) == [b"1a", b"2b"]
    finally:
        link.close()


async def test_pushes_go_to_the_callback(redis: aioredis.Redis) -> None:
    pushes: list[list[Any]] = []
    wire = await Wire.open(redis, timeout_s=2.0, on_push=pushes.append)
    try:
        wire.send_many([], push_only=[("SUBSCRIBE", "w:ch")])
        assert await wire.call("PING") == b"PONG"  # after the confirmation, on the same connection
        await redis.publish("w:ch", b"hello")
        assert await wire.call("PING") == b"PONG"
        assert pushes == [[b"subscribe", b"w:ch", 1], [b"message", b"w:ch", b"hello"]]
    finally:
        wire.close()


async def test_a_silent_server_breaks_the_connection_within_the_timeout(redis: aioredis.Redis) -> None:
    wire = await Wire.open(redis, timeout_s=0.3)
    await redis.execute_command("CLIENT", "PAUSE", 1500, "ALL")
    try:
        with pytest.raises(RedisTimeoutError):
            await asyncio.wait_for(wire.call("PING"), 1.0)  # the watchdog, not wait_for, ends it
        assert wire.closed
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")


async def test_a_killed_connection_fails_its_callers_and_the_link_reopens(redis: aioredis.Redis) -> None:
    link = WireLink(redis, timeout_s=5.0)
    try:
        client_id = await link.call("CLIENT", "ID")
        blocked = asyncio.create_task(link.call("BLPOP", "w:never", 0))
        await asyncio.sleep(0.1)
        await redis.execute_command("CLIENT", "KILL", "ID", client_id)
        with pytest.raises(RedisConnectionError):
            await blocked
        assert await link.call("CLIENT", "ID") != client_id  # a new connection
    finally:
        link.close()
