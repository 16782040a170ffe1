"""RateLimiter and AsyncRateLimiter against real servers, errors included."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
import redis.asyncio
from servers import Server

from redis_ratelimit import (
    Algorithm,
    AlgorithmMismatchError,
    AsyncRateLimiter,
    Decision,
    InvalidArgumentError,
    ModuleNotLoadedError,
    RateLimiter,
    RateLimitError,
    Throttle,
    WrongTypeError,
    format_seconds,
    format_window,
)


class Either:
    """RateLimiter, or AsyncRateLimiter driven by a private loop: the same tests for both."""

    def __init__(self, server: Server, asynchronous: bool) -> None:
        self.loop = asyncio.new_event_loop() if asynchronous else None
        self.raw = server.client()
        if self.loop is not None:
            self.aclient = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
            self.limiter: Any = AsyncRateLimiter(self.aclient)
        else:
            self.limiter = RateLimiter(server.client())

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.limiter, name)
        if self.loop is None:
            return method
        loop = self.loop
        return lambda *a, **k: loop.run_until_complete(method(*a, **k))

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.aclient.aclose())
            self.loop.close()


@pytest.fixture(params=["sync", "async"])
def rl(request: pytest.FixtureRequest, module_server: Server) -> Iterator[Either]:
    either = Either(module_server, request.param == "async")
    yield either
    either.close()


def test_allow_then_deny(rl: Either, prefix: str) -> None:
    key = f"{prefix}:a"
    first = rl.allow(key, 2, "1m")
    assert first == Decision(True, 2, 1, 0.0, first.reset_after)
    assert 60 <= first.reset_after <= 120  # sliding-window: the end of the next window
    assert rl.allow(key, 2, "1m").remaining == 0
    denied = rl.allow(key, 2, "1m")
    assert not denied.allowed
    assert denied.remaining == 0
    assert 0 < denied.retry_after <= 90  # at most halfway into the next window
    with pytest.raises(AttributeError):
        denied.allowed = True


def test_peek_does_not_charge(rl: Either, prefix: str) -> None:
    key = f"{prefix}:p"
    peeked = rl.peek(key, 3, 60)  # the reply RL.ALLOW would give, key left alone
    assert (peeked.allowed, peeked.capacity, peeked.remaining, peeked.retry_after) == (
        True,
        3,
        2,
        0,
    )
    assert rl.raw.exists(key) == 0
    rl.allow(key, 3, 60, cost=2)
    peeked = rl.peek(key, 3, 60)
    assert (peeked.allowed, peeked.remaining) == (True, 0)
    assert rl.peek(key, 3, 60, cost=2).allowed is False
    assert rl.allow(key, 3, 60).allowed


@pytest.mark.parametrize(
    "window", ["2s", "2000ms", 2, timedelta(seconds=2), timedelta(microseconds=2_000_000)]
)
def test_windows(rl: Either, prefix: str, window: Any) -> None:
    decision = rl.allow(f"{prefix}:w", 1, window, algorithm=Algorithm.FIXED_WINDOW)
    assert 1.9 <= decision.reset_after <= 2.0
    pttl = rl.raw.pttl(f"{prefix}:w")
    # The expiry is rounded up to the next ms; a loaded machine may stall between the calls.
    assert 1000 <= pttl <= 2001


def test_format_window() -> None:
    assert format_window(timedelta(minutes=1)) == "60000ms"
    assert format_window(timedelta(microseconds=1500)) == "1.5ms"
    assert format_window(timedelta(microseconds=1)) == "0.001ms"
    assert format_window(90) == "90"
    assert format_window("1.5s") == "1.5s"
    with pytest.raises(ValueError, match="positive"):
        format_window(timedelta(0))
    with pytest.raises(TypeError):
        format_window(True)
    with pytest.raises(TypeError):
        format_window(1.5)  # type: ignore[arg-type]


def test_gcra_burst_and_cost(rl: Either, prefix: str) -> None:
    key = f"{prefix}:g"
    d = rl.allow(key, 10, "1s", algorithm="gcra", burst=3)
    assert (d.allowed, d.capacity, d.remaining) == (True, 3, 2)
    assert rl.allow(key, 10, "1s", algorithm="gcra", burst=3, cost=2).remaining == 0
    denied = rl.allow(key, 10, "1s", algorithm="gcra", burst=3)
    assert not denied.allowed
    assert 0 < denied.retry_after <= 0.1
    never = rl.allow(key, 10, "1s", algorithm="gcra", burst=3, cost=4)
    assert not never.allowed
    assert math.isinf(never.retry_after)


def test_wrong_type(rl: Either, prefix: str) -> None:
    rl.raw.set(f"{prefix}:s", "x")
    with pytest.raises(WrongTypeError, match="WRONGTYPE") as info:
        rl.allow(f"{prefix}:s", 1, 1)
    assert isinstance(info.value, redis.ResponseError)
    with pytest.raises(WrongTypeError):
        rl.peek(f"{prefix}:s", 1, 1)


def test_invalid_arguments(rl: Either, prefix: str) -> None:
    with pytest.raises(InvalidArgumentError, match="limit must be"):
        rl.allow(f"{prefix}:e", 0, 1)
    with pytest.raises(InvalidArgumentError, match="window must be"):
        rl.allow(f"{prefix}:e", 1, "1y")
    with pytest.raises(InvalidArgumentError, match="BURST applies only"):
        rl.allow(f"{prefix}:e", 1, 1, burst=2)
    with pytest.raises(InvalidArgumentError, match="COST"):
        rl.allow(f"{prefix}:e", 1, 1, cost=-1)
    with pytest.raises(ValueError, match="not a valid Algorithm"):
        rl.allow(f"{prefix}:e", 1, 1, algorithm="leaky")


def test_algorithm_mismatch(rl: Either, prefix: str) -> None:
    rl.allow(f"{prefix}:m", 5, 60, algorithm="gcra")
    with pytest.raises(AlgorithmMismatchError, match="holds a gcra limiter"):
        rl.allow(f"{prefix}:m", 5, 60, algorithm="fixed-window")
    assert rl.reset(f"{prefix}:m") is True
    assert rl.reset(f"{prefix}:m") is False
    assert rl.allow(f"{prefix}:m", 5, 60, algorithm="fixed-window").allowed


def test_inspect(rl: Either, prefix: str) -> None:
    try:
        rl.inspect(f"{prefix}:none")
    except ModuleNotLoadedError:
        pytest.skip("this build of the module has no RL.INSPECT yet")
    assert rl.inspect(f"{prefix}:none") is None
    rl.allow(f"{prefix}:i", 5, "1m", algorithm="fixed-window", cost=2)
    got = rl.inspect(f"{prefix}:i")
    assert got is not None
    assert (got.algorithm, got.limit, got.window_us, got.burst) == (
        Algorithm.FIXED_WINDOW,
        5,
        60_000_000,
        5,
    )
    assert got.state["count"] == 2
    assert 0 <= got.now_us - got.state["window_start_us"] < 5_000_000
    assert got.window == timedelta(minutes=1)


def test_module_not_loaded(plain_server: Server, prefix: str) -> None:
    limiter = RateLimiter(plain_server.client())
    with pytest.raises(ModuleNotLoadedError) as info:
        limiter.allow(f"{prefix}:x", 1, 1)
    assert info.value.command == "RL.ALLOW"
    assert isinstance(info.value, RateLimitError)


def test_async_module_not_loaded(plain_server: Server, prefix: str) -> None:
    async def run() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=plain_server.port)
        try:
            with pytest.raises(ModuleNotLoadedError):
                await AsyncRateLimiter(client).peek(f"{prefix}:x", 1, 1)
        finally:
            await client.aclose()

    asyncio.run(run())


def test_decoded_responses_and_resp3(module_server: Server, prefix: str) -> None:
    client = redis.Redis(
        host="127.0.0.1", port=module_server.port, protocol=3, decode_responses=True
    )
    decision = RateLimiter(client).allow(f"{prefix}:r3", 2, 60)
    assert (decision.allowed, decision.remaining) == (True, 1)


def test_inspect_every_algorithm(rl: Either, prefix: str) -> None:
    import time

    expected = {
        "sliding-window": {"window_start_us", "current", "previous"},
        "fixed-window": {"window_start_us", "count"},
        "gcra": {"tat_us"},
        "moving-window": {"count", "oldest_us", "newest_us", "runs"},
    }
    for algorithm, fields in expected.items():
        key = f"{prefix}:{algorithm}"
        before = time.time()
        rl.allow(key, 4, "10s", algorithm=algorithm, cost=2)
        got = rl.inspect(key)
        assert got is not None
        assert got.algorithm == Algorithm(algorithm)
        assert set(got.state) == fields, algorithm
        if algorithm == "moving-window":
            assert got.state["count"] == 2
            assert got.state["runs"] == 1
            oldest = got.to_local(got.state["oldest_us"], time.time())
            assert before - 0.05 <= oldest <= time.time() + 0.05
        if algorithm == "gcra":
            assert got.state["tat_us"] > got.now_us


def test_throttle_is_redis_cells_call(rl: Either, prefix: str) -> None:
    # redis-cell's README example: 30 per minute, bursts of 16.
    key = f"{prefix}:cell"
    first = rl.cl_throttle(key, 15, 30, 60)
    assert first == Throttle(False, 16, 15, -1, 2)
    assert first.allowed
    assert not first.never
    replies = [rl.cl_throttle(key, 15, 30, 60) for _ in range(15)]
    assert replies[-1] == Throttle(False, 16, 0, -1, 32)
    assert rl.cl_throttle(key, 15, 30, 60) == Throttle(True, 16, 0, 2, 32)
    # RL.THROTTLE, GCRA and RL.ALLOW read the same limiter.
    assert rl.throttle(key, 15, 30, 60, quantity=0) == Throttle(False, 16, 0, -1, 32)
    assert rl.gcra(key, 15, 30, 60.0).limited
    peek = rl.peek(key, 30, 60, cost=0, algorithm="gcra", burst=16)
    assert (peek.capacity, peek.remaining) == (16, 0)
    got = rl.inspect(key)
    assert got is not None
    assert (got.algorithm, got.limit, got.window_us, got.burst) == (
        Algorithm.GCRA,
        30,
        60_000_000,
        16,
    )
    never = rl.throttle(key, 15, 30, 60, quantity=17)
    assert never.never
    assert (never.limited, never.retry_after) == (True, -1)


def test_gcra_periods_and_tokens(rl: Either, prefix: str) -> None:
    key = f"{prefix}:gcra"
    assert rl.gcra(key, 1, 2, 0.5) == Throttle(False, 2, 1, -1, 1)
    assert rl.gcra(key, 1, 2, timedelta(milliseconds=500)) == Throttle(False, 2, 0, -1, 1)
    denied = rl.gcra(key, 1, 2, 0.5)
    assert (denied.limited, denied.retry_after) == (True, 1)
    assert rl.gcra(f"{prefix}:t", 9, 10, 1, tokens=4).remaining == 6
    assert rl.throttle(f"{prefix}:w", 0, 10, "500ms").reset_after == 1


def test_throttle_errors(rl: Either, prefix: str) -> None:
    with pytest.raises(InvalidArgumentError, match="max_burst must be"):
        rl.throttle(f"{prefix}:e", -1, 1, 10)
    with pytest.raises(InvalidArgumentError, match="count_per_period must be"):
        rl.cl_throttle(f"{prefix}:e", 1, 0, 10)
    with pytest.raises(InvalidArgumentError, match="TOKENS must be"):
        rl.gcra(f"{prefix}:e", 1, 1, 10, tokens=0)
    with pytest.raises(InvalidArgumentError, match="period must be"):
        rl.gcra(f"{prefix}:e", 1, 1, 1e12)
    assert rl.raw.exists(f"{prefix}:e") == 0
    rl.raw.set(f"{prefix}:s", "x")
    with pytest.raises(WrongTypeError):
        rl.gcra(f"{prefix}:s", 1, 1, 10)


def test_format_seconds() -> None:
    assert format_seconds(60) == "60"
    assert format_seconds(0.1) == "0.1"
    assert format_seconds(1e-06) == "1e-06"
    assert format_seconds(timedelta(minutes=1)) == "60.000000"
    with pytest.raises(ValueError, match="positive"):
        format_seconds(timedelta(0))
    with pytest.raises(ValueError, match="finite"):
        format_seconds(math.inf)
    with pytest.raises(TypeError):
        format_seconds(True)
    with pytest.raises(TypeError):
        format_seconds("60")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected 5 integers"):
        Throttle.from_reply([0, 1])
