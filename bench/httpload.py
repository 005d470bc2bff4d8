"""A raw HTTP/1.1 client on asyncio streams, and the like load generator built on it.

Why not httpx or aiohttp: on this 2-core machine the load generator shares the cores with the system
under test, so it must cost as little CPU per request as possible (../shared/limits/RESULTS.md: httpx
needs ~1.5 ms of CPU per request, this kind of client ~30 us). The generator runs in its own process
(`python -m bench.httpload SPEC.json`, one JSON object on stdout) so it never shares an event loop with
the code that measures end-to-end latency.

Every like is a new (post, user) pair: request k goes to post k % P from user k % U. With P and U
coprime that pair repeats only after P * U requests (Chinese remainder theorem), and consecutive
requests differ in both post and user, so 64 connections do not queue on one post's counter row. The
caller passes the next k on to the following phase.

Two modes:
- closed: CONNECTIONS connections send back to back; the rate is whatever the system sustains.
- open: requests are due at a fixed rate whether or not earlier ones were answered; a request's
  latency counts from when it was due, so a system that falls behind shows it (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench import procstat


class HttpError(Exception):
    pass


@dataclass
class Reply:
    status: int
    body: bytes


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        at += len(b"\r\ncontent-length:")
        body = await reader.readexactly(int(head[at : head.index(b"\r\n", at)]))
    elif b"\r\ntransfer-encoding: chunked" in lower:
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    else:
        body = b""
    return Reply(status, body)


def request_bytes(method: str, path: str, token: bytes | None) -> bytes:
    auth = b"Authorization: Bearer " + token + b"\r\n" if token else b""
    return b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: 0\r\n\r\n" % (method.encode(), path.encode(), auth)


class Connection:
    """One keep-alive connection; reconnects after an error so one failure costs one request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def roundtrip(self, request: bytes) -> Reply:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self._reader is not None
        try:
            self._writer.write(request)
            return await read_reply(self._reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self.close()
            raise HttpError(repr(exc)) from exc

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class ConnectionPool:
    """A few keep-alive connections shared by many tasks (the latency sampler's polls)."""

    def __init__(self, port: int, size: int) -> None:
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(Connection(port))

    async def request(self, method: str, path: str, token: bytes | None) -> Reply:
        conn = await self._idle.get()
        try:
            return await conn.roundtrip(request_bytes(method, path, token))
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()


def liked(reply: Reply) -> bool:
    return reply.status == 200 and b'"liked":true' in reply.body


class Recorder:
    """Counts each answer in the window in which it arrived; answers in the warm-up are not counted."""

    def __init__(self, *, start: float, warmup: float, window: float, windows: int) -> None:
        self.edges = [start + warmup + i * window for i in range(windows + 1)]
        self.stop_at = self.edges[-1]
        self.latencies: list[list[float]] = [[] for _ in range(windows)]
        self.errors = [0] * windows
        self.error_samples: list[str] = []

    def record(self, t0: float, t1: float, ok: bool, detail: str = "") -> None:
        if not ok and len(self.error_samples) < 5:
            self.error_samples.append(detail[:300])
        for i in range(len(self.latencies)):
            if self.edges[i] <= t1 < self.edges[i + 1]:
                if ok:
                    self.latencies[i].append((t1 - t0) * 1e3)
                else:
                    self.errors[i] += 1
                return


class Likes:
    """The (post, user) pairs, each used once across all phases of a run."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.tokens = [t.encode() for t in spec["tokens"]]
        self.posts = spec["posts"]
        self.next = spec["start"]
        self.limit = spec.get("count")  # closed mode may stop after this many requests

    def take(self) -> bytes | None:
        if self.limit is not None:
            if self.limit <= 0:
                return None
            self.limit -= 1
        k = self.next
        self.next += 1
        post = self.posts[k % len(self.posts)]
        return request_bytes("PUT", f"/api/posts/{post}/like", self.tokens[k % len(self.tokens)])


async def closed_loop(conn: Connection, likes: Likes, rec: Recorder) -> None:
    while (t0 := time.perf_counter()) < rec.stop_at:
        request = likes.take()
        if request is None:
            return
        await _one(conn, request, t0, rec)


async def open_loop(
    conn: Connection, likes: Likes, rec: Recorder, slots: itertools.count[int], *, start: float, rate: float
) -> None:
    while True:
        due = start + next(slots) / rate
        if due >= rec.stop_at:
            return
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        request = likes.take()
        if request is None:
            return
        await _one(conn, request, due, rec)


async def _one(conn: Connection, request: bytes, t0: float, rec: Recorder) -> None:
    try:
        reply = await conn.roundtrip(request)
    except HttpError as exc:
        rec.record(t0, time.perf_counter(), False, str(exc))
        await asyncio.sleep(0.01)  # a refused connection must not spin
        return
    rec.record(t0, time.perf_counter(), liked(reply), f"{reply.status} {reply.body[:200]!r}")


async def cpu_marks(rec: Recorder, roles: dict[int, str], database: str | None) -> list[dict[str, float]]:
    """A /proc snapshot at every window edge, so each window has its own CPU figures."""
    marks = []
    for edge in rec.edges:
        await asyncio.sleep(max(0.0, edge - time.perf_counter()))
        marks.append(procstat.snapshot())
    return [procstat.usage(a, b, roles, database=database) for a, b in itertools.pairwise(marks)]


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    windows = spec["windows"]
    rec = Recorder(start=start, warmup=spec["warmup"], window=spec["seconds"] / windows, windows=windows)
    roles = {int(pid): role for pid, role in spec.get("roles", {}).items()}
    roles[os.getpid()] = "loadgen"
    marks = asyncio.create_task(cpu_marks(rec, roles, spec.get("database")))
    likes = Likes(spec)
    conns = [Connection(spec["port"]) for _ in range(spec["connections"])]
    if spec["mode"] == "closed":
        await asyncio.gather(*(closed_loop(c, likes, rec) for c in conns))
    else:
        slots = itertools.count()
        await asyncio.gather(*(open_loop(c, likes, rec, slots, start=start, rate=spec["rate"]) for c in conns))
    for conn in conns:
        conn.close()
    # A count-limited phase (the warm-up) ends before its window does: no CPU figures for it.
    if time.perf_counter() < rec.stop_at:
        marks.cancel()
        cpu: list[dict[str, float]] = []
    else:
        cpu = await marks
    out_windows = []
    for i, (lat, errors) in enumerate(zip(rec.latencies, rec.errors, strict=True)):
        lat.sort()
        out_windows.append(
            {
                "rate": len(lat) / (spec["seconds"] / windows),
                "ok": len(lat),
                "errors": errors,
                "p50_ms": percentile(lat, 0.50),
                "p99_ms": percentile(lat, 0.99),
                "cpu": cpu[i] if i < len(cpu) else {},
            }
        )
    every = sorted(itertools.chain.from_iterable(rec.latencies))
    return {
        "windows": out_windows,
        "ok": len(every),
        "errors": sum(rec.errors),
        "p50_ms": percentile(every, 0.50),
        "p99_ms": percentile(every, 0.99),
        "error_samples": rec.error_samples,
        "next": likes.next,
        "elapsed_s": time.perf_counter() - start,
    }


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    try:
        import uvloop

        result = uvloop.run(run(spec))
    except ImportError:
        result = asyncio.run(run(spec))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
