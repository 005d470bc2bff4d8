"""`python -m tillit dlq list | show | redrive | purge`: what operators do about dead letters.

Each consumer queue `<ns>.<consumer>` parks what it cannot apply in `<ns>.<consumer>.dlq` (shared/broker.py),
with the reason in `x-tillit-reason` (shared/consumer.py) or RabbitMQ's `x-death` when the broker itself
dead-lettered it. Only AMQP is used (no management plugin needed): messages are taken with basic.get
without auto-ack and held, so the loop ends at the end of the queue; each one taken is then either acked
(redriven after its publisher confirm, or purged) or returned untouched with a nack and requeue. A crash in
between returns every held message to the queue, since nothing is acked before its fate is settled.

A redrive publishes to the consumer's own queue through the default exchange (routing key = the queue name),
not to the events exchange: there it would reach every consumer bound to the event type again. The consumers
would drop those duplicates by their inbox, but a redrive should touch only the queue the message died in.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
import orjson
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from shared.broker import Topology
from shared.settings import get_settings

DLQ_SUFFIX = ".dlq"
# Headers a dead-lettering adds; a redriven message goes back without them, so that its next life is
# counted from zero (the consumer reads x-delivery-count) and a later death records only itself.
_DEATH_HEADERS = frozenset(
    {
        "x-death",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-first-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-last-death-exchange",
        "x-delivery-count",
    }
)


@dataclass(frozen=True)
class FirstDeath:
    """RabbitMQ's record of where and why the message died first (headers x-death and x-first-death-*)."""

    queue: str
    reason: str
    time: datetime | None
    count: int


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    event_type: str | None
    reason: str | None
    deliveries: int | None
    dead_lettered_at: str | None
    first_death: FirstDeath | None
    headers: Mapping[str, Any]
    body: bytes

    @classmethod
    def of(cls, message: AbstractIncomingMessage) -> DeadLetter:
        headers = dict(message.headers or {})
        deliveries = headers.get("x-tillit-deliveries")
        return cls(
            message_id=message.message_id,
            event_type=message.type or _text(headers.get("x-tillit-routing-key")) or message.routing_key,
            reason=_text(headers.get("x-tillit-reason")),
            deliveries=int(deliveries) if isinstance(deliveries, int | str) and str(deliveries).isdigit() else None,
            dead_lettered_at=_text(headers.get("x-tillit-dead-lettered-at")),
            first_death=_first_death(headers),
            headers=headers,
            body=message.body,
        )

    def pretty_body(self) -> str:
        try:
            return orjson.dumps(orjson.loads(self.body), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class QueueReport:
    queue: str
    exists: bool
    count: int  # messages ready in the queue (not those another client holds unacked)
    letters: Sequence[DeadLetter]


@dataclass(frozen=True)
class RedriveResult:
    target: str
    redriven: list[str]  # message ids
    missing: list[str]  # ids asked for and not found


def dead_letter_queue(name: str, *, namespace: str) -> str:
    """The full DLQ name from what an operator types: `reactions.posts`, `tillit.reactions.posts` or
    `tillit.reactions.posts.dlq` all mean `tillit.reactions.posts.dlq`."""
    if not name.startswith(f"{namespace}."):
        name = f"{namespace}.{name}"
    return name if name.endswith(DLQ_SUFFIX) else name + DLQ_SUFFIX


def origin_queue(dlq: str) -> str:
    """The queue whose dead letters `dlq` holds: the topology binds `<q>.dlq` for `<q>` only."""
    if not dlq.endswith(DLQ_SUFFIX):
        raise ValueError(f"{dlq} is not a dead-letter queue (its name ends in {DLQ_SUFFIX})")
    return dlq.removesuffix(DLQ_SUFFIX)


def catalog_dead_letter_queues(namespace: str) -> list[str]:
    from tillit.catalog import all_consumers  # imports every service's handlers: only when asked

    topology = Topology(namespace)
    return [topology.dead_letter_queue_name(c.name) for consumers in all_consumers().values() for c in consumers]


class DeadLetters:
    """The dead-letter queues of one namespace on one broker."""

    def __init__(self, connection: AbstractConnection, namespace: str) -> None:
        self._connection = connection
        self.namespace = namespace

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, namespace: str) -> AsyncIterator[DeadLetters]:
        connection = await aio_pika.connect(url, client_properties={"connection_name": "tillit-dlq"})
        try:
            yield cls(connection, namespace)
        finally:
            await connection.close()

    @contextlib.asynccontextmanager
    async def _channel(self) -> AsyncIterator[AbstractChannel]:
        # A failed passive declare closes its channel, hence one channel per queue and operation.
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            yield channel
        finally:
            if not channel.is_closed:
                await channel.close()

    async def depth(self, queue: str) -> int | None:
        """Messages ready in the queue, or None if it does not exist."""
        async with self._channel() as channel:
            try:
                declared = await channel.declare_queue(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return None
            return declared.declaration_result.message_count or 0

    async def list(self, queues: Sequence[str], *, limit: int = 20) -> list[QueueReport]:
        reports = []
        for queue in queues:
            count = await self.depth(queue)
            if count is None:
                reports.append(QueueReport(queue, exists=False, count=0, letters=[]))
                continue
            letters: list[DeadLetter] = []
            if count and limit > 0:
                async with self._held(queue, limit=limit) as held:
                    letters = [DeadLetter.of(message) for message in held.messages]
            reports.append(QueueReport(queue, exists=True, count=count, letters=letters))
        return reports

    async def show(self, queue: str, message_id: str) -> DeadLetter | None:
        async with self._held(queue) as held:
            for message in held.messages:
                if message.message_id == message_id:
                    return DeadLetter.of(message)
        return None

    async def redrive(self, queue: str, message_ids: Collection[str] | None) -> RedriveResult:
        """Publish the selected dead letters (all if `message_ids` is None) to the queue they died in, each
        removed from the DLQ only once the broker has confirmed its copy; the others stay where they are."""
        target = origin_queue(queue)
        if await self.depth(target) is None:
            raise LookupError(f"{target}, where the dead letters of {queue} go back to, does not exist")
        redriven: list[str] = []
        async with self._held(queue) as held, self._channel() as publishing:
            for message in held.messages:
                if message_ids is not None and message.message_id not in message_ids:
                    continue
                # mandatory + on_return_raises: a publish that reaches no queue raises instead of vanishing,
                # and the message stays in the DLQ (the nack on leaving _held returns it).
                await publishing.default_exchange.publish(_redriven(message), routing_key=target, mandatory=True)
                await held.ack(message)
                redriven.append(message.message_id or "")
        missing = sorted(set(message_ids or ()) - set(redriven))
        return RedriveResult(target=target, redriven=redriven, missing=missing)

    async def purge(self, queue: str, message_ids: Collection[str] | None = None) -> int:
        """Delete every dead letter of the queue, or only those with the given ids; returns how many."""
        if message_ids is None:
            async with self._channel() as channel:
                declared = await channel.declare_queue(queue, passive=True)
                purged = await declared.purge()
                return int(purged.message_count or 0)
        count = 0
        async with self._held(queue) as held:
            for message in held.messages:
                if message.message_id in message_ids:
                    await held.ack(message)
                    count += 1
        return count

    @contextlib.asynccontextmanager
    async def _held(self, queue: str, *, limit: int | None = None) -> AsyncIterator[_Held]:
        """Take up to `limit` messages (all by default) and hold them unacked; on leaving, every one the
        caller did not ack goes back to the queue. A message held unacked is not handed out again on this
        channel, so taking ends at the end of the queue."""
        async with self._channel() as channel:
            source = await channel.declare_queue(queue, passive=True)
            held = _Held()
            try:
                while limit is None or len(held.messages) < limit:
                    message = await source.get(no_ack=False, fail=False)
                    if message is None:
                        break
                    held.messages.append(message)
                yield held
            finally:
                returned = 0
                for message in held.messages:
                    if id(message) not in held.acked:
                        # Closing the channel would return them too; the explicit nack says so.
                        with contextlib.suppress(Exception):
                            await message.nack(requeue=True)
                            returned += 1
                if returned and not channel.is_closed:
                    await _until_back(channel, queue, returned)


async def _until_back(channel: AbstractChannel, queue: str, returned: int) -> None:
    """Wait (bounded) until the returned messages count as ready again. A quorum queue applies a return a
    moment after the nack, so without this a `list` followed at once by a `purge` could leave them out."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while True:
                declared = await channel.declare_queue(queue, passive=True)
                if (declared.declaration_result.message_count or 0) >= returned:
                    return
                await asyncio.sleep(0.02)


@dataclass
class _Held:
    """Messages taken from a queue and not yet settled; those not acked go back when the holder is done."""

    messages: list[AbstractIncomingMessage] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)

    async def ack(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        self.acked.add(id(message))


def _redriven(message: AbstractIncomingMessage) -> aio_pika.Message:
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _DEATH_HEADERS}
    previous = headers.get("x-tillit-redrives", 0)
    headers["x-tillit-redrives"] = (previous if isinstance(previous, int) else 0) + 1
    headers["x-tillit-redriven-at"] = datetime.now(UTC).isoformat()
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        message_id=message.message_id,
        type=message.type,
        app_id=message.app_id,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        correlation_id=message.correlation_id,
        timestamp=message.timestamp,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _first_death(headers: Mapping[str, Any]) -> FirstDeath | None:
    deaths = headers.get("x-death")
    if not isinstance(deaths, list) or not deaths:
        return None
    entries = [d for d in deaths if isinstance(d, Mapping)]
    queue = _text(headers.get("x-first-death-queue"))
    reason = _text(headers.get("x-first-death-reason"))
    # x-death holds one entry per (queue, reason), newest first: the first death is the matching one, else the last.
    entry = next((d for d in entries if _text(d.get("queue")) == queue and _text(d.get("reason")) == reason), None)
    entry = entry or (entries[-1] if entries else {})
    time = entry.get("time")
    count = entry.get("count")
    return FirstDeath(
        queue=queue or _text(entry.get("queue")) or "?",
        reason=reason or _text(entry.get("reason")) or "?",
        time=time if isinstance(time, datetime) else None,
        count=int(count) if isinstance(count, int) else 1,
    )


# The command line ----------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="dlq_command", required=True)
    listing = commands.add_parser("list", help="dead letters per queue: count, ids, types, reasons, first death")
    listing.add_argument("--queue", action="append", help="only this DLQ (`reactions.posts` or its full name)")
    listing.add_argument("--limit", type=int, default=20, help="show at most this many per queue (default 20)")
    show = commands.add_parser("show", help="the headers and the body of one dead letter")
    show.add_argument("queue")
    show.add_argument("message_id")
    redrive = commands.add_parser("redrive", help="send dead letters back to the queue they died in")
    redrive.add_argument("queue")
    which = redrive.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="ids", action="append", metavar="ID", help="a message id (repeatable)")
    which.add_argument("--all", action="store_true", help="every dead letter of the queue")
    purge = commands.add_parser("purge", help="delete the dead letters of a queue (asks first)")
    purge.add_argument("queue")
    purge.add_argument("--id", dest="ids", action="append", metavar="ID", help="only this message id (repeatable)")
    purge.add_argument("--yes", action="store_true", help="do not ask")


def _print_report(report: QueueReport) -> None:
    if not report.exists:
        print(f"{report.queue}: not declared")
        return
    print(f"{report.queue}: {report.count} dead letter(s)")
    for letter in report.letters:
        deliveries = "?" if letter.deliveries is None else letter.deliveries
        print(f"  {letter.message_id}  {letter.event_type or '?'}  deliveries {deliveries}")
        print(f"      reason: {letter.reason or '(none recorded by tillit)'}")
        if letter.dead_lettered_at:
            print(f"      dead-lettered at {letter.dead_lettered_at}")
        if death := letter.first_death:
            when = death.time.isoformat() if death.time else "?"
            print(f"      first death: queue {death.queue}, reason {death.reason}, at {when}, count {death.count}")
    if len(report.letters) < report.count:
        print(f"  ... and {report.count - len(report.letters)} more")


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


async def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    namespace = settings.namespace
    async with DeadLetters.connect(settings.rabbitmq_url, namespace) as dead_letters:
        if args.dlq_command == "list":
            queues = [dead_letter_queue(q, namespace=namespace) for q in args.queue or []]
            reports = await dead_letters.list(queues or catalog_dead_letter_queues(namespace), limit=args.limit)
            for report in reports:
                _print_report(report)
            return 0
        queue = dead_letter_queue(args.queue, namespace=namespace)
        if await dead_letters.depth(queue) is None:
            print(f"{queue} does not exist", file=sys.stderr)
            return 1
        if args.dlq_command == "show":
            letter = await dead_letters.show(queue, args.message_id)
            if letter is None:
                print(f"no dead letter {args.message_id} in {queue}", file=sys.stderr)
                return 1
            print(f"queue: {queue}\nmessage id: {letter.message_id}\ntype: {letter.event_type}\nheaders:")
            for key, value in sorted(letter.headers.items()):
                print(f"  {key}: {value}")
            print("body:")
            print(letter.pretty_body())
            return 0
        if args.dlq_command == "redrive":
            try:
                result = await dead_letters.redrive(queue, None if args.all else args.ids)
            except LookupError as exc:
                print(str(exc), file=sys.stderr)
                return 1
            print(f"{len(result.redriven)} dead letter(s) sent back to {result.target}")
            for message_id in result.redriven:
                print(f"  {message_id}")
            if result.missing:
                print(f"not in {queue}: {', '.join(result.missing)}", file=sys.stderr)
                return 1
            return 0
        if args.dlq_command == "purge":
            what = f"{len(args.ids)} selected dead letter(s)" if args.ids else "every dead letter"
            if not args.yes and not _confirm(f"Delete {what} in {queue}? They cannot be recovered."):
                print(f"refusing to purge {queue} without confirmation: add --yes", file=sys.stderr)
                return 2
            purged = await dead_letters.purge(queue, args.ids)
            print(f"purged {purged} dead letter(s) from {queue}")
            return 0
    raise AssertionError(args.dlq_command)


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tillit dlq", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    sys.exit(asyncio.run(_run(args)))
