"""allow_all / peek_all / charge / refund / block on RateLimiter and AsyncRateLimiter."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
from servers import Server
from test_client import Either

from redis_ratelimit import (
    Algorithm,
    AlgorithmMismatchError,
    Decision,
    InvalidArgumentError,
    Limit,
    MultiDecision,
    WrongTypeError,
)


@pytest.fixture(params=["sync", "async"])
def rl(request: pytest.FixtureRequest, module_server: Server) -> Iterator[Either]:
    either = Either(module_server, request.param == "async")
    yield either
    either.close()


def test_allow_all_is_all_or_nothing(rl: Either, prefix: str) -> None:
    rpm, tpm = f"{{{prefix}}}:rpm", f"{{{prefix}}}:tpm"
    first = rl.allow_all([Limit(rpm, 60, "1m"), Limit(tpm, 100_000, "1m", cost=1500)])
    assert isinstance(first, MultiDecision)
    assert (first.allowed, first.binding, first.retry_after) == (True, 0, 0.0)
    assert [d.remaining for d in first.decisions] == [59, 98_500]
    assert first.limiting is first.decisions[0]
    # Too many tokens: denied by the second limit, and the first is not charged.
    denied = rl.allow_all([Limit(rpm, 60, "1m"), Limit(tpm, 100_000, "1m", cost=99_000)])
    assert (denied.allowed, denied.binding) == (False, 1)
    assert denied.decisions[0] == Decision(True, 60, 59, 0.0, denied.decisions[0].reset_after)
    assert 0 < denied.retry_after == denied.decisions[1].retry_after
    peeked = rl.peek_all([Limit(rpm, 60, "1m"), Limit(tpm, 100_000, "1m", cost=10)])
    assert [d.remaining for d in peeked.decisions] == [58, 98_490]
    assert rl.peek(rpm, 60, "1m", cost=0).remaining == 59
    with pytest.raises(ValueError, match="at least one"):
        rl.allow_all([])


def test_allow_all_errors(rl: Either, prefix: str) -> None:
    a, b = f"{{{prefix}}}:a", f"{{{prefix}}}:b"
    with pytest.raises(InvalidArgumentError, match="named twice"):
        rl.allow_all([Limit(a, 1, 1), Limit(a, 2, 1)])
    with pytest.raises(InvalidArgumentError, match="group 2: limit must be"):
        rl.allow_all([Limit(a, 1, 1), Limit(b, 0, 1)])
    with pytest.raises(InvalidArgumentError, match="numkeys"):
        rl.allow_all([Limit(f"{{{prefix}}}:{i}", 1, 1) for i in range(17)])
    rl.raw.set(b, "x")
    with pytest.raises(WrongTypeError):
        rl.allow_all([Limit(a, 1, 1), Limit(b, 1, 1)])
    rl.allow(a, 5, 60, algorithm="gcra")
    with pytest.raises(AlgorithmMismatchError):
        rl.peek_all([Limit(a, 5, 60, algorithm=Algorithm.FIXED_WINDOW)])
    assert rl.raw.get(b) == b"x"


def test_charge_is_a_debt_and_refund_gives_back(rl: Either, prefix: str) -> None:
    key = f"{prefix}:c"
    debt = rl.charge(key, 10, "1m", 15, algorithm="gcra")
    # 5 cells over: a request passes once 6 have drained (T = 6 s).
    assert (debt.allowed, debt.remaining) == (False, 0)
    assert 35 < debt.retry_after <= 36
    assert not rl.allow(key, 10, "1m", algorithm="gcra").allowed
    back = rl.refund(key, 10, "1m", 10, algorithm="gcra")
    assert (back.allowed, back.remaining, back.retry_after) == (True, 5, 0.0)
    gone = rl.refund(key, 10, "1m", 100, algorithm="gcra")
    assert (gone.remaining, gone.reset_after) == (10, 0.0)
    assert rl.raw.exists(key) == 0
    with pytest.raises(InvalidArgumentError, match="amount must be"):
        rl.charge(key, 10, "1m", -1)


def test_block(rl: Either, prefix: str) -> None:
    key = f"{prefix}:login"
    assert rl.allow(key, 1, "1s", block="1m").allowed
    predicted = rl.peek(key, 1, "1s", block="1m")
    assert (predicted.allowed, predicted.retry_after) == (False, 60.0)
    blocked = rl.allow(key, 1, "1s", block="1m")
    assert (blocked.allowed, blocked.retry_after) == (False, 60.0)
    got = rl.inspect(key)
    assert got is not None
    assert got.blocked_until_us > got.now_us
    assert 59 <= (got.blocked_until_us - got.now_us) / 1e6 <= 60
    assert "blocked_until_us" not in got.state
    time.sleep(1.1)
    still = rl.allow(key, 1, "1s")
    assert not still.allowed
    assert 58 <= still.retry_after <= 59
    with pytest.raises(InvalidArgumentError, match="BLOCK must be"):
        rl.allow(key, 1, "1s", block="0")
    never = rl.allow(f"{prefix}:n", 1, "1s", cost=2, block="1m")
    assert math.isinf(never.retry_after)
