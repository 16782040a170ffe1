"""Differential harness for limits' sliding window counter: two implementations, one server time.

Each step runs the same operation on two *sides* inside one ``MULTI``/``EXEC``, so both read the
same server time (Valkey, like Redis 7.2+, freezes the clock for a transaction: ``PTTL``, expiry
and the module's ``now`` agree), and compares the replies: limits' storage answers (``acquire`` →
admitted, ``window`` → ``(previous count, previous TTL, current count, current TTL)``,
``clear``) and what limits' strategy computes from them (``hit``, ``test``, ``get_window_stats``
remaining). Random operations over several rules, costs 0 to limit + 1, several identities, and
real waits that cross window boundaries.

Two pairs: limits' own Lua scripts against themselves under two key prefixes (the harness is
deterministic), and limits' scripts against the module's ``ALGO limits-sliding-window``
(:class:`Module`): the same answers over ``RL_DIFF_STEPS`` steps (default 10,000), a cost-0 hit
on an absent limiter included (the module's ``COST 0`` is limits' acquire of 0 for this
algorithm).

Redis 7.0 does not freeze the clock within a transaction (``PTTL`` reads the live clock: the
two sides' TTLs differ by a millisecond now and then), so the exact comparison runs on Valkey.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import random
import shutil
import struct
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import limits.aio.strategies
import limits.storage
import limits.strategies
import pytest
from limits import parse
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from servers import Server, start_server

from redis_ratelimit import Inspection
from redis_ratelimit.limits_storage import AsyncRateLimitStorage, RateLimitStorage

STEPS = int(os.environ.get("RL_DIFF_STEPS", "10000"))
#: (limit, window in seconds): limits' windows are whole seconds.
RULES = [(3, 1), (5, 1), (10, 2), (1, 1), (25, 3)]
IDENTITIES = ["a", "b", "c"]

#: How many replies of the transaction an operation queued, and how to read them.
Reader = tuple[int, Callable[[list[Any]], Any]]


class Side(Protocol):
    """One implementation of limits' sliding-window-counter storage, queued on a transaction."""

    def acquire(self, pipe: Any, key: str, limit: int, expiry: int, amount: int) -> Reader:
        """Queue ``acquire_sliding_window_entry``: admitted or not."""

    def window(self, pipe: Any, key: str, limit: int, expiry: int) -> Reader:
        """Queue ``get_sliding_window``: ``(prev, prev_ttl_s, cur, cur_ttl_s)``."""

    def clear(self, pipe: Any, key: str) -> Reader:
        """Queue ``clear_sliding_window``."""


def _window_reply(window: Any) -> tuple[int, float, int, float]:
    # limits' own reading of its script's reply (RedisStorage.get_sliding_window).
    if not window:
        return 0, 0.0, 0, 0.0
    return (
        int(window[0] or 0),
        max(0, float(window[1] or 0)) / 1000,
        int(window[2] or 0),
        max(0, float(window[3] or 0)) / 1000,
    )


class LimitsLua:
    """limits' own scripts (``redis://``, and ``rl://`` today) under a key prefix."""

    def __init__(self, storage: RedisStorage) -> None:
        self.storage = storage

    def _keys(self, key: str) -> list[str]:
        s = self.storage
        return [
            s.prefixed_key(s._previous_window_key(key)),
            s.prefixed_key(s._current_window_key(key)),
        ]

    def acquire(self, pipe: Any, key: str, limit: int, expiry: int, amount: int) -> Reader:
        self.storage.lua_acquire_sliding_window(self._keys(key), [limit, expiry, amount], pipe)
        return 1, lambda replies: bool(replies[0])

    def window(self, pipe: Any, key: str, limit: int, expiry: int) -> Reader:
        self.storage.lua_sliding_window(self._keys(key), [expiry], pipe)
        return 1, lambda replies: _window_reply(replies[0])

    def clear(self, pipe: Any, key: str) -> Reader:
        pipe.delete(*self._keys(key))
        return 1, lambda _replies: None


class Module:
    """The module's ``ALGO limits-sliding-window``: one key; a hit is ``RL.ALLOW … COST n`` (0
    included: limits' acquire of 0), a read is what ``rl://`` sends — ``RL.INSPECT`` and, when the
    key exists with a live current counter, ``RL.ALLOW … COST 0`` (which stores the shift limits'
    read makes) — run as one script here so that it stays inside the transaction (the storage
    sends the two commands). The key expires with its current counter: a ``PTTL`` of 0 is the ms
    the counters expired in, when the server still holds the key."""

    READ = (
        "if redis.call('PTTL', KEYS[1]) > 0 then "
        "redis.call('RL.ALLOW', KEYS[1], ARGV[1], ARGV[2], 'COST', 0, 'ALGO', ARGV[3]) end "
        "return redis.call('RL.INSPECT', KEYS[1])"
    )

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def acquire(self, pipe: Any, key: str, limit: int, expiry: int, amount: int) -> Reader:
        args = ("RL.ALLOW", f"{self.prefix}:{key}", limit, expiry, "COST", amount)
        pipe.execute_command(*args, "ALGO", LIMITS_ALGO)
        return 1, lambda replies: int(replies[0][0]) == 1

    def window(self, pipe: Any, key: str, limit: int, expiry: int) -> Reader:
        pipe.eval(self.READ, 1, f"{self.prefix}:{key}", limit, expiry, LIMITS_ALGO)
        return 1, lambda replies: _inspect_window(replies[0])

    def clear(self, pipe: Any, key: str) -> Reader:
        pipe.delete(f"{self.prefix}:{key}")
        return 1, lambda _replies: None


LIMITS_ALGO = "limits-sliding-window"


def _inspect_window(reply: Any) -> tuple[int, float, int, float]:
    inspection = Inspection.from_reply(reply)
    if inspection is None:
        return 0, 0.0, 0, 0.0
    state = inspection.state
    return (
        state["previous"],
        max(0, state["previous_ttl_ms"]) / 1000,
        state["current"],
        max(0, state["current_ttl_ms"]) / 1000,
    )


def weighted(limit_expiry: int, window: tuple[int, float, int, float]) -> float:
    """limits' ``SlidingWindowCounterRateLimiter._weighted_count``."""
    previous, previous_ttl, current, _ = window
    return previous * previous_ttl / limit_expiry + current


@pytest.fixture(
    params=[
        "lua",
        "module",
    ]
)
def sides(request: pytest.FixtureRequest, module_server: Server) -> Iterator[tuple[Side, Side]]:
    """limits' scripts against themselves (the harness is deterministic), and against the module."""
    run = uuid.uuid4().hex[:8]
    uri = f"redis://{module_server.url}"
    theirs = RedisStorage(uri, key_prefix=f"diff-{run}-redis")
    ours = RedisStorage(uri, key_prefix=f"diff-{run}-rl")
    other: Side = LimitsLua(ours) if request.param == "lua" else Module(f"diff-{run}-rl")
    yield LimitsLua(theirs), other
    theirs.storage.close()
    ours.storage.close()


def test_same_answers_at_the_same_server_time(
    sides: tuple[Side, Side], module_server: Server
) -> None:
    if module_server.flavor == "redis":
        pytest.skip("Redis 7.0 reads the live clock within a transaction: Valkey runs this")
    rng = random.Random(int(os.environ.get("RL_DIFF_SEED", "16")))
    client = module_server.client()
    counts: dict[str, int] = {}
    try:
        for step in range(STEPS):
            limit, expiry = rng.choice(RULES)
            key = f"LIMITER/{rng.choice(IDENTITIES)}/{limit}/{expiry}"
            op = rng.choices(["hit", "test", "stats", "clear"], weights=[12, 4, 4, 1])[0]
            cost = rng.randint(0, limit + 1)
            pipe = client.pipeline(transaction=True)
            readers = []
            for side in sides:
                if op == "hit":
                    readers.append(side.acquire(pipe, key, limit, expiry, cost))
                elif op == "clear":
                    readers.append(side.clear(pipe, key))
                else:
                    readers.append(side.window(pipe, key, limit, expiry))
            raw = pipe.execute()
            replies = []
            for count, read in readers:
                replies.append(read(raw[:count]))
                raw = raw[count:]
            theirs, ours = replies
            context = (step, op, key, cost)
            assert theirs == ours, context
            if op == "test":  # limits' test(): weighted < limit - cost + 1
                assert (weighted(expiry, theirs) < limit - cost + 1) == (
                    weighted(expiry, ours) < limit - cost + 1
                ), context
            if op == "stats":  # limits' get_window_stats(): remaining
                remaining = [max(0, limit - math.floor(weighted(expiry, w))) for w in replies]
                assert remaining[0] == remaining[1], context
            counts[op] = counts.get(op, 0) + 1
            if op == "hit":
                counts["admitted" if theirs else "denied"] = (
                    counts.get("admitted" if theirs else "denied", 0) + 1
                )
            elif op != "clear" and theirs[0] > 0 and theirs[1] > 0:
                counts["weighted"] = counts.get("weighted", 0) + 1  # a previous window counts
            if rng.random() < 0.6 / 1000:  # now and then, wait across window boundaries
                time.sleep(rng.uniform(0.2, 1.2))
            elif step % 2500 == 1249:
                # and surely a few times: on a fast machine the random waits alone may never
                # leave a previous window to weigh (10,000 steps can take under 4 s)
                time.sleep(1.1)
    finally:
        client.close()
    # Every kind of answer came up: admissions, denials, reads weighing a previous window.
    kinds = ("clear", "admitted", "denied", "weighted")
    assert all(counts.get(kind, 0) > 0 for kind in kinds), {k: counts.get(k, 0) for k in kinds}


# ---------------------------------------------------------------------------------------------
# limits' public API: redis:// against rl://, on a server whose wall clock the test sets

#: Public-API steps per server (``RL_DIFF_API_STEPS``), and per asyncio client.
API_STEPS = int(os.environ.get("RL_DIFF_API_STEPS", "10000"))
ASYNC_STEPS = int(os.environ.get("RL_DIFF_ASYNC_STEPS", "1500"))
#: limits' rules, as limits parses them (windows in whole seconds).
API_RULES = ["3/second", "5/second", "10/2 seconds", "1/second", "25/3 seconds", "7/minute"]
#: ``rl://`` replaces ``redis://`` after this many steps: the keys alive then migrate.
SWITCH_AT = 400
FAKE_CLOCK_SOURCE = Path(__file__).with_name("fakeclock.c")


class Clock:
    """The server's wall clock (``fakeclock.c``): microseconds in a file the server maps."""

    def __init__(self, path: Path, start_us: int) -> None:
        self.path = path
        self.us = start_us
        path.write_bytes(struct.pack("=q", start_us))

    def advance(self, us: int) -> None:
        self.us += us
        with open(self.path, "r+b") as out:  # rewritten in place: the server maps the file
            out.write(struct.pack("=q", self.us))

    def time(self) -> float:
        """limits' ``time.time()`` in ``get_window_stats``: the same clock, in seconds."""
        return self.us / 1e6


@pytest.fixture(scope="module")
def clocked(
    flavor: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Clock]]:
    """A server of this test's own whose wall clock stands still until the test moves it."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.fail("cc is needed to build tests/fakeclock.c (the Rust toolchain's linker)")
    directory = tmp_path_factory.mktemp("fakeclock")
    library = directory / "fakeclock.so"
    subprocess.run(
        [cc, "-O2", "-shared", "-fPIC", "-o", str(library), str(FAKE_CLOCK_SOURCE)], check=True
    )
    clock = Clock(directory / "clock", int(time.time()) * 1_000_000)
    env = {"LD_PRELOAD": str(library), "RL_FAKE_CLOCK": str(clock.path)}
    server = start_server(flavor, with_module=True, env=env)
    try:
        assert int(server.client().time()[0]) == clock.us // 1_000_000, "the clock is not faked"
        yield server, clock
    finally:
        server.stop()


def _advance(rng: random.Random, clock: Clock) -> None:
    """Move the server's clock: mostly not or by less than a ms, now and then across windows."""
    kind = rng.random()
    if kind < 0.35:
        return
    if kind < 0.6:
        clock.advance(rng.randint(1, 999))  # within or just past the current ms
    elif kind < 0.97:
        clock.advance(rng.randint(1_000, 250_000))
    else:
        clock.advance(rng.randint(250_000, 8_000_000))  # across window boundaries


async def _answer(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def _drive(
    rng: random.Random,
    clock: Clock,
    theirs: Any,
    ours_before: Any,
    ours: Any,
    steps: int,
    plain_keys: Callable[[], int],
) -> dict[str, int]:
    """The same random operations through limits' strategies on two storages; equal answers.

    *ours_before* serves the ``rl://`` side's key prefix for the first ``SWITCH_AT`` steps (limits'
    ``redis://``: the two plain keys a switch finds), *ours* (``rl://``) after.
    """
    items = [parse(rule) for rule in API_RULES]
    counts: dict[str, int] = {}
    for step in range(steps):
        if step == SWITCH_AT:  # limits' plain keys the switch finds, served by its scripts
            counts["plain_at_switch"] = plain_keys()
        item = rng.choice(items)
        who = rng.choice(IDENTITIES)
        op = rng.choices(["hit", "test", "stats", "window", "clear"], weights=[12, 4, 4, 2, 1])[0]
        cost = rng.randint(0, item.amount + 1)
        answers = []
        for strategy in (theirs, ours_before if step < SWITCH_AT else ours):
            if op == "hit":
                answer = await _answer(strategy.hit(item, who, cost=cost))
            elif op == "test":
                answer = await _answer(strategy.test(item, who, cost=cost))
            elif op == "stats":
                answer = tuple(await _answer(strategy.get_window_stats(item, who)))
            elif op == "window":  # the storage method the strategy reads
                key = item.key_for(who)
                answer = await _answer(strategy.storage.get_sliding_window(key, item.get_expiry()))
            else:
                answer = await _answer(strategy.clear(item, who))
            answers.append(answer)
        assert answers[0] == answers[1], (step, op, str(item), who, cost, clock.us)
        counts[op] = counts.get(op, 0) + 1
        if op == "hit":
            kind = "admitted" if answers[0] else "denied"
            counts[kind] = counts.get(kind, 0) + 1
        if op == "window" and answers[0][0] > 0 and answers[0][1] > 0:
            counts["weighted"] = counts.get("weighted", 0) + 1
        _advance(rng, clock)
    assert sum(counts[op] for op in ("hit", "test", "stats", "window", "clear")) == steps
    return counts


def _plain_keys(server: Server, prefix: str) -> Callable[[], int]:
    def count() -> int:
        client = server.client()
        names = list(client.scan_iter(match=f"{prefix}:*"))
        plain = sum(client.type(name) == b"string" for name in names)
        client.close()
        return plain

    return count


def _commandstats(server: Server) -> dict[str, int]:
    stats = server.client().info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def _check_counts(counts: dict[str, int]) -> None:
    # Every kind of answer came up: admissions, denials, reads weighing a previous window.
    for kind in ("clear", "admitted", "denied", "weighted", "stats", "test", "plain_at_switch"):
        assert counts.get(kind, 0) > 0, (kind, counts)


def test_limits_api_redis_and_rl_agree(clocked: tuple[Server, Clock]) -> None:
    """limits' SlidingWindowCounterRateLimiter on ``redis://`` and on ``rl://``: the same answers.

    hit / test / get_window_stats / clear and the storage's get_sliding_window, costs 0 to
    limit + 1, several rules and identities, on a server clock the test moves (by µs, ms, and
    across windows): equal, every step, no tolerance. The ``rl://`` side starts on limits'
    ``redis://`` (same prefix) and switches after ``SWITCH_AT`` steps, so the keys alive at the
    switch run through the migration.
    """
    server, clock = clocked
    rng = random.Random(int(os.environ.get("RL_DIFF_SEED", "16")))
    run = uuid.uuid4().hex[:8]
    uri = f"redis://{server.url}"
    theirs = RedisStorage(uri, key_prefix=f"api-{run}-redis")
    before = RedisStorage(uri, key_prefix=f"api-{run}-rl")
    ours = limits.storage.storage_from_string(f"rl://{server.url}", key_prefix=f"api-{run}-rl")
    assert isinstance(ours, RateLimitStorage)
    theirs_, before_, ours_ = (SlidingWindowCounterRateLimiter(s) for s in (theirs, before, ours))
    calls_before = _commandstats(server).get("rl.allow", 0)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(limits.strategies, "time", clock)
            steps = SWITCH_AT + API_STEPS
            plain = _plain_keys(server, f"api-{run}-rl")
            drive = _drive(rng, clock, theirs_, before_, ours_, steps, plain)
            counts = asyncio.run(drive)
    finally:
        for storage in (theirs, before, ours):
            storage.storage.close()
    _check_counts(counts)
    assert ours.module_support().limits_sliding
    # The module served rl:// (limits' scripts the plain keys from before the switch).
    assert _commandstats(server).get("rl.allow", 0) - calls_before > API_STEPS // 4


@pytest.mark.parametrize("implementation", ["redispy", "coredis", "valkey"])
def test_limits_async_api_redis_and_rl_agree(
    clocked: tuple[Server, Clock], implementation: str
) -> None:
    """The same through limits' asyncio strategy on ``async+rl://`` (each asyncio client)."""
    server, clock = clocked
    pytest.importorskip(implementation if implementation != "redispy" else "redis")
    rng = random.Random(int(os.environ.get("RL_DIFF_SEED", "16")) + 1)
    run = uuid.uuid4().hex[:8]
    uri = f"redis://{server.url}"
    theirs = RedisStorage(uri, key_prefix=f"aapi-{run}-redis")
    before = RedisStorage(uri, key_prefix=f"aapi-{run}-rl")
    ours = limits.storage.storage_from_string(
        f"async+rl://{server.url}", key_prefix=f"aapi-{run}-rl", implementation=implementation
    )
    assert isinstance(ours, AsyncRateLimitStorage)
    theirs_ = SlidingWindowCounterRateLimiter(theirs)
    before_ = SlidingWindowCounterRateLimiter(before)
    ours_ = limits.aio.strategies.SlidingWindowCounterRateLimiter(ours)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(limits.strategies, "time", clock)
            patch.setattr(limits.aio.strategies, "time", clock)
            steps = SWITCH_AT + ASYNC_STEPS
            plain = _plain_keys(server, f"aapi-{run}-rl")
            drive = _drive(rng, clock, theirs_, before_, ours_, steps, plain)
            counts = asyncio.run(drive)
    finally:
        theirs.storage.close()
        before.storage.close()
    _check_counts(counts)
