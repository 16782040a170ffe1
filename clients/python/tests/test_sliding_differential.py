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
(:class:`Module`): the same answers over ``RL_DIFF_STEPS`` steps (default 10,000). The module
pair is an expected failure for now (``xfail(strict=True)``: it turns red once they agree, to drop
the mark): a cost-0 hit on an absent limiter diverges.

Redis 7.0 does not freeze the clock within a transaction (``PTTL`` reads the live clock: the
two sides' TTLs differ by a millisecond now and then), so the exact comparison runs on Valkey.
"""

from __future__ import annotations

import math
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest
from limits.storage import RedisStorage
from servers import Server

from redis_ratelimit import Inspection

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
    """The module's ``ALGO limits-sliding-window``: one key; a read is ``RL.ALLOW … COST 0``
    (which stores the shift limits' read makes) and ``RL.INSPECT``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def acquire(self, pipe: Any, key: str, limit: int, expiry: int, amount: int) -> Reader:
        args = ("RL.ALLOW", f"{self.prefix}:{key}", limit, expiry, "COST", amount)
        pipe.execute_command(*args, "ALGO", LIMITS_ALGO)
        return 1, lambda replies: int(replies[0][0]) == 1

    def window(self, pipe: Any, key: str, limit: int, expiry: int) -> Reader:
        name = f"{self.prefix}:{key}"
        pipe.execute_command("RL.ALLOW", name, limit, expiry, "COST", 0, "ALGO", LIMITS_ALGO)
        pipe.execute_command("RL.INSPECT", name)
        return 2, lambda replies: _inspect_window(replies[1])

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
        pytest.param(
            "module",
            marks=pytest.mark.xfail(
                strict=True,
                reason="a cost-0 hit on an absent limiter: limits' script starts a current counter "
                "of 0 for 2 windows (SET … PX), the module writes nothing, so later windows "
                "anchor differently (seed 16, step 42 on LIMITER/c/1/1)",
            ),
        ),
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
    finally:
        client.close()
    # Every kind of answer came up: admissions, denials, reads weighing a previous window.
    assert all(counts.get(kind, 0) > 0 for kind in ("clear", "admitted", "denied", "weighted"))
