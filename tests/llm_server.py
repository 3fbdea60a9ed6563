"""A real OpenAI-compatible HTTP server for tests and benchmarks, answering from a script.

``ScriptedLLMServer(script)`` listens on 127.0.0.1 (port 0 = any free port) in a background
thread running its own asyncio loop, with a minimal HTTP/1.1 parser (keep-alive, Content-Length
bodies), so one process serves hundreds of requests per second. ``POST /v1/chat/completions``
calls ``script(request_json, request_number)`` (numbers start at 0) which returns a ``Reply``:
JSON content, an error status with headers, a delay, ``finish_reason="length"``, a refusal or
raw malformed content. A list of replies is a script too (the last one repeats). The server
records every request (number, arrival time, JSON body, headers) under a lock.

``latency_s`` is added to every reply's delay; ``capacity`` bounds the requests served at once
(more wait in the server's queue, as on a saturated inference server). Each recorded request
also gets its ``finished`` time and status, and the server keeps ``in_flight`` and
``max_in_flight`` (arrival to response written): tests assert on what the server observed.
``GET /stats`` returns these as JSON, for a server running in another process.

Run ``python tests/llm_server.py --latency-ms 200`` for a stand-alone fixed-latency server that
answers ``{"ok": true}`` (the benchmark uses this in a subprocess); it prints its base URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 408: "Request Timeout",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass
class Reply:
    """One scripted answer. ``content`` may be a dict/list (sent as JSON) or raw text."""

    content: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_body: dict[str, Any] | None = None
    delay_s: float = 0.0
    finish_reason: str = "stop"
    refusal: str | None = None
    prompt_tokens: int = 11
    completion_tokens: int = 7


@dataclass
class Recorded:
    number: int
    arrived: float
    body: dict[str, Any]
    headers: dict[str, str]
    finished: float | None = None
    status: int | None = None


Script = Callable[[dict[str, Any], int], Reply] | Sequence[Reply]


def completion_json(reply: Reply, model: str, number: int) -> dict[str, Any]:
    content = reply.content
    if content is not None and not isinstance(content, str):
        content = json.dumps(content)
    return {
        "id": f"chatcmpl-{number}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                     "message": {"role": "assistant", "content": content, "refusal": reply.refusal}}],
        "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                  "total_tokens": reply.prompt_tokens + reply.completion_tokens},
    }


class ScriptedLLMServer:
    """Context manager: starts on enter, stops (closing every connection) on exit."""

    def __init__(self, script: Script, *, host: str = "127.0.0.1", port: int = 0, latency_s: float = 0.0,
                 capacity: int | None = None):
        self._script = script
        self.latency_s, self.capacity = latency_s, capacity
        self._slots: asyncio.Semaphore | None = None
        self.in_flight = self.max_in_flight = 0
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._bound_port = port

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "ScriptedLLMServer":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, self._host, self._port, backlog=1024))
            self._bound_port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="scripted-llm-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> "ScriptedLLMServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._bound_port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    # -- HTTP ----------------------------------------------------------------------------------

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[Recorded, Reply]:
        with self._lock:
            recorded = Recorded(len(self.requests), time.monotonic(), body, headers)
            self.requests.append(recorded)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        number = recorded.number
        if callable(self._script):
            return recorded, self._script(body, number)
        return recorded, self._script[min(number, len(self._script) - 1)]

    def _done(self, recorded: Recorded, status: int) -> None:
        with self._lock:
            recorded.finished, recorded.status = time.monotonic(), status
            self.in_flight -= 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"count": len(self.requests), "max_in_flight": self.max_in_flight,
                    "intervals": [[r.arrived, r.finished, r.status] for r in self.requests],
                    "bodies": [json.dumps(r.body) for r in self.requests]}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                keep_alive = headers.get("connection", "").lower() != "close"
                status, payload, extra = await self._respond(method, path, body, headers)
                data = json.dumps(payload).encode()
                out = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
                       "Content-Type: application/json", f"Content-Length: {len(data)}",
                       f"Connection: {'keep-alive' if keep_alive else 'close'}",
                       *(f"{k}: {v}" for k, v in extra.items())]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + data)
                await writer.drain()
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _respond(self, method: str, path: str, raw: bytes, headers: dict[str, str]):
        if method == "GET" and path.rstrip("/").endswith("/stats"):
            return 200, self.stats(), {}
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {method} {path}"}}, {}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return 400, {"error": {"message": "body is not JSON"}}, {}
        recorded, reply = self._next(body, headers)
        try:
            return await self._serve(recorded, reply, body)
        finally:
            self._done(recorded, reply.status)

    async def _serve(self, recorded: Recorded, reply: Reply, body: dict[str, Any]):
        number = recorded.number
        if self.capacity and self._slots is None:
            self._slots = asyncio.Semaphore(self.capacity)
        if self._slots is not None:
            async with self._slots:
                await asyncio.sleep(reply.delay_s + self.latency_s)
        elif reply.delay_s + self.latency_s:
            await asyncio.sleep(reply.delay_s + self.latency_s)
        if reply.status != 200:
            error = reply.error_body or {"error": {"message": f"scripted {reply.status}",
                                                   "type": "scripted", "code": reply.status}}
            return reply.status, error, reply.headers
        return 200, completion_json(reply, body.get("model", "scripted"), number), reply.headers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    reply = Reply(content={"ok": True}, delay_s=args.latency_ms / 1000)
    server = ScriptedLLMServer(lambda body, n: reply, port=args.port).start()
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
