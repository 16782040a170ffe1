"""An example app served by real worker processes (gunicorn, uvicorn), and requests to it."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from servers import wait_for

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BODY_429 = {"error": "Too many requests. Please slow down!"}


@dataclass
class Reply:
    status: int
    #: Case-insensitive (uvicorn sends lower-case names, gunicorn + Flask capitalised ones).
    headers: Message
    body: dict[str, str]


@dataclass
class App:
    base: str
    strategy: str

    def get(self, path: str, **headers: str) -> Reply:
        """GET *path*; header names as keyword arguments with ``_`` for ``-``."""
        request = urllib.request.Request(
            self.base + path, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, response.headers, json.loads(response.read()))
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.headers, json.loads(error.read()))

    def concurrently(self, path: str, count: int, **headers: str) -> list[Reply]:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda _: self.get(path, **headers), range(count)))


@contextmanager
def serve(
    args: list[str], cwd: Path, env: dict[str, str], port: int, strategy: str, workers: int
) -> Iterator[App]:
    """Run *args* (a server of *workers* processes on *port*) until every worker has answered."""
    process = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    running = App(f"http://127.0.0.1:{port}", strategy)
    pids: set[str] = set()

    def all_workers_answer() -> bool:
        # Concurrent requests (each its own key) until each worker has answered once.
        with ThreadPoolExecutor(8) as pool:
            replies = pool.map(
                lambda _: running.get("/public", X_API_Key=uuid.uuid4().hex), range(4 * workers)
            )
            pids.update(r.headers["X-Worker-Pid"] for r in replies if r.status == 200)
        return len(pids) == workers

    try:
        wait_for(all_workers_answer, 90, f"{workers} workers")
        yield running
    finally:
        process.terminate()
        process.wait(30)
