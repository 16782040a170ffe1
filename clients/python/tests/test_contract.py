"""The storage contract limits' strategies use, on rl:// with the module and without it (Lua).

Every test runs on Redis 7.0 and Valkey 8.1, with and without the module, sync and asyncio on
each of limits' asyncio clients (redis.asyncio, coredis, valkey): the expected outcomes are the
same in all sixteen, and the same as limits' own redis:// storage
(``test_same_outcomes_as_redis_scheme`` compares the two step by step).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any, cast

import limits.aio.strategies
import limits.errors
import limits.strategies
import pytest
import redis
from harness import KINDS, Limiter
from limits import RateLimitItem, parse
from servers import Server, free_port

from redis_ratelimit.limits_storage import ModuleNotLoadedWarning

MakeLimiter = Callable[..., Limiter]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """``sync``, or the asyncio storage on ``redispy``, ``coredis`` or ``valkey``."""
    return str(request.param)


@pytest.fixture
def make(server: Server, prefix: str, kind: str) -> Iterator[MakeLimiter]:
    loop = asyncio.new_event_loop() if kind != "sync" else None
    made: list[Limiter] = []

    def make_limiter(strategy: str, scheme: str = "rl", **options: object) -> Limiter:
        options.setdefault("key_prefix", prefix)
        url = f"{scheme}://{server.url}"
        limiter = Limiter(url, strategy, loop, implementation=kind, **options)
        made.append(limiter)
        return limiter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModuleNotLoadedWarning)
        yield make_limiter
    for limiter in made:
        limiter.close()
    if loop is not None:
        loop.close()


#: Tests that wait for windows to pass run on the sync storage and on redis.asyncio only: coredis
#: and valkey drive the same operations through the same asyncio driver (the other tests cover
#: their transport), and the waits would cost ~50 s more per run.
SLEEPS = pytest.mark.parametrize("kind", ["sync", "redispy"])


def sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.time()))


# --- fixed window -------------------------------------------------------------------------


def test_fixed_window_admits_limit_then_counts_denied_hits(make: MakeLimiter) -> None:
    lim = make("fixed-window")
    item = parse("3/minute")
    before = time.time()
    assert [lim.hit(item, "k") for _ in range(5)] == [True, True, True, False, False]
    assert lim.call("get", item.key_for("k")) == 5  # limits counts denied hits too
    assert not lim.test(item, "k")
    reset, remaining = lim.stats(item, "k")
    assert remaining == 0
    assert before + 58 <= reset <= time.time() + 61


def test_fixed_window_denied_cost_keeps_counting(make: MakeLimiter) -> None:
    lim = make("fixed-window")
    item = parse("3/minute")
    assert lim.hit(item, "k", cost=2)
    assert not lim.hit(item, "k", cost=2)  # count 4 > 3: denied, and counted
    assert not lim.hit(item, "k", cost=1)  # count 5: RL.ALLOW's own limit would admit this
    assert lim.call("get", item.key_for("k")) == 5
    assert lim.test(item, "other", cost=3)
    assert not lim.test(item, "other", cost=4)


def test_fixed_window_incr_get_get_expiry_clear(make: MakeLimiter) -> None:
    lim = make("fixed-window")
    assert lim.call("get", "c") == 0
    now = time.time()
    assert now - 1 <= lim.call("get_expiry", "c") <= time.time() + 1  # no key: now
    assert lim.call("incr", "c", 60, 2) == 2
    assert lim.call("incr", "c", 60, 3) == 5
    assert lim.call("incr", "c", 60, 0) == 5
    assert lim.call("get", "c") == 5
    expiry = lim.call("get_expiry", "c")
    assert now + 58 <= expiry <= time.time() + 61
    lim.call("clear", "c")
    assert lim.call("get", "c") == 0
    assert lim.call("incr", "c", 60) == 1


@SLEEPS
def test_fixed_window_starts_again_after_its_window(make: MakeLimiter) -> None:
    lim = make("fixed-window")
    item = parse("2/second")
    first = time.time()
    assert [lim.hit(item, "k") for _ in range(3)] == [True, True, False]
    sleep_until(first + 1.3)
    assert lim.call("get", item.key_for("k")) == 0
    assert lim.hit(item, "k")
    assert lim.stats(item, "k").remaining == 1


# --- moving window ------------------------------------------------------------------------


def test_moving_window_admits_limit_and_reports_oldest_entry(make: MakeLimiter) -> None:
    lim = make("moving-window")
    item = parse("3/minute")
    before = time.time()
    assert lim.hit(item, "k")
    after = time.time()
    assert [lim.hit(item, "k") for _ in range(4)] == [True, True, False, False]
    oldest, count = lim.call("get_moving_window", item.key_for("k"), 3, 60)
    assert count == 3
    assert before - 0.05 <= oldest <= after + 0.05
    assert not lim.test(item, "k")
    reset, remaining = lim.stats(item, "k")
    assert remaining == 0
    # Each read converts the server time with its own time.time(): the reads' latencies differ.
    assert reset == pytest.approx(oldest + 60, abs=0.05)


def test_moving_window_costs(make: MakeLimiter) -> None:
    lim = make("moving-window")
    item = parse("5/minute")
    assert not lim.hit(item, "k", cost=6)  # more than the limit: never
    assert lim.hit(item, "k", cost=3)
    assert not lim.hit(item, "k", cost=3)
    assert lim.test(item, "k", cost=2)
    assert not lim.test(item, "k", cost=3)
    assert lim.hit(item, "k", cost=2)
    assert not lim.hit(item, "k")
    assert lim.hit(item, "k", cost=0)
    assert lim.call("get_moving_window", item.key_for("k"), 5, 60)[1] == 5


def test_moving_window_empty(make: MakeLimiter) -> None:
    lim = make("moving-window")
    now = time.time()
    start, count = lim.call("get_moving_window", "nothing", 3, 60)
    assert count == 0
    assert now - 0.05 <= start <= time.time() + 0.05
    item = parse("3/minute")
    assert lim.stats(item, "nothing").remaining == 3


@SLEEPS
def test_moving_window_slides(make: MakeLimiter) -> None:
    lim = make("moving-window")
    item = parse("2 per 2 seconds")
    first = time.time()
    assert lim.hit(item, "k")
    sleep_until(first + 1.0)
    second = time.time()
    assert lim.hit(item, "k")
    assert not lim.hit(item, "k")
    sleep_until(first + 2.3)  # the first entry has left the window, the second has not
    oldest, count = lim.call("get_moving_window", item.key_for("k"), 2, 2)
    assert count == 1
    assert second - 0.05 <= oldest <= second + 0.3
    assert lim.hit(item, "k")
    assert not lim.hit(item, "k")


# --- sliding window counter ---------------------------------------------------------------


def test_sliding_window_counter_admits_limit(make: MakeLimiter) -> None:
    lim = make("sliding-window-counter")
    item = parse("3/minute")
    assert [lim.hit(item, "k") for _ in range(4)] == [True, True, True, False]
    previous, previous_ttl, current, current_ttl = lim.call(
        "get_sliding_window", item.key_for("k"), 60
    )
    assert (previous, previous_ttl, current) == (0, 0.0, 3)
    assert 118 <= current_ttl <= 120
    assert not lim.test(item, "k")
    assert lim.stats(item, "k").remaining == 0
    assert not lim.hit(item, "k", cost=4)
    assert lim.hit(item, "other", cost=3)


@SLEEPS
def test_sliding_window_counter_shifts_windows(make: MakeLimiter) -> None:
    lim = make("sliding-window-counter")
    item = parse("4 per 2 seconds")
    before = time.time()
    assert lim.hit(item, "k")  # the first window starts here, between before and after
    after = time.time()
    assert [lim.hit(item, "k") for _ in range(4)] == [True] * 3 + [False]
    sleep_until(after + 2.3)  # in the second window: its read shifts the first to previous
    read_start = time.time()
    previous, previous_ttl, current, current_ttl = lim.call(
        "get_sliding_window", item.key_for("k"), 2
    )
    read_end = time.time()
    assert (previous, current) == (4, 0)
    # The previous window's key lives until the first window's start + 2 windows (ms TTLs).
    assert before + 4 - read_end - 0.002 <= previous_ttl <= after + 4 - read_start + 0.002
    assert 0 < previous_ttl < 2  # the read was in the second window, which shifted the first
    assert current_ttl == pytest.approx(previous_ttl + 2, abs=0.002)  # set by the same shift
    weighted = int(4 * previous_ttl / 2)
    assert 4 - weighted <= lim.stats(item, "k").remaining <= 4  # the weight only decreases
    lim.clear(item, "k")
    assert lim.call("get_sliding_window", item.key_for("k"), 2) == (0, 0.0, 0, 0.0)


# --- every strategy -----------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
def test_clear_starts_over(make: MakeLimiter, strategy: str) -> None:
    lim = make(strategy)
    item = parse("2/minute")
    assert [lim.hit(item, "k") for _ in range(3)] == [True, True, False]
    lim.clear(item, "k")
    assert lim.hit(item, "k")
    assert lim.stats(item, "k").remaining == 1


def test_reset_deletes_its_prefix_only(make: MakeLimiter, server: Server, prefix: str) -> None:
    item = parse("5/minute")
    for strategy in ("fixed-window", "moving-window", "sliding-window-counter"):
        lim = make(strategy)
        for ident in ("a", "b"):
            assert lim.hit(item, strategy, ident)
    other = make("fixed-window", key_prefix=prefix + "-other")
    assert other.hit(item, "x")
    lim = make("fixed-window")
    assert lim.call("reset") == 6
    assert server.client().keys(f"{prefix}:*") == []
    assert other.stats(item, "x").remaining == 4


def test_check_never_raises(make: MakeLimiter, server: Server) -> None:
    assert make("fixed-window").call("check") is True
    dead = Limiter(f"rl://127.0.0.1:{free_port()}", "fixed-window", None, socket_timeout=1)
    assert dead.call("check") is False


def test_wrap_exceptions() -> None:
    port = free_port()
    item = parse("1/minute")
    raw = Limiter(f"rl://127.0.0.1:{port}", "fixed-window", None)
    with pytest.raises(redis.ConnectionError):
        raw.hit(item, "k")
    wrapped = Limiter(f"rl://127.0.0.1:{port}", "fixed-window", None, wrap_exceptions=True)
    with pytest.raises(limits.errors.StorageError):
        wrapped.hit(item, "k")


def test_same_outcomes_as_redis_scheme(make: MakeLimiter) -> None:
    """A random sequence of hits, tests and stats gives the same answers on redis:// and rl://."""
    rng = random.Random(7)
    for strategy in ("fixed-window", "moving-window", "sliding-window-counter"):
        theirs = make(strategy, scheme="redis", key_prefix="theirs-" + rng.randbytes(4).hex())
        ours = make(strategy, key_prefix="ours-" + rng.randbytes(4).hex())
        items = [parse("5/minute"), parse("3/hour")]
        for step in range(80):
            item = rng.choice(items)
            ident = rng.choice(["a", "b"])
            op = rng.choice(["hit", "hit", "test", "stats"])
            cost = rng.choice([0, 1, 1, 1, 2, 3, 6])
            if op == "stats":
                a, b = theirs.stats(item, ident), ours.stats(item, ident)
                assert a.remaining == b.remaining, (strategy, step)
                if strategy != "sliding-window-counter":  # limits' reset there is ms-sensitive
                    assert a.reset_time == pytest.approx(b.reset_time, abs=1.5), (strategy, step)
            else:
                got = (
                    getattr(theirs, op)(item, ident, cost=cost),
                    getattr(ours, op)(item, ident, cost=cost),
                )
                assert got[0] == got[1], (strategy, step, op, cost)


def test_warns_once_without_module(plain_server: Server, prefix: str) -> None:
    lim = Limiter(f"rl://{plain_server.url}", "fixed-window", None, key_prefix=prefix)
    item = parse("3/minute")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")  # record this package's warning only
        warnings.simplefilter("always", ModuleNotLoadedWarning)
        for _ in range(4):
            lim.hit(item, "k")
            lim.stats(item, "k")
    assert [w.category for w in caught] == [ModuleNotLoadedWarning]
    assert "not loaded" in str(caught[0].message)


def test_storage_is_limits_own_client(module_server: Server, prefix: str) -> None:
    lim = Limiter(f"rl://{module_server.url}/0", "fixed-window", None, key_prefix=prefix)
    assert isinstance(lim.storage.storage, redis.Redis)
    assert lim.storage.key_prefix == prefix
    assert lim.storage.module_support().loaded


def test_takes_over_keys_written_by_redis_scheme(module_server: Server, prefix: str) -> None:
    """Switching redis:// → rl:// on a live server: limits' existing keys keep counting."""
    item = parse("3/minute")
    for strategy in ("fixed-window", "moving-window", "sliding-window-counter"):
        before = Limiter(f"redis://{module_server.url}", strategy, None, key_prefix=prefix)
        after = Limiter(f"rl://{module_server.url}", strategy, None, key_prefix=prefix)
        assert before.hit(item, strategy)
        assert before.hit(item, strategy)
        assert after.stats(item, strategy).remaining == 1
        assert [after.hit(item, strategy) for _ in range(2)] == [True, False]


def test_fixed_window_get_without_inspect(module_server: Server, prefix: str) -> None:
    """A module build without RL.INSPECT: get() reads the count through RL.PEEK."""
    from redis_ratelimit.limits_storage import ModuleSupport

    lim = Limiter(f"rl://{module_server.url}", "fixed-window", None, key_prefix=prefix)
    lim.storage._rl_support = ModuleSupport(loaded=True, inspect=False, moving_window=False)
    lim.storage._rl_next_probe = math.inf  # no probe again: this is the server's answer
    item = parse("3/minute")
    assert [lim.hit(item, "k") for _ in range(4)] == [True, True, True, False]
    before = module_server.client().info("commandstats").get("cmdstat_rl.peek", {"calls": 0})
    assert lim.call("get", item.key_for("k")) == 4
    assert lim.call("get", item.key_for("none")) == 0
    after = module_server.client().info("commandstats")["cmdstat_rl.peek"]
    assert after["calls"] - before["calls"] == 2


# --- limits the module does not take: the same answers as redis:// ------------------------

STRATEGIES = ["fixed-window", "moving-window", "sliding-window-counter"]
SLIDING = (
    limits.strategies.SlidingWindowCounterRateLimiter,
    limits.aio.strategies.SlidingWindowCounterRateLimiter,
)


def run_every_method(lim: Limiter, item: RateLimitItem) -> list[object]:
    """Every strategy method on *item*, costs 0 to 2; what each answered (times rounded).

    The first hit costs 1: a cost-0 hit on a fixed window that has no count yet is the one
    documented difference (``test_fixed_window_cost_zero_starts_no_window``).
    """
    answers: list[object] = []
    sliding = isinstance(lim.limiter, SLIDING)
    for cost in (1, 0, 2, 0):
        answers.append(("test", cost, lim.test(item, "k", cost=cost)))
        answers.append(("hit", cost, lim.hit(item, "k", cost=cost)))
        stats = lim.stats(item, "k")
        # limits' sliding-window reset is the current key's PTTL modulo the window: a whole
        # window apart when the PTTL is read in the millisecond it was set.
        reset = None if sliding else round(stats.reset_time - time.time())
        answers.append(("stats", stats.remaining, reset))
    lim.clear(item, "k")
    answers.append(("cleared", lim.test(item, "k"), lim.stats(item, "k").remaining))
    return answers


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("limit", ["0/minute", "0/second", "1/2 year", "5/400 day", "3/365 day"])
def test_same_answers_as_redis_scheme_for_any_limit(
    make: MakeLimiter, server: Server, prefix: str, strategy: str, limit: str
) -> None:
    """Zero limits and windows above the module's 365 days answer as on redis://."""
    item = parse(limit)
    theirs = make(strategy, scheme="redis", key_prefix=f"{prefix}-redis")
    ours = make(strategy)
    assert run_every_method(ours, item) == run_every_method(theirs, item)
    assert ours.hit(item, "kept") == theirs.hit(item, "kept")
    types = {
        scheme: {server.client().type(k) for k in server.client().keys(f"{pfx}:*")}
        for scheme, pfx in (("rl", prefix), ("redis", f"{prefix}-redis"))
    }
    long_window = item.get_expiry() > 365 * 86400
    if long_window or not server.with_module:
        assert types["rl"] == types["redis"]  # limits' own keys, written by its scripts
    module_limit = item.amount > 0 and not long_window
    if server.with_module and module_limit:
        assert types["rl"] == {b"ratelimit"}


def test_fixed_window_cost_zero_starts_no_window(make: MakeLimiter, server: Server) -> None:
    """limits' ``INCRBY 0`` starts an empty window (a key of count 0 and a TTL); the module's
    ``COST 0`` writes nothing, so until the first counted hit the reset time is now."""
    item = parse("3/minute")
    theirs = make("fixed-window", scheme="redis", key_prefix="redis-" + uuid.uuid4().hex)
    ours = make("fixed-window")
    for lim in (theirs, ours):
        assert lim.hit(item, "k", cost=0)
        assert lim.stats(item, "k").remaining == 3
    now = time.time()
    assert theirs.stats(item, "k").reset_time == pytest.approx(now + 60, abs=1.5)
    expected = now if server.with_module else now + 60
    assert ours.stats(item, "k").reset_time == pytest.approx(expected, abs=1.5)
    for lim in (theirs, ours):  # the first counted hit starts the window on both
        assert lim.hit(item, "k")
        assert lim.stats(item, "k").reset_time == pytest.approx(time.time() + 60, abs=1.5)


@pytest.mark.parametrize("implementation", KINDS)
def test_finds_the_module_loaded_later(flavor: str, implementation: str, prefix: str) -> None:
    """A storage that fell back to Lua uses the module once the server has it, no restart."""
    from servers import module_path, start_server

    server = start_server(flavor, with_module=False, extra=["--enable-module-command", "yes"])
    loop = asyncio.new_event_loop() if implementation != "sync" else None
    uri = f"rl://{server.url}"
    item = parse("3/minute")
    lim = Limiter(uri, "fixed-window", loop, implementation, key_prefix=prefix, probe_interval=0.2)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("ignore")  # record this package's warning only
            warnings.simplefilter("always", ModuleNotLoadedWarning)
            assert [lim.hit(item, "lua") for _ in range(2)] == [True, True]
            assert not lim.call("module_support").loaded
            cast(Any, server.client()).execute_command("MODULE", "LOAD", str(module_path()))
            time.sleep(0.3)
            assert lim.hit(item, "lua")  # limits' key, still counted by its script
            assert not lim.hit(item, "lua")
            assert [lim.hit(item, "module") for _ in range(4)] == [True] * 3 + [False]
            assert lim.stats(item, "module").remaining == 0
        assert [w.category for w in caught] == [ModuleNotLoadedWarning]
        assert lim.call("module_support").loaded
        types = {server.client().type(k) for k in server.client().keys(f"{prefix}:*")}
        assert types == {b"string", b"ratelimit"}
        assert server.client().info("commandstats")["cmdstat_rl.allow"]["calls"] >= 4
    finally:
        lim.close()
        if loop is not None:
            loop.close()
        server.stop()
