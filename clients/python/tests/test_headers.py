"""rate_limit_headers: Retry-After, X-RateLimit-*, and the IETF draft fields."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from servers import Server

from redis_ratelimit import Decision, RateLimiter, rate_limit_headers

NOW = 1_700_000_000.25


def test_allowed() -> None:
    d = Decision(allowed=True, capacity=10, remaining=7, retry_after=0.0, reset_after=30.001)
    assert rate_limit_headers(d, window=60, now=NOW) == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "7",
        "X-RateLimit-Reset": "1700000031",
        "RateLimit-Policy": '"default";q=10;w=60',
        "RateLimit": '"default";r=7;t=31',
    }


def test_denied_has_retry_after_rounded_up() -> None:
    d = Decision(allowed=False, capacity=5, remaining=0, retry_after=2.001, reset_after=10.0)
    headers = rate_limit_headers(d, window=timedelta(minutes=1), policy="per-ip", now=NOW)
    assert headers["Retry-After"] == "3"
    assert headers["RateLimit"] == '"per-ip";r=0;t=3'
    assert headers["RateLimit-Policy"] == '"per-ip";q=5;w=60'
    exact = Decision(allowed=False, capacity=5, remaining=0, retry_after=1.0, reset_after=1.0)
    assert rate_limit_headers(exact)["Retry-After"] == "1"


def test_never_passes_has_no_retry_after() -> None:
    d = Decision(allowed=False, capacity=5, remaining=5, retry_after=math.inf, reset_after=0.0)
    headers = rate_limit_headers(d, now=NOW)
    assert "Retry-After" not in headers
    assert "RateLimit-Policy" not in headers  # no window given
    assert headers["RateLimit"] == '"default";r=5;t=0'


def test_families_optional_and_quoting() -> None:
    d = Decision(allowed=True, capacity=3, remaining=2, retry_after=0.0, reset_after=0.5)
    assert rate_limit_headers(d, ietf=False, now=NOW) == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "2",
        "X-RateLimit-Reset": "1700000001",
    }
    ietf = rate_limit_headers(d, classic=False, window=0.5, quota=100, policy='a"b')
    assert ietf == {"RateLimit-Policy": '"a\\"b";q=100;w=1', "RateLimit": '"a\\"b";r=2;t=1'}
    with pytest.raises(ValueError, match="ASCII"):
        rate_limit_headers(d, policy="é")


def test_from_a_real_denial(module_server: Server, prefix: str) -> None:
    limiter = RateLimiter(module_server.client())
    for _ in range(2):
        limiter.allow(f"{prefix}:h", 2, "10s", algorithm="fixed-window")
    denied = limiter.allow(f"{prefix}:h", 2, "10s", algorithm="fixed-window")
    headers = rate_limit_headers(denied, window=10)
    assert 1 <= int(headers["Retry-After"]) <= 10
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["RateLimit-Policy"] == '"default";q=2;w=10'
