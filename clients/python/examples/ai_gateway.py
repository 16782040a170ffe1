"""An AI gateway's limiter: requests and tokens per minute per API key, estimate then settle.

Every model call is checked against two limits of its API key at once — requests per minute
(RPM) and tokens per minute (TPM) — in one atomic round trip (``RL.ALLOWALL``): both are
charged or neither is, so a call refused for tokens never uses up a request, and two gateway
replicas can never both spend the last tokens. The tokens a call uses are known only after the
model has answered, so the call is admitted with an *estimate* and settled afterwards:
``RL.CHARGE`` the difference when it used more (past the limit that is a debt, which the key's
next calls wait out — and ``retry_after`` says exactly how long), ``RL.REFUND`` it when it used
less.

Both limits use gcra (a token bucket, refilled continuously, as model providers meter): a debt
is bounded by one window (a key never waits more than a minute beyond an empty bucket). The two
keys share the API key as a hash tag, so the call works on Redis Cluster too.

Run it against a server with the module loaded (``scripts/run``)::

    python clients/python/examples/ai_gateway.py            # redis://localhost:6379
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import redis

from redis_ratelimit import Algorithm, Decision, Limit, MultiDecision, RateLimiter


class RateLimited(Exception):
    """A call refused by the key's limits; ``retry_after`` seconds until it would pass."""

    def __init__(self, retry_after: float, limit: str) -> None:
        super().__init__(f"{limit} limit reached: retry in {retry_after:.3f}s")
        self.retry_after = retry_after
        self.limit = limit


@dataclass(frozen=True)
class Settled:
    """What a call cost and where its key stands after settling."""

    estimate: int
    actual: int
    tokens: Decision


class AIGateway:
    """RPM and TPM limits per API key, admitted together and settled after the call."""

    def __init__(self, limiter: RateLimiter, rpm: int, tpm: int, window: str = "1m") -> None:
        self.limiter = limiter
        self.rpm = rpm
        self.tpm = tpm
        self.window = window

    def keys(self, api_key: str) -> tuple[str, str]:
        """The two limiter keys of *api_key* (one hash tag: one cluster slot)."""
        return f"{{{api_key}}}:rpm", f"{{{api_key}}}:tpm"

    def limits(self, api_key: str, estimate: int) -> list[Limit]:
        """One request under RPM, *estimate* tokens under TPM."""
        rpm_key, tpm_key = self.keys(api_key)
        return [
            Limit(rpm_key, self.rpm, self.window, algorithm=Algorithm.GCRA),
            Limit(tpm_key, self.tpm, self.window, cost=estimate, algorithm=Algorithm.GCRA),
        ]

    def admit(self, api_key: str, estimate: int) -> MultiDecision:
        """Admit a call expected to use *estimate* tokens, or raise :class:`RateLimited`."""
        decision = self.limiter.allow_all(self.limits(api_key, estimate))
        if not decision.allowed:
            which = ("requests", "tokens")[decision.binding]
            raise RateLimited(decision.retry_after, which)
        return decision

    def settle(self, api_key: str, estimate: int, actual: int) -> Settled:
        """Charge or give back the difference between the estimate and the tokens used."""
        _, tpm_key = self.keys(api_key)
        args = (tpm_key, self.tpm, self.window)
        if actual > estimate:
            tokens = self.limiter.charge(*args, actual - estimate, algorithm=Algorithm.GCRA)
        elif actual < estimate:
            tokens = self.limiter.refund(*args, estimate - actual, algorithm=Algorithm.GCRA)
        else:
            tokens = self.limiter.charge(*args, 0, algorithm=Algorithm.GCRA)  # only looks
        return Settled(estimate, actual, tokens)

    def call(
        self, api_key: str, prompt: str, model: Callable[[str], tuple[str, int]], estimate: int
    ) -> tuple[str, Settled]:
        """Admit, call *model* (which returns its text and the tokens it used), settle."""
        self.admit(api_key, estimate)
        try:
            text, used = model(prompt)
        except Exception:
            # Nothing was generated: give the estimate back (the request itself stays counted).
            self.settle(api_key, estimate, 0)
            raise
        return text, self.settle(api_key, estimate, used)


def _fake_model(prompt: str) -> tuple[str, int]:
    used = len(prompt.split()) + random.randint(50, 900)
    return f"({used} tokens about {prompt!r})", used


def main() -> None:
    gateway = AIGateway(RateLimiter(redis.Redis()), rpm=20, tpm=4_000)
    for i in range(30):
        try:
            _, settled = gateway.call("key42", f"question {i}", _fake_model, estimate=500)
            left = settled.tokens.remaining
            print(f"call {i}: used {settled.actual} of ~{settled.estimate}, {left} tokens left")
        except RateLimited as limited:
            print(f"call {i}: {limited}")


if __name__ == "__main__":
    main()
