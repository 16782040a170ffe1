"""Concurrency leases from Python: acquire / release, and ``lease()`` as a context manager (sync
and async) that releases on exit, exceptions included — and a holder killed with SIGKILL whose
slot comes back when its lease ends."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from servers import Server

from redis_ratelimit import (
    AlgorithmMismatchError,
    AsyncRateLimiter,
    InvalidArgumentError,
    Lease,
    LeaseUnavailableError,
    RateLimiter,
)
from redis_ratelimit.types import Algorithm


@pytest.fixture
def limiter(module_server: Server) -> Iterator[RateLimiter]:
    client = module_server.client()
    yield RateLimiter(client)
    client.close()


def test_acquire_renew_release(limiter: RateLimiter, prefix: str) -> None:
    key = f"{prefix}:db"
    first = limiter.acquire(key, 2, "10s", id="a")
    assert first == Lease(True, "a", 1, 0.0, 10.0)
    second = limiter.acquire(key, 2, "10s")
    assert second.allowed
    assert second.id is not None
    assert second.id.isdigit()
    denied = limiter.acquire(key, 2, "10s")
    assert (denied.allowed, denied.id, denied.in_flight) == (False, None, 2)
    assert 9.0 <= denied.retry_after <= 10.0
    renewed = limiter.acquire(key, 2, "20s", id="a")
    assert (renewed.allowed, renewed.in_flight, renewed.reset_after) == (True, 2, 20.0)
    inspection = limiter.inspect(key)
    assert inspection is not None
    assert inspection.algorithm is Algorithm.LEASES
    assert inspection.state["in_flight"] == 2
    assert limiter.release(key, "a") is True
    assert limiter.release(key, "a") is False
    assert limiter.release(key, second.id) is True
    assert limiter.client.exists(key) == 0


def test_errors_are_typed(limiter: RateLimiter, prefix: str) -> None:
    with pytest.raises(InvalidArgumentError, match="limit must be"):
        limiter.acquire(f"{prefix}:e", 10_001, "1s")
    with pytest.raises(InvalidArgumentError, match="lease must be"):
        limiter.acquire(f"{prefix}:e", 1, "1y")
    with pytest.raises(InvalidArgumentError, match="id must be"):
        limiter.acquire(f"{prefix}:e", 1, "1s", id="")
    limiter.allow(f"{prefix}:r", 1, "1m")
    with pytest.raises(AlgorithmMismatchError, match="not leases"):
        limiter.acquire(f"{prefix}:r", 1, "1s")
    limiter.acquire(f"{prefix}:l", 1, "1m")
    with pytest.raises(AlgorithmMismatchError, match=r"use RL\.ACQUIRE"):
        limiter.allow(f"{prefix}:l", 1, "1m")
    with pytest.raises(InvalidArgumentError, match="not a rate limit"):
        limiter.allow(f"{prefix}:x", 1, "1m", algorithm=Algorithm.LEASES)


def test_the_context_manager_releases_on_exit_and_on_exceptions(
    limiter: RateLimiter, prefix: str
) -> None:
    key = f"{prefix}:cm"
    with limiter.lease(key, 1, "30s") as held:
        assert held.lease is not None
        assert held.lease.in_flight == 1
        second = limiter.lease(key, 1, "30s")
        with pytest.raises(LeaseUnavailableError) as info:
            second.__enter__()
        assert 29 <= info.value.lease.retry_after <= 30
    assert limiter.client.exists(key) == 0

    def fails_inside() -> None:
        with limiter.lease(key, 1, "30s", id="job-7") as held:
            assert held.id == "job-7"
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        fails_inside()
    assert limiter.client.exists(key) == 0
    # Renewing inside the block keeps the id and moves the end.
    with limiter.lease(key, 1, "1s") as held:
        assert held.renew().reset_after == 1.0
        assert held.lease is not None
        assert held.lease.in_flight == 1
    assert limiter.client.exists(key) == 0


def test_entering_waits_for_a_slot_up_to_its_timeout(limiter: RateLimiter, prefix: str) -> None:
    key = f"{prefix}:wait"
    taken = limiter.acquire(key, 1, "30s")
    assert taken.id is not None
    freed_by = taken.id
    threading.Timer(0.3, lambda: limiter.release(key, freed_by)).start()
    started = time.monotonic()
    with limiter.lease(key, 1, "30s", timeout=5) as held:
        waited = time.monotonic() - started
        assert 0.25 <= waited < 5, waited
        assert held.lease is not None
        assert held.lease.allowed
    limiter.acquire(key, 1, "30s")
    waiting = limiter.lease(key, 1, "30s", timeout=0.2)
    started = time.monotonic()
    with pytest.raises(LeaseUnavailableError):
        waiting.__enter__()
    assert 0.15 <= time.monotonic() - started < 5


def test_async_leases(module_server: Server, prefix: str) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=module_server.port)
        limiter = AsyncRateLimiter(client)
        key = f"{prefix}:async"
        try:
            got = await limiter.acquire(key, 2, "10s", id="a")
            assert got.allowed
            assert got.id == "a"
            assert await limiter.release(key, "a") is True
            async with limiter.lease(key, 1, "30s") as held:
                assert held.lease is not None
                assert held.lease.in_flight == 1
                second = limiter.lease(key, 1, "30s")
                with pytest.raises(LeaseUnavailableError):
                    await second.__aenter__()
                assert (await held.renew()).allowed
            assert await client.exists(key) == 0

            async def fails_inside() -> None:
                async with limiter.lease(key, 1, "30s"):
                    raise KeyError("inside")

            with pytest.raises(KeyError):
                await fails_inside()
            assert await client.exists(key) == 0
            # A cancelled task still gives its lease back.
            entered = asyncio.Event()

            async def hold() -> None:
                async with limiter.lease(key, 1, "30s"):
                    entered.set()
                    await asyncio.sleep(60)

            task = asyncio.create_task(hold())
            await entered.wait()
            assert await client.exists(key) == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await client.exists(key) == 0
        finally:
            await client.aclose()

    asyncio.run(main())


HOLDER = textwrap.dedent(
    """
    import sys, time, redis
    from redis_ratelimit import RateLimiter
    limiter = RateLimiter(redis.Redis(port=int(sys.argv[1])))
    with limiter.lease(sys.argv[2], 1, "1500ms"):
        print("held", flush=True)
        time.sleep(60)
    """
)


def test_a_killed_holder_s_slot_comes_back(limiter: RateLimiter, prefix: str) -> None:
    key = f"{prefix}:crash"
    assert isinstance(limiter.client, redis.Redis)
    port = limiter.client.connection_pool.connection_kwargs["port"]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(port), key],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        denied = limiter.acquire(key, 1, "1500ms")
        assert not denied.allowed
        os.kill(holder.pid, signal.SIGKILL)  # no release, no finally: the process is gone
        holder.wait()
        killed = time.monotonic()
        # Still held right after the kill: nobody released it.
        assert not limiter.acquire(key, 1, "1500ms").allowed
        while not (got := limiter.acquire(key, 1, "1500ms")).allowed:
            assert time.monotonic() - killed < 5, "the slot never came back"
            time.sleep(min(got.retry_after, 0.05))
        came_back = time.monotonic() - killed
        assert came_back <= denied.retry_after + 0.5, came_back
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_lease_reply_parsing() -> None:
    assert Lease.from_reply([1, b"x", 3, 0, 1500]) == Lease(True, "x", 3, 0.0, 1.5)
    assert Lease.from_reply([0, None, 3, 7, 9]) == Lease(False, None, 3, 0.007, 0.009)
    with pytest.raises(ValueError, match="5 fields"):
        Lease.from_reply([1, 2])


def test_release_errors_do_not_hide_the_block_s_own(limiter: RateLimiter, prefix: str) -> None:
    key = f"{prefix}:lost"

    def clobbered(then_raise: bool) -> None:
        with limiter.lease(key, 1, "30s"):
            limiter.client.set(key, "clobbered")  # RL.RELEASE will answer WRONGTYPE
            if then_raise:
                raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        clobbered(then_raise=True)
    limiter.client.delete(key)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        clobbered(then_raise=False)
