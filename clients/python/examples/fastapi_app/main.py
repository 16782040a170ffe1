"""The seed's app on FastAPI, through slowapi (limits underneath), on the ratelimit module.

Run it under uvicorn with 4 worker processes sharing their limits through the server::

    RATELIMIT_STORAGE_URI=rl://localhost:6379 uvicorn main:app --workers 4 --port 8000

The seed article's limits: default 5/minute (``/``), ``/public`` 10/minute, ``/private``
2/minute, ``/dynamic`` 100/hour for ``X-User-Role: premium`` else 10/hour; keyed by the
``X-API-Key`` header or the client's address; a JSON 429; rate-limit headers on every answer.

Environment: ``RATELIMIT_STORAGE_URI`` (default ``rl://localhost:6379``), ``RATELIMIT_STRATEGY``
(``fixed-window`` by default, or ``moving-window``, ``sliding-window-counter``),
``RATELIMIT_KEY_PREFIX`` (default empty).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address

import redis_ratelimit  # noqa: F401 - registers the rl:// storages with limits


def api_key_or_address(request: Request) -> str:
    """Limit by the X-API-Key header, else by the client's address."""
    return request.headers.get("X-API-Key") or get_remote_address(request)


def role_and_key(request: Request) -> str:
    """``premium:<key>`` or ``standard:<key>``: slowapi hands a dynamic limit only the key."""
    role = "premium" if request.headers.get("X-User-Role") == "premium" else "standard"
    return f"{role}:{api_key_or_address(request)}"


def dynamic_limit(key: str) -> str:
    """Premium users get 100 requests an hour, everyone else 10."""
    return "100 per hour" if key.startswith("premium:") else "10 per hour"


#: The seed's default limit, given on each route without its own: slowapi's ``default_limits``
#: act through ``SlowAPIMiddleware``, which (slowapi 0.1.10) also puts them on routes whose only
#: limit is dynamic, ``/dynamic`` here.
DEFAULT_LIMIT = "5 per minute"

limiter = Limiter(
    key_func=api_key_or_address,
    storage_uri=os.environ.get("RATELIMIT_STORAGE_URI", "rl://localhost:6379"),
    strategy=os.environ.get("RATELIMIT_STRATEGY", "fixed-window"),
    key_prefix=os.environ.get("RATELIMIT_KEY_PREFIX", ""),
    headers_enabled=True,
)

app = FastAPI()
app.state.limiter = limiter


@app.exception_handler(RateLimitExceeded)
async def ratelimit_handler(request: Request, _exc: RateLimitExceeded) -> Response:
    """JSON body for 429s, with Retry-After and the X-RateLimit-* headers."""
    response = JSONResponse({"error": "Too many requests. Please slow down!"}, status_code=429)
    return limiter._inject_headers(response, request.state.view_rate_limit)


@app.middleware("http")
async def worker_header(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Name the uvicorn worker that answered, to show that the workers share their limits."""
    response = await call_next(request)
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


@app.get("/")
@limiter.limit(DEFAULT_LIMIT)
async def index(request: Request, response: Response) -> dict[str, str]:
    """Only the default limit: 5 per minute."""
    return {"message": "Hello, the default limit is 5 per minute"}


@app.get("/public")
@limiter.limit("10 per minute")
async def public_endpoint(request: Request, response: Response) -> dict[str, str]:
    """10 requests a minute."""
    return {"message": "This is a public endpoint"}


@app.get("/private")
@limiter.limit("2 per minute")
async def private_endpoint(request: Request, response: Response) -> dict[str, str]:
    """2 requests a minute."""
    return {"message": "This is a private endpoint"}


@app.get("/dynamic")
@limiter.limit(dynamic_limit, key_func=role_and_key)
async def dynamic_endpoint(request: Request, response: Response) -> dict[str, str]:
    """100 an hour for X-User-Role: premium, else 10."""
    return {"message": "Rate limit applied dynamically"}
