"""Flask-Limiter's features end to end on rl://, each over HTTP to a real server thread.

Shared limits, meta limits, ``deduct_when``, exemptions, cost functions, the in-memory fallback
while the server is stopped and after it is back, and headers for several limits on one route
(Flask-Limiter's ``X-RateLimit-*`` and the IETF ``RateLimit`` / ``RateLimit-Policy`` built with
:mod:`redis_ratelimit.headers`).
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from flask import Flask, Response, jsonify, request
from flask_limiter import Limiter
from http_app import App
from redis.backoff import NoBackoff
from redis.retry import Retry
from servers import Server, free_port, start_server, wait_for
from werkzeug.serving import make_server

from redis_ratelimit import decision_from_window_stats, merge_headers, rate_limit_headers
from redis_ratelimit.limits_storage import ModuleNotLoadedWarning


def policy_name(limit: Any) -> str:
    return f"{limit.amount}-per-{limit.get_expiry()}s"


def make_app(uri: str, strategy: str, **options: Any) -> tuple[Flask, Limiter]:
    app = Flask(__name__)
    limiter = Limiter(
        key_func=lambda: request.headers.get("X-API-Key") or "anonymous",
        app=app,
        default_limits=["5 per minute"],
        storage_uri=uri,
        strategy=strategy,
        key_prefix=uuid.uuid4().hex[:8],
        headers_enabled=True,
        **options,
    )
    shared = limiter.shared_limit("3 per minute", scope="group")

    @app.route("/shared/a")
    @shared
    def shared_a() -> Response:
        return jsonify(route="a")

    @app.route("/shared/b")
    @shared
    def shared_b() -> Response:
        return jsonify(route="b")

    @app.route("/meta")
    @limiter.limit("2 per second", meta_limits=["2 per minute"])
    def meta() -> Response:
        return jsonify(route="meta")

    @app.route("/deduct")
    @limiter.limit("2 per minute", deduct_when=lambda response: response.status_code != 200)
    def deduct() -> tuple[Response, int]:
        failed = request.args.get("fail") == "1"
        return jsonify(failed=failed), 400 if failed else 200

    @app.route("/exempt")
    @limiter.exempt
    def exempt() -> Response:
        return jsonify(route="exempt")

    @app.route("/admin")
    @limiter.limit("1 per minute", exempt_when=lambda: request.headers.get("X-Admin") == "1")
    def admin() -> Response:
        return jsonify(route="admin")

    @app.route("/cost")
    @limiter.limit("10 per minute", cost=lambda: int(request.args.get("cost", "1")))
    def cost() -> Response:
        return jsonify(route="cost")

    @app.route("/two")
    @limiter.limit("3 per 10 seconds;10 per minute")
    def two() -> Response:
        return jsonify(route="two")

    @app.after_request
    def ietf_headers(response: Response) -> Response:
        # One policy per limit that applied to this request; X-RateLimit-* are Flask-Limiter's.
        sets = []
        for current in limiter.current_limits:
            decision = decision_from_window_stats(
                current.limit.amount, current.window, breached=current.breached
            )
            sets.append(
                rate_limit_headers(
                    decision,
                    window=current.limit.get_expiry(),
                    policy=policy_name(current.limit),
                    classic=False,
                )
            )
        for name, value in merge_headers(*sets).items():
            if name != "Retry-After":  # Flask-Limiter sets its own
                response.headers[name] = value
        return response

    @app.errorhandler(429)
    def too_many(_error: Exception) -> tuple[Response, int]:
        return jsonify(error="Too many requests. Please slow down!"), 429

    return app, limiter


@contextmanager
def serving(app: Flask, strategy: str) -> Iterator[App]:
    """Serve *app* over HTTP from a thread of this process (werkzeug, threaded)."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield App(f"http://127.0.0.1:{port}", strategy)
    finally:
        server.shutdown()
        thread.join(10)


@pytest.fixture(
    scope="module",
    params=[
        ("module", "fixed-window"),
        ("module", "moving-window"),
        ("module", "sliding-window-counter"),
        ("no-module", "fixed-window"),
    ],
    ids=lambda p: "-".join(p),
)
def app(request: pytest.FixtureRequest, flavor: str) -> Iterator[App]:
    with_module, strategy = request.param
    server: Server = request.getfixturevalue(
        "module_server" if with_module == "module" else "plain_server"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModuleNotLoadedWarning)
        flask_app, _limiter = make_app(f"rl://{server.url}", strategy)
        with serving(flask_app, strategy) as running:
            yield running


def key() -> str:
    return uuid.uuid4().hex


def test_shared_limit_counts_every_route_of_its_scope(app: App) -> None:
    k = key()
    statuses = [app.get(path, X_API_Key=k).status for path in ["/shared/a"] * 2 + ["/shared/b"]]
    assert statuses == [200, 200, 200]
    assert app.get("/shared/b", X_API_Key=k).status == 429
    assert app.get("/shared/a", X_API_Key=k).status == 429
    assert app.get("/shared/a", X_API_Key=key()).status == 200


def test_meta_limit_denies_after_two_breaches(app: App) -> None:
    if app.strategy == "sliding-window-counter":
        pytest.skip("a sliding counter's next second still weighs the last one")
    k = key()
    for _breach in range(2):
        first = time.time()
        assert [app.get("/meta", X_API_Key=k).status for _ in range(3)] == [200, 200, 429]
        time.sleep(max(0.0, first + 1.1 - time.time()))  # the 2-per-second window is over
    reply = app.get("/meta", X_API_Key=k)  # within its limit, but breached twice this minute
    assert reply.status == 429
    assert reply.headers["X-RateLimit-Limit"] == "2"
    assert app.get("/meta", X_API_Key=key()).status == 200


def test_deduct_when_counts_failed_responses_only(app: App) -> None:
    k = key()
    assert [app.get("/deduct", X_API_Key=k).status for _ in range(5)] == [200] * 5
    assert [app.get("/deduct?fail=1", X_API_Key=k).status for _ in range(2)] == [400, 400]
    reply = app.get("/deduct", X_API_Key=k)
    assert reply.status == 429
    assert reply.body == {"error": "Too many requests. Please slow down!"}


def test_exemptions(app: App) -> None:
    k = key()
    assert [app.get("/exempt", X_API_Key=k).status for _ in range(8)] == [200] * 8
    assert "X-RateLimit-Limit" not in app.get("/exempt", X_API_Key=k).headers
    assert [app.get("/admin", X_API_Key=k).status for _ in range(2)] == [200, 429]
    admin = [app.get("/admin", X_API_Key=k, X_Admin="1").status for _ in range(3)]
    assert admin == [200] * 3


def test_cost_function(app: App) -> None:
    k = key()
    replies = [app.get(f"/cost?cost={c}", X_API_Key=k) for c in (4, 4, 4, 2, 1)]
    if app.strategy == "fixed-window":  # limits' fixed window counts denied hits too
        assert [r.status for r in replies] == [200, 200, 429, 429, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["6", "2", "0", "0", "0"]
    else:
        assert [r.status for r in replies] == [200, 200, 429, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["6", "2", "2", "0", "0"]


def test_headers_for_two_limits_on_one_route(app: App) -> None:
    k = key()
    replies = [app.get("/two", X_API_Key=k) for _ in range(4)]
    assert [r.status for r in replies] == [200, 200, 200, 429]
    for n, reply in enumerate(replies[:3]):
        # Flask-Limiter's own headers describe the smallest window.
        assert reply.headers["X-RateLimit-Limit"] == "3"
        assert reply.headers["X-RateLimit-Remaining"] == str(2 - n)
        assert reply.headers["RateLimit-Policy"] == '"3-per-10s";q=3;w=10, "10-per-60s";q=10;w=60'
        short, long = reply.headers["RateLimit"].split(", ")
        assert short.startswith(f'"3-per-10s";r={2 - n};t=')
        assert 0 <= int(short.rsplit("=", 1)[1]) <= 11
        assert long.startswith(f'"10-per-60s";r={9 - n};t=')
        assert 0 <= int(long.rsplit("=", 1)[1]) <= 61
    denied = replies[3]
    # Flask-Limiter stops at the first breached limit: the only one this request evaluated.
    assert denied.headers["RateLimit-Policy"] == '"3-per-10s";q=3;w=10'
    assert denied.headers["RateLimit"].startswith('"3-per-10s";r=0;t=')
    t = int(denied.headers["RateLimit"].rsplit("=", 1)[1])
    assert 1 <= t <= 11
    assert 0 <= int(denied.headers["Retry-After"]) <= 11


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window"])
def test_in_memory_fallback_while_the_server_is_down(flavor: str, strategy: str) -> None:
    """Flask-Limiter counts in memory while the server is stopped, and returns to it after."""
    server = start_server(flavor)
    # No client retries: a refused connection fails the call at once (redis-py retries 3 times
    # with backoff by default).
    options = {"retry": Retry(NoBackoff(), 0), "socket_connect_timeout": 1}
    flask_app, limiter = make_app(
        f"rl://{server.url}", strategy, in_memory_fallback_enabled=True, storage_options=options
    )
    try:
        with serving(flask_app, strategy) as app:
            k = key()
            assert [app.get("/shared/a", X_API_Key=k).status for _ in range(2)] == [200, 200]
            server.kill()
            # In memory now, from zero: 3 admitted, then 429.
            statuses = [app.get("/shared/a", X_API_Key=k).status for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            server.restart()
            fresh = key()

            def back_on_the_server() -> bool:
                app.get("/shared/b", X_API_Key=fresh)
                return bool(server.client().keys("*" + fresh + "*"))

            wait_for(back_on_the_server, 60, "Flask-Limiter to return to the server")
            assert server.client().type(server.client().keys("*" + fresh + "*")[0]) == b"ratelimit"
            # The rest of the shared limit, counted on the server again.
            assert [app.get("/shared/a", X_API_Key=fresh).status for _ in range(3)] == [
                200,
                200,
                429,
            ]
            assert cast(Any, limiter.storage).module_support().loaded
    finally:
        server.stop()
