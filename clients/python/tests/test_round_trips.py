"""Commands one Flask-Limiter request costs, per strategy, on redis:// and on rl://.

Two counts per request: round trips (commands the client sends, counted on its connection) and
server commands (``INFO commandstats`` deltas, which include the commands a Lua script runs).
"""

from __future__ import annotations

import importlib.util
import re
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from servers import Server, start_server

APP = Path(__file__).resolve().parents[1] / "examples" / "flask_app" / "app.py"
REQUESTS = 5
RESULTS: dict[tuple[str, str, str], tuple[float, float, Counter[str]]] = {}


@pytest.fixture(scope="module")
def counted_server(flavor: str) -> Iterator[Server]:
    """A server of this module's own, so no other test's commands enter the counts."""
    server = start_server(flavor)
    yield server
    server.stop()


def commandstats(client: Any) -> Counter[str]:
    info = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()})


def load_app(monkeypatch: pytest.MonkeyPatch, uri: str, strategy: str) -> ModuleType:
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", uri)
    monkeypatch.setenv("RATELIMIT_STRATEGY", strategy)
    monkeypatch.setenv("RATELIMIT_KEY_PREFIX", uuid.uuid4().hex[:8])
    spec = importlib.util.spec_from_file_location(f"seed_app_{uuid.uuid4().hex}", APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(
    server: Server, app: ModuleType, key: str, status: int
) -> tuple[float, float, Counter[str]]:
    """Send REQUESTS requests expecting *status*; per request: round trips, server commands."""
    client: Any = app.limiter._storage.storage
    sent: list[str] = []
    original = client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]).upper())
        return original(*args, **kwargs)

    client.execute_command = counting
    http = app.app.test_client()
    stats = server.client()
    stats.ping()  # connect (HELLO, CLIENT SETINFO) before the first count
    before = commandstats(stats)
    try:
        for _ in range(REQUESTS):
            assert http.get("/public", headers={"X-API-Key": key}).status_code == status
    finally:
        del client.execute_command
    delta = commandstats(stats) - before
    stats.close()
    delta["info"] -= 1
    delta = +delta
    return len(sent) / REQUESTS, sum(delta.values()) / REQUESTS, delta


# Round trips per request: limits' strategies call the storage once for the hit and, for the
# headers, get_window_stats: get + get_expiry (fixed window) or one read (moving, sliding).
EXPECTED_ROUND_TRIPS = {"fixed-window": 3, "moving-window": 2, "sliding-window-counter": 2}
#: rl://'s sliding window counter reads with RL.INSPECT, then stores limits' shift with RL.ALLOW
#: … COST 0: one more round trip than limits' read script.
RL_ROUND_TRIPS = {**EXPECTED_ROUND_TRIPS, "sliding-window-counter": 3}


@pytest.mark.parametrize("strategy", list(EXPECTED_ROUND_TRIPS))
@pytest.mark.parametrize("scheme", ["redis", "rl"])
def test_commands_per_request(
    counted_server: Server,
    monkeypatch: pytest.MonkeyPatch,
    flavor: str,
    scheme: str,
    strategy: str,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the module is loaded: no fallback warning
        app = load_app(monkeypatch, f"{scheme}://{counted_server.url}", strategy)
        key = uuid.uuid4().hex
        warm = app.app.test_client()  # loads limits' scripts, probes the module
        assert warm.get("/public", headers={"X-API-Key": "warm-up"}).status_code == 200
        allowed = measure(counted_server, app, key, 200)
        measure(counted_server, app, key, 200)  # 10 of 10 used
        denied = measure(counted_server, app, key, 429)
    for phase, (trips, commands, delta) in (("allowed", allowed), ("denied", denied)):
        RESULTS[(flavor, strategy, f"{scheme}:// {phase}")] = (trips, commands, delta)
        expected = (RL_ROUND_TRIPS if scheme == "rl" else EXPECTED_ROUND_TRIPS)[strategy]
        assert trips == expected, (phase, delta)
        if scheme == "rl":
            assert "evalsha" not in delta
            assert commands <= RESULTS[(flavor, strategy, f"redis:// {phase}")][1]
    support = app.limiter._storage.module_support() if scheme == "rl" else None
    if support is not None and strategy == "fixed-window":
        reader = "rl.inspect" if support.inspect else "rl.peek"
        for _trips, commands, delta in (allowed, denied):
            assert set(delta) == {"rl.allow", reader, "ttl"}
            assert commands == 3
    if support is not None and support.moving_window and strategy == "moving-window":
        for _trips, commands, delta in (allowed, denied):
            assert set(delta) == {"rl.allow", "rl.inspect"}
            assert commands == 2
    if support is not None and support.limits_sliding and strategy == "sliding-window-counter":
        for _trips, commands, delta in (allowed, denied):
            assert set(delta) == {"rl.allow", "rl.inspect"}
            assert commands == 3


def test_print_table(capsys: pytest.CaptureFixture[str]) -> None:
    """Print what the tests above measured (they run first in this file)."""
    if not RESULTS:
        pytest.skip("no measurements in this run")
    lines = [
        "",
        "| server | strategy | scheme, request | round trips | server commands (per request) |",
    ]
    lines.append("|---|---|---|---|---|")
    for (flavor, strategy, label), (trips, commands, delta) in sorted(RESULTS.items()):
        detail = ", ".join(
            f"{name} {re.sub(r'[.]0$', '', f'{calls / REQUESTS:.1f}')}"
            for name, calls in sorted(delta.items())
        )
        lines.append(f"| {flavor} | {strategy} | {label} | {trips:g} | {commands:g}: {detail} |")
    with capsys.disabled():
        print("\n".join(lines))
