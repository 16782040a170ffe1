"""The AI-gateway example (examples/ai_gateway.py) against real servers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from servers import Server

from redis_ratelimit import RateLimiter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from ai_gateway import AIGateway, RateLimited


def model_using(tokens: int) -> Callable[[str], tuple[str, int]]:
    def model(prompt: str) -> tuple[str, int]:
        return f"answer to {prompt}", tokens

    return model


def test_estimate_then_settle(module_server: Server, prefix: str) -> None:
    gateway = AIGateway(RateLimiter(module_server.client()), rpm=10, tpm=1_000)
    key = f"{prefix}:api"
    # Over-estimated: the difference is given back.
    _, settled = gateway.call(key, "hi", model_using(100), estimate=400)
    assert settled.tokens.remaining == 900
    # Under-estimated: the difference is charged, past the limit: a debt.
    _, settled = gateway.call(key, "essay", model_using(1_600), estimate=300)
    assert not settled.tokens.allowed
    debt_wait = settled.tokens.retry_after
    assert 41 < debt_wait <= 42.06  # 700 tokens of debt + 1, 60 ms each: 42.06 s
    # The next call waits the debt out, and a refused call costs no request.
    with pytest.raises(RateLimited) as refused:
        gateway.admit(key, 10)
    assert refused.value.limit == "tokens"
    assert refused.value.retry_after >= debt_wait - 1
    rpm_key, _ = gateway.keys(key)
    rpm = gateway.limiter.peek(rpm_key, 10, "1m", cost=0, algorithm="gcra")
    assert rpm.remaining == 8  # two calls, not three


def test_requests_per_minute_bind(module_server: Server, prefix: str) -> None:
    gateway = AIGateway(RateLimiter(module_server.client()), rpm=3, tpm=1_000_000)
    key = f"{prefix}:rpm"
    for _ in range(3):
        gateway.admit(key, 10)
    with pytest.raises(RateLimited) as refused:
        gateway.admit(key, 10)
    assert refused.value.limit == "requests"
    assert 0 < refused.value.retry_after <= 20


def test_a_failed_call_gives_its_tokens_back(module_server: Server, prefix: str) -> None:
    gateway = AIGateway(RateLimiter(module_server.client()), rpm=10, tpm=1_000)
    key = f"{prefix}:fail"

    def broken(prompt: str) -> tuple[str, int]:
        raise TimeoutError(prompt)

    with pytest.raises(TimeoutError):
        gateway.call(key, "x", broken, estimate=800)
    _, tpm_key = gateway.keys(key)
    left = gateway.limiter.peek(tpm_key, 1_000, "1m", cost=0, algorithm="gcra")
    assert left.remaining == 1_000


def test_runs_as_a_script(
    module_server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ai_gateway

    module_server.client().delete("{key42}:rpm", "{key42}:tpm")
    real = redis.Redis
    monkeypatch.setattr(redis, "Redis", lambda: real(host="127.0.0.1", port=module_server.port))
    ai_gateway.main()
    out = capsys.readouterr().out
    assert out.count("call ") == 30
    assert "limit reached" in out
