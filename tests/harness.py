"""Runs the real system for tests and benchmarks: every service as its own process, on free ports,
against a fresh database and a unique broker namespace, so a run never touches a `make run` instance.

Also a TCP proxy that a test controls (after Shopify's Toxiproxy), to cut PostgreSQL or RabbitMQ for
one system without root and without touching the shared servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
from aiosmtpd.controller import Controller

from shared.auth import Claims, mint_token
from shared.settings import Settings
from tillit.catalog import BACKEND_SERVICES, all_consumers

ROOT = Path(__file__).resolve().parent.parent
SERVICES = BACKEND_SERVICES
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


# Ports for the services come from below the kernel's ephemeral range (32768-60999 here): a port the
# kernel hands out (bind to 0) is free now but may be taken by any outgoing connection before the service
# binds it, which with several systems under test happened ("address already in use").
_PORTS = range(20000, 32000)


# Ports handed out in this process: a system picks its ports before its services bind them, so another
# system started meanwhile must not be handed the same free-looking port.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    while True:
        port = secrets.choice(_PORTS)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port


def random_id(prefix: str = "u") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut()` drops every connection and refuses new ones
    until `restore()`, which is what a server restart looks like to a client. `stall()` holds the server's
    replies (the client's bytes still reach the server) until `restore()` or `cut()`: a server that took
    a request and has not answered yet, e.g. a publish the broker routed but has not confirmed."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.base_events.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._replies_flowing = asyncio.Event()
        self._replies_flowing.set()
        self._cuts = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cuts = self._cuts
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        if cuts != self._cuts:
            # cut() ran while this connection was being set up: it must not outlive the cut.
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        tasks = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer, gate=self._replies_flowing)),
        ]
        self._pipes.update(tasks)
        for task in tasks:
            task.add_done_callback(self._pipes.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: asyncio.Event | None = None
    ) -> None:
        try:
            while data := await reader.read(65536):
                if gate is not None:
                    await gate.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    def stall(self) -> None:
        self._replies_flowing.clear()

    async def cut(self) -> None:
        self._cuts += 1
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()

    async def restore(self) -> None:
        self._replies_flowing.set()
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def close(self) -> None:
        await self.cut()


class CapturingSmtp:
    """An SMTP server the test starts; every message it accepts is kept in `messages`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        self.messages.append(email.message_from_bytes(content, policy=email.policy.default))
        return "250 OK"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@dataclass
class System:
    """One isolated Tillit: its own database, namespace, ports, SMTP server and service processes."""

    database_url: str = ""
    rabbitmq_url: str = AMQP_URL
    db_via: TcpProxy | None = None
    amqp_via: TcpProxy | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    log_level: str = "WARNING"
    name: str = field(default_factory=lambda: f"t{secrets.token_hex(4)}")
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Extra processes of a service (`start_replica`), by process name: "reactions-2" -> "reactions".
    replicas: dict[str, str] = field(default_factory=dict)
    smtp: CapturingSmtp = field(default_factory=CapturingSmtp)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tillit-test-")))

    @property
    def namespace(self) -> str:
        return f"test_{self.name}"

    @property
    def database(self) -> str:
        return f"tillit_test_{self.name}"

    @property
    def direct_database_url(self) -> str:
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{self.database}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def settings(self) -> Settings:
        return Settings(**{"TILLIT_NAMESPACE": self.namespace})  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        db_url = self.direct_database_url
        if self.db_via is not None:
            db_url = f"postgresql://postgres@127.0.0.1:{self.db_via.port}/{self.database}"
        amqp_url = self.rabbitmq_url
        if self.amqp_via is not None:
            amqp_url = f"amqp://guest:guest@127.0.0.1:{self.amqp_via.port}/"
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "RABBITMQ_URL": amqp_url,
            "TILLIT_NAMESPACE": self.namespace,
            "SMTP_URL": self.smtp.url,
            "GATEWAY_PORT": str(self.ports["gateway"]),
            "PUBLIC_URL": "http://tillit.test",
            "LOG_LEVEL": self.log_level,
            "OUTBOX_POLL_SECONDS": "0.5",
            # Emails that wait for the reader (all but favourites) wait 2 s here rather than 2 minutes.
            "EMAIL_WINDOW_SECONDS": "2",
            # Webhook retries within a second, and a subscription disabled after 5 failures in a row.
            "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
            "WEBHOOK_RETRY_CAP_SECONDS": "1",
            "WEBHOOK_DISABLE_AFTER_FAILURES": "5",
            "WEBHOOK_DISABLE_AFTER_SECONDS": "0",
            "WEBHOOK_TIMEOUT_SECONDS": "3",
            # Small pools: a test run starts more than one system, and PostgreSQL allows 100 connections.
            "DB_POOL_SIZE": "4",
            "PYTHONUNBUFFERED": "1",
        }
        for service in SERVICES:
            env[f"{service.upper()}_URL"] = f"http://127.0.0.1:{self.ports[service]}"
        env.update(self.extra_env)
        return env

    async def start(self) -> None:
        self.ports = {name: free_port() for name in ("gateway", *SERVICES)}
        self.smtp.start()
        for service in ("gateway", *SERVICES):
            self.start_process(service)
        await self.wait_ready()

    def start_process(self, service: str) -> None:
        """Start a service's process, or (again) a replica's by the name `start_replica` gave it."""
        module = self.replicas.get(service, service)
        env = self.env()
        if module != service:
            # A replica listens on a port of its own; the gateway keeps talking to the first process.
            env[f"{module.upper()}_URL"] = f"http://127.0.0.1:{self.ports[service]}"
        log = open(self.log_dir / f"{service}.log", "ab")  # noqa: SIM115 (lives as long as the process)
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", f"services.{module}"], cwd=ROOT, env=env, stdout=log, stderr=log
        )

    def start_replica(self, service: str, replica: int = 2) -> str:
        """Start one more process of a backend service beside the first (competing consumers on its queues,
        a share of its outbox relay), on its own HTTP port; returns its process name, e.g. "reactions-2",
        which `kill`, `restart` and `wait_service_ready` take like a service's name."""
        name = f"{service}-{replica}"
        self.replicas[name] = service
        self.ports.setdefault(name, free_port())
        self.start_process(name)
        return name

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        async with httpx.AsyncClient(timeout=3) as client:
            while time.monotonic() < deadline:
                for service, process in self.processes.items():
                    if process.poll() is not None:
                        raise RuntimeError(f"{service} exited with {process.returncode}:\n{self.log_tail(service)}")
                try:
                    reply = await client.get(f"{self.base_url}/api/ready")
                    if reply.status_code == 200:
                        return
                    last = reply.json()
                except httpx.HTTPError as exc:
                    last = exc
                await asyncio.sleep(0.2)
        raise TimeoutError(f"system not ready after {timeout}s: {last}")

    async def wait_service_ready(self, service: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=3) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{self.ports[service]}/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{service} not ready after {timeout}s:\n{self.log_tail(service)}")

    def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[service]
        process.send_signal(sig)
        process.wait(timeout=30)

    async def restart(self, service: str) -> None:
        self.start_process(service)
        await self.wait_service_ready(service)

    def log_tail(self, service: str, lines: int = 40) -> str:
        path = self.log_dir / f"{service}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    async def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            # Wait in a thread: a blocking process.wait() here froze this event loop and with it any TcpProxy
            # the services reach PostgreSQL or RabbitMQ through, so each service hung closing its connections
            # until the timeout (about 100 s for a system behind a proxy) and was then killed, not stopped.
            try:
                await asyncio.to_thread(process.wait, max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        self.smtp.stop()
        await drop_namespace(self.namespace, self.queue_names())
        await drop_database(self.database)

    def queue_names(self) -> list[str]:
        names = []
        for consumer in (c for consumers in all_consumers().values() for c in consumers):
            names += [f"{self.namespace}.{consumer.name}", f"{self.namespace}.{consumer.name}.dlq"]
        return [*names, f"{self.namespace}.unrouted"]

    # Helpers for tests --------------------------------------------------------------------------------

    def token(
        self, user_id: str | None = None, *, name: str | None = None, email: str | None = None, **extra: Any
    ) -> str:
        user_id = user_id or random_id()
        claims = Claims(sub=user_id, name=name or f"Person {user_id}", email=email or f"{user_id}@tillit.test", **extra)
        return mint_token(self.settings, claims)

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=15)

    async def db(self, schema: str) -> asyncpg.Connection:
        return await asyncpg.connect(self.direct_database_url, server_settings={"search_path": schema})


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def drop_namespace(namespace: str, queues: Iterable[str]) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        for queue in queues:
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
        for exchange in ("events", "unrouted", "dead-letter"):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(f"{namespace}.{exchange}")
    finally:
        await connection.close()


async def eventually(check: Any, *, timeout: float = 10, interval: float = 0.05, message: str = "") -> Any:
    """Await `check()` until it returns something truthy; the last value is in the error otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"not true after {timeout}s: {message} (last: {last!r})")
