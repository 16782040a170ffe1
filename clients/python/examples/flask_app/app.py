"""The seed's Flask-Limiter app, on the ratelimit module: one import and an rl:// URI.

Run it under gunicorn with 4 workers sharing their limits through the server::

    RATELIMIT_STORAGE_URI=rl://localhost:6379 gunicorn -w 4 -b 127.0.0.1:5000 app:app

Environment: ``RATELIMIT_STORAGE_URI`` (default ``rl://localhost:6379``), ``RATELIMIT_STRATEGY``
(``fixed-window`` by default, or ``moving-window``, ``sliding-window-counter``),
``RATELIMIT_KEY_PREFIX`` (default empty).
"""

from __future__ import annotations

import os

from flask import Flask, Response, jsonify, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

import redis_ratelimit  # noqa: F401 - registers the rl:// storages with limits

app = Flask(__name__)


def api_key_or_address() -> str:
    """Limit by the X-API-Key header, else by the client's address."""
    return request.headers.get("X-API-Key") or get_remote_address()


def dynamic_limit() -> str:
    """Premium users get 100 requests an hour, everyone else 10."""
    return "100 per hour" if request.headers.get("X-User-Role") == "premium" else "10 per hour"


limiter = Limiter(
    key_func=api_key_or_address,
    app=app,
    default_limits=["5 per minute"],
    storage_uri=os.environ.get("RATELIMIT_STORAGE_URI", "rl://localhost:6379"),
    strategy=os.environ.get("RATELIMIT_STRATEGY", "fixed-window"),
    key_prefix=os.environ.get("RATELIMIT_KEY_PREFIX", ""),
    headers_enabled=True,
)


@app.route("/")
def index() -> tuple[Response, int]:
    """Only the default limit: 5 per minute."""
    return jsonify(message="Hello, the default limit is 5 per minute"), 200


@app.route("/public")
@limiter.limit("10 per minute")
def public_endpoint() -> tuple[Response, int]:
    """10 requests a minute."""
    return jsonify(message="This is a public endpoint"), 200


@app.route("/private")
@limiter.limit("2 per minute")
def private_endpoint() -> tuple[Response, int]:
    """2 requests a minute."""
    return jsonify(message="This is a private endpoint"), 200


@app.route("/dynamic")
@limiter.limit(dynamic_limit)
def dynamic_endpoint() -> tuple[Response, int]:
    """100 an hour for X-User-Role: premium, else 10."""
    return jsonify(message="Rate limit applied dynamically"), 200


@app.after_request
def worker_header(response: Response) -> Response:
    """Name the gunicorn worker that answered, to show that the workers share their limits."""
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


@app.errorhandler(429)
def ratelimit_handler(_error: Exception) -> tuple[Response, int]:
    """JSON body for 429s; Flask-Limiter adds Retry-After and the X-RateLimit-* headers."""
    return jsonify(error="Too many requests. Please slow down!"), 429


if __name__ == "__main__":
    app.run(debug=True)
