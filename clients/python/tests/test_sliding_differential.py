"""Differential harness for limits' sliding window counter: two implementations, one server time.

Each step runs the same operation on two *sides* inside one ``MULTI``/``EXEC``, so both read the
same server time (Valkey, like Redis 7.2+, freezes the clock for a transaction: ``PTTL``, expiry
and the module's ``now`` agree), and compares the replies: limits' storage answers (``acquire`` →
admitted, ``window`` → ``(previous count, previous TTL, current count, current TTL)``,
``clear``) and what limits' strategy computes from them (``hit``, ``test``, ``get_window_stats``
remaining). Random operations over several rules, costs 0 to limit + 1, several identities, and
real waits that cross window boundaries.

Today both sides are limits' own Lua scripts (``rl://`` runs them for this strategy), under two
key prefixes: the run shows the harness is deterministic. A module algorithm for limits' sliding
window counter plugs in as another :class:`Side` (its commands queued on the same transaction)
and must then answer the same over ``RL_DIFF_STEPS`` steps (default 10,000).

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

STEPS = int(os.environ.get("RL_DIFF_STEPS", "10000"))
#: (limit, window in seconds): limits' windows are whole seconds.
RULES = [(3, 1), (5, 1), (10, 2), (1, 1), (25, 3)]
IDENTITIES = ["a", "b", "c"]

Parse = Callable[[Any], Any]


class Side(Protocol):
    """One implementation of limits' sliding-window-counter storage, queued on a transaction."""

    def acquire(self, pipe: Any, key: str, limit: int, expiry: int, amount: int) -> Parse:
        """Queue ``acquire_sliding_window_entry``; return how to read its reply."""

    def window(self, pipe: Any, key: str, expiry: int) -> Parse:
        """Queue ``get_sliding_window``; the reply as ``(prev, prev_ttl_s, cur, cur_ttl_s)``."""

    def clear(self, pipe: Any, key: str) -> Parse:
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

    def acquire(self, pipe: Any, key: str, limit: int, expiry: int, amount: int) -> Parse:
        self.storage.lua_acquire_sliding_window(self._keys(key), [limit, expiry, amount], pipe)
        return bool

    def window(self, pipe: Any, key: str, expiry: int) -> Parse:
        self.storage.lua_sliding_window(self._keys(key), [expiry], pipe)
        return _window_reply

    def clear(self, pipe: Any, key: str) -> Parse:
        pipe.delete(*self._keys(key))
        return lambda _reply: None


def weighted(limit_expiry: int, window: tuple[int, float, int, float]) -> float:
    """limits' ``SlidingWindowCounterRateLimiter._weighted_count``."""
    previous, previous_ttl, current, _ = window
    return previous * previous_ttl / limit_expiry + current


@pytest.fixture
def sides(module_server: Server) -> Iterator[tuple[Side, Side]]:
    run = uuid.uuid4().hex[:8]
    uri = f"redis://{module_server.url}"
    theirs = RedisStorage(uri, key_prefix=f"diff-{run}-redis")
    ours = RedisStorage(uri, key_prefix=f"diff-{run}-rl")
    yield LimitsLua(theirs), LimitsLua(ours)
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
            parsers = []
            for side in sides:
                if op == "hit":
                    parsers.append(side.acquire(pipe, key, limit, expiry, cost))
                elif op == "clear":
                    parsers.append(side.clear(pipe, key))
                else:
                    parsers.append(side.window(pipe, key, expiry))
            replies = [parse(reply) for parse, reply in zip(parsers, pipe.execute(), strict=True)]
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
