"""The figures beside their limits from the same run: a table on stdout, build/bench.json and
docs/benchmarks.md (the generated part, followed by bench/NOTES.md, the hand-written analysis)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

NOTES = Path(__file__).parent / "NOTES.md"

# The aims of the issue, each a ratio or a latency; consumers are held to half of pipeline_batched.
AIM_LIKES_RATIO = 0.30
AIM_NOTIFICATION_P99_MS = 250.0
AIM_CONSUMER_RATIO = 0.50
AIMED_CONSUMERS = ("posts.reaction-counts", "notifications.reactions", "reactions.posts")
AIM_FAN_OUT_RATIO = 0.30
AIM_FEED_READ_P99_MS = 20.0
AIM_SSE_P99_MS = 200.0


def fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.2f}" if abs(x) < 100 else f"{x:,.0f}"


def _limit(limits: dict[str, Any], name: str, key: str = "value") -> float | None:
    result = limits.get("results", {}).get(name)
    return None if result is None else result.get(key)


def _value(x: float | None) -> str:
    """A figure as shown: counts as whole numbers, the rest as fmt() has it."""
    return f"{x:,}" if isinstance(x, int) else fmt(x)


def _ratio(value: float | None, limit: float | None) -> float | None:
    if value is None or not limit or (isinstance(value, float) and math.isnan(value)):
        return None
    return value / limit


def rows(bench: dict[str, Any], limits: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: what, value, range, unit, the limit it is compared with, the ratio, the aim."""
    out: list[dict[str, Any]] = []

    def add(what: str, value: float | None, unit: str, limit_name: str, limit_key: str = "value", **extra: Any) -> None:
        limit = _limit(limits, limit_name, limit_key) if limit_name else None
        shown = limit_name if limit_key == "value" else f"{limit_name} {limit_key.removesuffix('_ms')}"
        out.append(
            {
                "what": what,
                "value": value,
                "unit": unit,
                "limit_name": shown if limit_name else "",
                "limit": limit,
                "ratio": _ratio(value, limit),
                **extra,
            }
        )

    closed, paced, e2e = bench["closed"], bench["paced"], bench["e2e"]
    add(
        "likes through the gateway, closed loop, 64 connections",
        closed["rate"],
        "likes/s",
        "http_like_bare",
        range=(closed["rate_min"], closed["rate_max"]),
        aim=f">= {AIM_LIKES_RATIO:.2f} x",
        met=(_ratio(closed["rate"], _limit(limits, "http_like_bare")) or 0.0) >= AIM_LIKES_RATIO,
    )
    add("  HTTP latency p50 (closed loop)", closed["p50_ms"], "ms", "http_like_bare", "p50_ms")
    add("  HTTP latency p99 (closed loop)", closed["p99_ms"], "ms", "http_like_bare", "p99_ms")
    add(
        f"likes, open loop paced at {fmt(paced['offered_rate'])}/s (half the sustained rate)",
        paced["rate"],
        "likes/s",
        "",
        range=(paced["rate_min"], paced["rate_max"]),
    )
    add("  HTTP latency p50 (paced)", paced["p50_ms"], "ms", "http_like_bare", "p50_ms")
    add("  HTTP latency p99 (paced)", paced["p99_ms"], "ms", "http_like_bare", "p99_ms")
    add(f"like -> count visible in GET, p50 ({e2e['samples']} samples)", e2e["count_p50_ms"], "ms", "amqp_latency")
    add("like -> count visible in GET, p99", e2e["count_p99_ms"], "ms", "amqp_latency", "p99_ms")
    add("like -> notification row, p50", e2e["notification_p50_ms"], "ms", "amqp_latency")
    add(
        "like -> notification row, p99",
        e2e["notification_p99_ms"],
        "ms",
        "amqp_latency",
        "p99_ms",
        aim=f"< {AIM_NOTIFICATION_P99_MS:.0f} ms",
        met=e2e["notification_p99_ms"] is not None and e2e["notification_p99_ms"] < AIM_NOTIFICATION_P99_MS,
    )
    for drain in bench["drains"]:
        aimed = drain["consumer"] in AIMED_CONSUMERS
        batched = _limit(limits, "pipeline_batched")
        ratio = _ratio(drain["rate"], batched)
        add(
            f"drain {drain['consumer']} ({drain['events']:,} events)",
            drain["rate"],
            "events/s",
            "pipeline_batched",
            aim=f">= {AIM_CONSUMER_RATIO:.2f} x" if aimed else "",
            met=(ratio is not None and ratio >= AIM_CONSUMER_RATIO) if aimed else None,
            per_event_ratio=_ratio(drain["rate"], _limit(limits, "pipeline_per_event")),
        )
    return out


def feed_rows(bench: dict[str, Any], limits: dict[str, Any]) -> list[dict[str, Any]]:
    """The feeds phase (bench/feeds.py), in the shape of rows(); none when it was skipped."""
    feeds = bench.get("feeds")
    if not feeds:
        return []
    fan, reads = feeds["fan_out"], feeds["reads"]
    batch = _limit(limits, "pg_batch_insert")

    def row(what: str, value: float | None, unit: str, limit_name: str = "", **extra: Any) -> dict[str, Any]:
        limit = batch if limit_name else None
        shown = {"what": what, "value": value, "unit": unit, "limit_name": limit_name, "limit": limit}
        return {**shown, "ratio": _ratio(value, limit), **extra}

    ratio = _ratio(fan["rate"], batch)
    out = [
        row(
            f"fan-out of one post to {fan['entries']:,} active followers: POST -> in every feed (median of"
            f" {len(fan['reps'])})",
            fan["seconds"],
            "s",
            range=(fan["seconds_min"], fan["seconds_max"]),
        ),
        row(
            "  feed entries written per second, end to end",
            fan["rate"],
            "entries/s",
            "pg_batch_insert",
            range=(fan["rate_min"], fan["rate_max"]),
            aim=f">= {AIM_FAN_OUT_RATIO:.2f} x",
            met=ratio is not None and ratio >= AIM_FAN_OUT_RATIO,
        ),
        row(
            "  the fan-out statement alone (one transaction, rolled back)",
            fan["statement_rate"],
            "entries/s",
            "pg_batch_insert",
        ),
    ]
    paths = {
        "feeds": ("GET /feed?limit=50 on the feeds service", "feeds service"),
        "gateway": ("GET /api/feed?limit=50 via the gateway", "gateway"),
    }
    for name, result in reads.items():
        label, short = paths.get(name.removesuffix("_alone"), (name, name))
        n = result["connections"]
        conns = f"{n} connection{'s' if n > 1 else ''}"
        aimed = name == "feeds"
        out += [
            row(f"{label}, {conns}: reads", result["rate"], "reads/s"),
            row(f"  {short} read latency p50 ({conns})", result["p50_ms"], "ms"),
            row(
                f"  {short} read latency p99 ({conns})",
                result["p99_ms"],
                "ms",
                aim=f"< {AIM_FEED_READ_P99_MS:.0f} ms" if aimed else "",
                met=(result["p99_ms"] < AIM_FEED_READ_P99_MS) if aimed else None,
            ),
        ]
    return out


def notify_rows(bench: dict[str, Any], limits: dict[str, Any]) -> list[dict[str, Any]]:
    """The notifications phase (bench/notify.py), in the shape of rows(); none when it was skipped."""
    notify = bench.get("notify")
    if not notify:
        return []

    def row(
        what: str, value: float | None, unit: str, limit_name: str = "", key: str = "value", **extra: Any
    ) -> dict[str, Any]:
        limit = _limit(limits, limit_name, key) if limit_name else None
        shown = limit_name if key == "value" else f"{limit_name} {key.removesuffix('_ms')}"
        return {
            "what": what,
            "value": value,
            "unit": unit,
            "limit_name": shown if limit_name else "",
            "limit": limit,
            "ratio": _ratio(value, limit),
            **extra,
        }

    def exactly(what: str, value: int, wanted: int, unit: str) -> dict[str, Any]:
        return row(what, value, unit, aim=f"= {wanted:,}", met=value == wanted)

    out = []
    if viral := notify.get("viral"):
        n = viral["likers"]
        out += [
            row(
                f"viral post: {n:,} likes of one post in a burst via the gateway, first PUT -> all in the group",
                viral["seconds"],
                "s",
            ),
            row("  notifications applied per second, end to end", viral["rate"], "notif/s", "http_like_bare"),
        ]
        if spread := viral.get("spread"):
            out.append(
                row(
                    f"  control: the same likes spread over {spread['posts']} posts, same minute",
                    spread["rate"],
                    "notif/s",
                    "http_like_bare",
                )
            )
        out += [
            exactly("  notification groups for the post (one while unread)", viral["groups"], 1, "groups"),
            exactly("  actors in the author's group", viral["actors"], n, "actors"),
            row("  notification.changed.v1 events published for the author", viral["changes"]["events"], "events"),
            exactly(
                "  emails queued for the author (a like emails nobody by default)",
                sum(viral["emails"].values()),
                0,
                "emails",
            ),
        ]
    if direct := notify.get("viral_direct"):
        out.append(
            row(
                f"  the same as {direct['events']:,} post.liked events straight to the broker: notifications service",
                direct["rate"],
                "notif/s",
                "pipeline_batched",
            )
        )
        if direct.get("spread_rate"):
            out.append(
                row(
                    f"  the same number spread over {direct['events']:,} posts (for comparison)",
                    direct["spread_rate"],
                    "notif/s",
                    "pipeline_batched",
                )
            )
    if favs := notify.get("favourites"):
        expected = favs["expected"]
        out += [
            exactly(
                f"{favs['favourites']} favourites of one post: emails sent (hourly cap {favs['cap']})",
                favs["emails"].get("sent", 0),
                expected["sent"],
                "emails",
            ),
            exactly(
                "  emails put in the digest instead (over the cap)",
                favs["emails"].get("digest", 0),
                expected["digest"],
                "emails",
            ),
        ]
    if sse := notify.get("sse"):
        clients, burst, paced = sse["clients"], sse["burst"], sse["paced"]
        out += [
            row(
                f"SSE: {clients:,} streams opened, {sse['opening']} at a time ({sse['connected']:,} opened)",
                sse["open"]["rate"],
                "streams/s",
            ),
            row(
                f"SSE burst: one change to each of {clients:,} clients at once, delivery p50 (median of"
                f" {len(sse['bursts'])})",
                burst["p50_ms"],
                "ms",
                "amqp_latency",
            ),
            row(
                "  delivery p99 (burst)",
                burst["p99_ms"],
                "ms",
                "amqp_latency",
                "p99_ms",
                aim=f"< {AIM_SSE_P99_MS:.0f} ms",
                met=burst["p99_ms"] is not None and burst["p99_ms"] < AIM_SSE_P99_MS,
            ),
            row("  changes delivered per second (burst)", burst["delivered_per_s"], "msg/s", "amqp_consume"),
            row(
                f"SSE paced: {paced['rate']:.0f} changes/s over {clients:,} clients, delivery p50",
                paced["p50_ms"],
                "ms",
                "amqp_latency",
            ),
            row(
                "  delivery p99 (paced)",
                paced["p99_ms"],
                "ms",
                "amqp_latency",
                "p99_ms",
                aim=f"< {AIM_SSE_P99_MS:.0f} ms",
                met=paced["p99_ms"] is not None and paced["p99_ms"] < AIM_SSE_P99_MS,
            ),
        ]
    if e2e := notify.get("e2e"):
        label = f"like -> change at the author's SSE stream ({e2e['authors']} authors, {e2e['rate']:.0f} likes/s)"
        out += [
            row(f"{label}, p50", e2e["p50_ms"], "ms", "amqp_latency"),
            row("  p99", e2e["p99_ms"], "ms", "amqp_latency", "p99_ms"),
        ]
    return out


def table(bench: dict[str, Any], limits: dict[str, Any]) -> str:
    lines = [
        f"{'figure':<62} {'value':>9} {'unit':<8} {'limit':<24} {'limit':>8} {'ratio':>7}  aim",
    ]
    for r in [*rows(bench, limits), *feed_rows(bench, limits), *notify_rows(bench, limits)]:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        aim = ""
        if r.get("aim"):
            aim = f"{r['aim']}: {'met' if r.get('met') else 'MISSED'}"
        extra = f" (per_event {r['per_event_ratio']:.2f})" if r.get("per_event_ratio") else ""
        lines.append(
            f"{r['what']:<62} {_value(r['value']):>9} {r['unit']:<8} {r['limit_name']:<24} {fmt(r['limit']):>8}"
            f" {ratio:>7}  {aim}{extra}"
        )
    return "\n".join(lines)


def _cpu_line(cpu: dict[str, float]) -> str:
    order = ["gateway", "reactions", "posts", "notifications", "postgres", "rabbitmq", "loadgen", "bench"]
    last = ("other", "machine_busy")
    rest = sorted(g for g in cpu if g not in order and g not in last and cpu[g] >= 0.5)
    shown = [g for g in order if g in cpu] + rest + [g for g in last if g in cpu]
    return ", ".join(f"{g} {cpu[g]:.0f}" for g in shown)


def cpu_per_like(cpu: dict[str, float], rate: float) -> dict[str, float]:
    """Milliseconds of CPU per accepted like, per process group: percent of a core / likes per second."""
    if not rate:
        return {}
    return {g: round(10.0 * pct / rate, 3) for g, pct in cpu.items() if g != "machine_busy" and pct >= 0.5}


def cpu_per_like_line(cpu: dict[str, float], rate: float) -> str:
    per = cpu_per_like(cpu, rate)
    total = sum(v for g, v in per.items() if g not in ("other", "loadgen", "bench"))
    return ", ".join(f"{g} {v:.2f}" for g, v in sorted(per.items(), key=lambda kv: -kv[1])) + f"; system {total:.2f}"


NOISY_OTHER_PCT = 25.0  # CPU of unrelated processes, % of one core, above which a figure is suspect


def noise_warnings(bench: dict[str, Any], limits: dict[str, Any]) -> list[str]:
    """Where unrelated processes (other people's test runs) used much of the machine meanwhile."""
    out = []
    for name, result in limits.get("results", {}).items():
        other = result.get("cpu_pct_of_one_core", {}).get("other", 0.0)
        if other > NOISY_OTHER_PCT:
            out.append(f"limit `{name}`: other {other:.0f}")
    for phase in ("closed", "paced"):
        other = bench[phase]["cpu"].get("other", 0.0)
        if other > NOISY_OTHER_PCT:
            out.append(f"{phase} phase: other {other:.0f}")
    for drain in bench["drains"]:
        other = drain["cpu"].get("other", 0.0)
        if other > NOISY_OTHER_PCT:
            out.append(f"drain {drain['consumer']}: other {other:.0f}")
    if feeds := bench.get("feeds"):
        phases = {"feeds fan-out": feeds["fan_out"]["cpu"]}
        phases |= {f"feed reads {r['path']} ({r['connections']} conn.)": r["cpu"] for r in feeds["reads"].values()}
        out += [
            f"{name}: other {cpu['other']:.0f}" for name, cpu in phases.items() if cpu.get("other", 0) > NOISY_OTHER_PCT
        ]
    if notify := bench.get("notify"):
        phases = {}
        for name, key in (("viral post", "viral"), ("viral post to the broker", "viral_direct")):
            if notify.get(key):
                phases[name] = notify[key]["cpu"]
        if sse := notify.get("sse"):
            phases["SSE opening"] = sse["open"]["cpu"]
            phases |= {f"SSE burst {i + 1}": b["cpu"] for i, b in enumerate(sse["bursts"])}
            phases["SSE paced"] = sse["paced"]["cpu"]
        out += [
            f"{name}: other {cpu['other']:.0f}" for name, cpu in phases.items() if cpu.get("other", 0) > NOISY_OTHER_PCT
        ]
    return out


def markdown(bench: dict[str, Any], limits: dict[str, Any]) -> str:
    machine = limits.get("machine", {})
    packages = machine.get("packages", {})
    speedups = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in machine.get("speedups", {}).items())
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (bench/); the analysis after the tables is bench/NOTES.md. Each figure is",
        "beside the machine's raw limit **measured in the same run** by ../shared/limits/measure.py, as a ratio",
        "(throughputs: figure / limit; latencies: a multiple of the limit, 2.0 = twice as slow).",
        "",
        f"- **Command:** `{bench['command']}`",
        f"- **Date:** {bench['started_at']} (bench took {bench['duration_s']:.0f} s, limits included)",
        f"- **Limits:** `{limits.get('command', '?')}` ({limits.get('mode', '?')} mode, "
        f"started {limits.get('started_at', '?')})",
        f"- **Machine:** {machine.get('cpus', '?')} CPUs, RabbitMQ {machine.get('rabbitmq', '?')}, "
        f"PostgreSQL {machine.get('postgresql', '?')}, Python {machine.get('python', '?')}; {speedups}",
        "- **Packages:** " + ", ".join(f"{k} {v}" for k, v in packages.items()),
        "",
        "Throughputs are the **median** of the run's windows (min-max beside them); latencies are the median of",
        "the windows' percentiles, except end-to-end, which are percentiles over all samples.",
        "",
        "## Figures",
        "",
    ]
    if warnings := noise_warnings(bench, limits):
        out += [
            f"**Noisy run.** Unrelated processes used more than {NOISY_OTHER_PCT:.0f} % of a core during: "
            + "; ".join(warnings)
            + ". A limit measured on a busy machine is low, which flatters the ratios against it; read those"
            " as indicative only and compare with a quieter run.",
            "",
        ]
    out += [
        "| figure | value | min-max | unit | limit (same run) | limit value | ratio | aim |",
        "|---|---:|---|---|---|---:|---:|---|",
    ]
    for r in rows(bench, limits):
        rng = f"{fmt(r['range'][0])}-{fmt(r['range'][1])}" if r.get("range") else ""
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        if r.get("per_event_ratio"):
            ratio += f" ({r['per_event_ratio']:.2f} of `pipeline_per_event`)"
        aim = f"{r['aim']}: **{'met' if r.get('met') else 'missed'}**" if r.get("aim") else ""
        limit_name = f"`{r['limit_name']}`" if r["limit_name"] else ""
        out.append(
            f"| {r['what'].strip()} | **{fmt(r['value'])}** | {rng} | {r['unit']} | {limit_name} "
            f"| {fmt(r['limit'])} | {ratio} | {aim} |"
        )
    e2e = bench["e2e"]
    out += [
        "",
        f"End-to-end samples: {e2e['samples']} likes (1 in {bench['settings']['sample_every']} of the paced load,"
        f" each on a post of its own), {e2e['missing']} not seen within the time limit; HTTP latency of the sampled"
        f" PUTs p50 {fmt(e2e['http_p50_ms'])} ms, p99 {fmt(e2e['http_p99_ms'])} ms.",
        "",
        *feeds_section(bench, limits),
        *notify_section(bench, limits),
        "## Aims",
        "",
        "| aim | figure | met |",
        "|---|---|---|",
    ]
    for aim in bench["aims"]:
        out.append(f"| {aim['aim']} | {aim['figure']} | {'yes' if aim['met'] else '**no**'} |")
    out += [
        "",
        "## Who used the CPU",
        "",
        "The machine was "
        + ", ".join(f"{v:.0f} % busy before the {k} phase" for k, v in bench.get("machine_busy_before", {}).items())
        + " (after waiting up to --quiet-wait seconds for it to calm down). PostgreSQL backends serving other"
        " databases (other people's test runs) count as `other`.",
        "",
        "Percent of one core (the machine has "
        f"{machine.get('cpus', '?')} cores, so {100 * int(machine.get('cpus', 2) or 2)} is all of it), median of the"
        " windows; `bench` is the process that samples end-to-end latency and times the drains.",
        "",
        "| phase | CPU |",
        "|---|---|",
        f"| closed loop | {_cpu_line(bench['closed']['cpu'])} |",
        f"| paced | {_cpu_line(bench['paced']['cpu'])} |",
    ]
    for drain in bench["drains"]:
        out.append(f"| drain {drain['consumer']} | {_cpu_line(drain['cpu'])} |")
    closed, paced = bench["closed"], bench["paced"]
    out += [
        "",
        "CPU per like, in milliseconds (the machine has about 2,000 ms of CPU per second; `system` is everything",
        "but the load generator, the bench process and unrelated processes):",
        "",
        f"- closed loop: {cpu_per_like_line(closed['cpu'], closed['rate'])}",
        f"- paced: {cpu_per_like_line(paced['cpu'], paced['rate'])}",
    ]
    if closed.get("postgres_per_like"):
        out += [
            "",
            "PostgreSQL's work per like in the closed loop, from pg_stat_database of the run's database (every"
            " service's transactions, including the relays', the consumers' and the pools' resets): "
            + ", ".join(f"{k} {v}" for k, v in closed["postgres_per_like"].items())
            + ".",
        ]
    out += ["", "## Consistency after the load", ""]
    for key, value in bench["consistency"].items():
        out.append(f"- {key}: {value}")
    limit_rows = [
        f"| `{name}` | {fmt(r['value'])} | {fmt(r['min'])}-{fmt(r['max'])} | {r['unit']} |"
        + (f" p50 {fmt(r.get('p50_ms'))} ms, p99 {fmt(r.get('p99_ms'))} ms |" if "p99_ms" in r else " |")
        for name, r in limits.get("results", {}).items()
    ]
    out += [
        "",
        "## The limits of this run",
        "",
        "| limit | median | min-max | unit | beside it |",
        "|---|---:|---|---|---|",
        *limit_rows,
    ]
    if limits.get("errors"):
        out += ["", "Failed limit measurements: " + "; ".join(f"{k}: {v}" for k, v in limits["errors"].items())]
    out.append("")
    if NOTES.exists():
        out += [NOTES.read_text().rstrip(), ""]
    return "\n".join(out)


def feeds_section(bench: dict[str, Any], limits: dict[str, Any]) -> list[str]:
    feeds = bench.get("feeds")
    if not feeds:
        return []
    fan = feeds["fan_out"]
    out = [
        "## Feeds",
        "",
        f"bench/feeds.py, after the phases above on the same system. {feeds['followers']:,} people follow one"
        " author (person.followed.v1 events published to the exchange, as the people service would) and are made"
        " active readers by inserting their `readers` rows in the feeds schema (what a first GET /feed leaves:"
        " last_read_at and built_at now), not by 10,000 reads. The author then posts through the gateway; the"
        " time runs from the POST until `feed_entries` holds the post for every active follower. Entries per"
        " second are set beside `pg_batch_insert` (10 connections of 100-row inserts); the fan-out is one"
        " statement on one connection. The statement alone is timed again for the same posts, their entries"
        " deleted and rewritten in a transaction rolled back. Reads: readers whose feeds hold"
        f" {feeds['settings']['entries_per_reader']} entries, closed loop, latencies over every read of the"
        " window; the gateway path also fetches the 50 posts from the posts service. Noisy shared machine:"
        " the fan-out is the median of its posts, and figures move by tens of per cent between runs.",
        "",
        "| figure | value | min-max | unit | limit (same run) | limit value | ratio | aim |",
        "|---|---:|---|---|---|---:|---:|---|",
    ]
    for r in feed_rows(bench, limits):
        rng = f"{fmt(r['range'][0])}-{fmt(r['range'][1])}" if r.get("range") else ""
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        aim = f"{r['aim']}: **{'met' if r.get('met') else 'missed'}**" if r.get("aim") else ""
        limit_name = f"`{r['limit_name']}`" if r["limit_name"] else ""
        out.append(
            f"| {r['what'].strip()} | **{fmt(r['value'])}** | {rng} | {r['unit']} | {limit_name} "
            f"| {fmt(r['limit'])} | {ratio} | {aim} |"
        )
    post_s = statistics.median(r["post_http_s"] for r in fan["reps"])
    out += [
        "",
        f"Beside the fan-out's median of {fmt(fan['seconds'] * 1e3)} ms end to end: the POST's reply took"
        f" {fmt(post_s * 1e3)} ms (median) and the fan-out statement alone {fmt(fan['statement_s'] * 1e3)} ms"
        " (median, timed separately); the end-to-end time also holds the posts outbox relay, the broker and the"
        " feeds consumer's batch around the statement.",
        "",
        "| phase | CPU (percent of one core) |",
        "|---|---|",
        f"| fan-out (the median post) | {_cpu_line(fan['cpu'])} |",
        *(
            f"| reads: {r['path']}, {r['connections']} connection(s) | {_cpu_line(r['cpu'])} |"
            for r in feeds["reads"].values()
        ),
        "",
    ]
    return out


def _figure_rows(rows_: list[dict[str, Any]]) -> list[str]:
    out = [
        "| figure | value | min-max | unit | limit (same run) | limit value | ratio | aim |",
        "|---|---:|---|---|---|---:|---:|---|",
    ]
    for r in rows_:
        rng = f"{fmt(r['range'][0])}-{fmt(r['range'][1])}" if r.get("range") else ""
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        aim = f"{r['aim']}: **{'met' if r.get('met') else 'missed'}**" if r.get("aim") else ""
        limit_name = f"`{r['limit_name']}`" if r["limit_name"] else ""
        out.append(
            f"| {r['what'].strip()} | **{_value(r['value'])}** | {rng} | {r['unit']} | {limit_name} "
            f"| {fmt(r['limit'])} | {ratio} | {aim} |"
        )
    return out


def notify_section(bench: dict[str, Any], limits: dict[str, Any]) -> list[str]:
    notify = bench.get("notify")
    if not notify:
        return []
    out = [
        "## Notifications",
        "",
        "bench/notify.py, after the phases above on the same system. **Viral post:** 1,000 people, each signed in"
        " once beforehand (the gateway's first sight of a person writes their profile), like one post at once"
        " through the gateway on 64 connections; timed from the first PUT until the notifications schema holds"
        " all 1,000 actors in the author's group (polled every 5 ms). Every like moves the one post's counter"
        " row in the reactions service, where `http_like_bare`'s likes are spread over 1,000 posts, so the"
        " same 1,000 likes are then sent over 100 posts of another author as a control, in the same minute"
        " on the same machine. An exclusive queue bound to `notification.changed.v1` counts the"
        " changes published for the author: the notifications service numbers one change per recipient per"
        " batch, so fewer than one per like. The same burst is then published straight to the exchange as 1,000"
        " `post.liked` events on another post: the notifications service alone, beside `pipeline_batched`."
        " **Favourites:** 100 people favourite one post; each favourite emails at once, up to the hourly cap per"
        " recipient, then into the digest (polled until no email of the author is pending or sending).",
        "",
        "**SSE:** a client process (aiohttp, one connection per stream) opens 1,000 streams as 1,000 different"
        " people and waits for each one's first message; the bench then publishes one `notification.changed.v1`"
        " per client straight to the events exchange, numbered one past the client's, as the notifications"
        " service would: in a burst (as fast as one publisher goes), then paced (open loop, timed from when each"
        " was due). Latency runs from the publish to the end of the message at the client (both processes read"
        " CLOCK_MONOTONIC). The burst figures are the burst of median p99. End to end: authors with a stream open"
        " each; each author's post liked once through the gateway, timed from the PUT to the change at the"
        " author's stream.",
        "",
        *_figure_rows(notify_rows(bench, limits)),
        "",
    ]
    details = []
    if viral := notify.get("viral"):
        details.append(
            f"Viral post: the HTTP burst took {fmt(viral['http_seconds'])} s ({fmt(viral['http_rate'])} likes/s,"
            f" {viral['errors']} errors); the last notification was applied {fmt(viral['after_last_reply_ms'])} ms"
            f" after the last reply. The author's inbox then showed actor_count"
            f' {viral["inbox_head"]["actor_count"]} ("{viral["inbox_head"]["title"]}"), unread'
            f" {viral['inbox_head']['unread']}; changes numbered one by one:"
            f" {viral['changes']['numbered_one_by_one']}. PostgreSQL backends of the run's database during the"
            " burst, per 20 ms sample, by service and what they waited on: "
            + ", ".join(f"{k} {v}" for k, v in viral["postgres_waits"].items())
            + "."
        )
    if direct := notify.get("viral_direct"):
        details.append(
            f"Straight to the broker: published at {fmt(direct['publish_rate'])} msg/s (with confirms);"
            f" {direct['groups']} group, {direct['change_events']} change events."
        )
    if favs := notify.get("favourites"):
        details.append(
            f"Favourites: emails by status {favs['emails']}; the policy says {favs['expected']}:"
            f" {'as it says' if favs['as_policy_says'] else '**not as it says**'}. {favs['smtp_received']} reached"
            f" the SMTP server; all decided {fmt(favs['settled_s'])} s after the first PUT."
        )
    if sse := notify.get("sse"):
        opened = sse["open"]
        rss = opened.get("gateway_rss_mb") or (None, None)
        bursts = "; ".join(
            f"p50 {fmt(b['p50_ms'])} / p99 {fmt(b['p99_ms'])} ms, published in {fmt(b['publish_s'] * 1e3)} ms,"
            f" gateway {fmt(b['cpu_ms_per_message'].get('gateway'))} ms CPU per change"
            for b in sse["bursts"]
        )
        details.append(
            f"SSE: {sse['connected']:,} of {sse['clients']:,} streams opened in {fmt(opened['seconds'])} s"
            f" ({sse['failed']} failed{': ' + '; '.join(sse['failed_samples']) if sse['failed_samples'] else ''});"
            f" first message p50 {fmt(opened['first_p50_ms'])} ms, p99 {fmt(opened['first_p99_ms'])} ms after the"
            f" request; the gateway's memory went from {fmt(rss[0])} to {fmt(rss[1])} MB. Each burst: {bursts}."
            f" Streams that ended early: {len(sse['ended_early'])}."
        )
    if e2e := notify.get("e2e"):
        details.append(
            f"Like -> SSE: {e2e['authors'] - e2e['missing']} of {e2e['authors']} changes seen, max"
            f" {fmt(e2e['max_ms'])} ms; the PUTs took p50 {fmt(e2e['http_p50_ms'])} ms,"
            f" p99 {fmt(e2e['http_p99_ms'])} ms."
        )
    for text in details:
        out += [f"- {text}"]
    out += ["", "| phase | CPU (percent of one core) |", "|---|---|"]
    if viral:
        out.append(f"| viral post, first PUT to the last notification | {_cpu_line(viral['cpu'])} |")
    if direct:
        out.append(f"| viral post straight to the broker | {_cpu_line(direct['cpu'])} |")
    if sse:
        out.append(f"| SSE: opening {sse['clients']:,} streams | {_cpu_line(sse['open']['cpu'])} |")
        out.append(f"| SSE burst (the median one) | {_cpu_line(sse['burst']['cpu'])} |")
        out.append(f"| SSE paced | {_cpu_line(sse['paced']['cpu'])} |")
    out.append("")
    return out


def aims(bench: dict[str, Any], limits: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in [*rows(bench, limits), *feed_rows(bench, limits), *notify_rows(bench, limits)]:
        if r.get("aim"):
            figure = f"{fmt(r['value'])} {r['unit']}"
            if r["ratio"] is not None:
                figure += f" = {r['ratio']:.2f} x `{r['limit_name']}`"
            out.append({"aim": f"{r['what'].strip()} {r['aim']}", "figure": figure, "met": bool(r.get("met"))})
    return out
