"""The seed's app on FastAPI through slowapi, under a real ``uvicorn --workers 4``, on rl://."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from http_app import BODY_429, EXAMPLES, App, serve
from servers import Server, free_port

WORKERS = 4


@pytest.fixture(
    scope="module",
    # The sliding window counter is limits' Lua on rl:// as without the module: the Flask test
    # runs it under gunicorn; here the module's two strategies and the fallback.
    params=[
        ("module", "fixed-window"),
        ("module", "moving-window"),
        ("no-module", "fixed-window"),
    ],
    ids=lambda p: "-".join(p),
)
def app(request: pytest.FixtureRequest, flavor: str) -> Iterator[App]:
    with_module, strategy = request.param
    server: Server = request.getfixturevalue(
        "module_server" if with_module == "module" else "plain_server"
    )
    port = free_port()
    env = {
        **os.environ,
        "RATELIMIT_STORAGE_URI": f"rl://{server.url}",
        "RATELIMIT_STRATEGY": strategy,
        "RATELIMIT_KEY_PREFIX": uuid.uuid4().hex[:8],
        "PYTHONWARNINGS": "ignore",
    }
    args = [sys.executable, "-m", "uvicorn", "main:app", "--workers", str(WORKERS)]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with serve(args, EXAMPLES / "fastapi_app", env, port, strategy, WORKERS) as running:
        yield running


def test_public_ten_then_429_with_json_and_retry_after(app: App) -> None:
    key = uuid.uuid4().hex
    replies = [app.get("/public", X_API_Key=key) for _ in range(15)]
    assert [r.status for r in replies] == [200] * 10 + [429] * 5
    for n, reply in enumerate(replies[:10]):
        assert reply.body == {"message": "This is a public endpoint"}
        assert reply.headers.get_all("X-RateLimit-Limit") == ["10"]
        assert reply.headers.get_all("X-RateLimit-Remaining") == [str(9 - n)]
    for reply in replies[10:]:
        assert reply.body == BODY_429
        assert reply.headers["content-type"] == "application/json"
        assert reply.headers["X-RateLimit-Remaining"] == "0"
        retry_after = int(reply.headers["Retry-After"])
        assert 0 <= retry_after <= 61
        if app.strategy != "sliding-window-counter":  # limits' reset there is its own estimate
            assert retry_after >= 55  # the window began a few seconds ago at most
        # slowapi's X-RateLimit-Reset: the reset time (Unix seconds) + 1.
        reset = float(reply.headers["X-RateLimit-Reset"])
        assert abs((reset - time.time()) - retry_after) <= 2


def test_workers_share_the_limit(app: App) -> None:
    replies = app.concurrently("/public", 30, X_API_Key=uuid.uuid4().hex)
    assert sorted(r.status for r in replies) == [200] * 10 + [429] * 20
    assert len({r.headers["X-Worker-Pid"] for r in replies}) >= 2


def test_api_keys_are_limited_independently(app: App) -> None:
    alice, bob = uuid.uuid4().hex, uuid.uuid4().hex
    assert [app.get("/private", X_API_Key=alice).status for _ in range(3)] == [200, 200, 429]
    assert [app.get("/private", X_API_Key=bob).status for _ in range(3)] == [200, 200, 429]
    assert app.get("/public", X_API_Key=alice).status == 200  # another route, another limit


def test_default_limit_by_remote_address(app: App) -> None:
    statuses = [app.get("/").status for _ in range(6)]
    assert statuses == [200] * 5 + [429]


def test_dynamic_limit_by_role(app: App) -> None:
    normal, premium = uuid.uuid4().hex, uuid.uuid4().hex
    replies = [app.get("/dynamic", X_API_Key=normal) for _ in range(11)]
    assert [r.status for r in replies] == [200] * 10 + [429]
    assert replies[0].headers["X-RateLimit-Limit"] == "10"
    premium_replies = [
        app.get("/dynamic", X_API_Key=premium, X_User_Role="premium") for _ in range(11)
    ]
    assert [r.status for r in premium_replies] == [200] * 11
    assert premium_replies[-1].headers["X-RateLimit-Limit"] == "100"
    assert premium_replies[-1].headers["X-RateLimit-Remaining"] == "89"
