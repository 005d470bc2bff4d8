"""A chaos round's report as Markdown: the load held, the faults and the recovery after each, what differs
from the truth per projection, and the event pipeline's own figures."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from typing import Any

from tests.chaos.faults import PROJECTIONS, FaultResult
from tests.chaos.run import Result


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _median(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.1f}" if known else "—"


def render(result: Result, *, command: str) -> str:
    load = result.load
    lines = [
        f"Run of {result.started}, `{command}`, {result.seconds:.0f} s in all.",
        "",
        f"**Lost {result.lost}, duplicated {result.duplicated}, wrong {result.wrong}.**",
        "",
        "#### Load held",
        "",
        f"{load.get('people')} people through the gateway for {load.get('seconds')} s: {load.get('requests')} "
        f"requests ({load.get('writes')} writes), {load.get('rate_held')} requests/s held of "
        f"{load.get('rate_target')} asked; p50 {load.get('p50_ms')} ms, p99 {load.get('p99_ms')} ms of the "
        "accepted ones.",
        "",
        f"- by operation: {_inline(load.get('by_op', {}))}",
        f"- answers: {_inline(load.get('statuses', {}))}"
        + (
            " (None: no answer within the timeout, or a refused connection)"
            if "None" in load.get("statuses", {})
            else ""
        ),
        "",
        "#### Faults injected and recovery",
        "",
        "Seconds from the end of the fault (process started again, server back) until the probe's post and "
        "like were taken by the gateway, and until each projection showed them.",
        "",
        "| fault | accepted | " + " | ".join(PROJECTIONS) + " | notes |",
        "|---|---|" + "---|" * len(PROJECTIONS) + "---|",
    ]
    for fault in ([result.baseline] if result.baseline else []) + result.faults:
        lines.append(_fault_row(fault))
    lines += ["", "Medians by kind of fault (the slowest projection):", ""]
    lines += ["| kind | faults | accepted | slowest projection |", "|---|---|---|---|"]
    kinds: dict[str, list[FaultResult]] = {}
    for fault in result.faults:
        kinds.setdefault(fault.kind, []).append(fault)
    for kind, group in kinds.items():
        slowest = [_slowest(f) for f in group]
        accepted = [f.recovery.get("accepted") for f in group]
        lines.append(f"| {kind} | {len(group)} | {_median(accepted)} | {_median(slowest)} |")
    lines += [
        "",
        "#### Projections against the truth",
        "",
        f"Compared {result.settle_seconds} s after the load stopped (outboxes empty, queues drained).",
        "",
        "| projection | compared | lost | duplicated | wrong |",
        "|---|---|---|---|---|",
    ]
    for d in result.projections:
        lines.append(f"| {d.projection} | {d.compared} | {len(d.lost)} | {len(d.duplicated)} | {len(d.wrong)} |")
    if result.client is not None:
        c = result.client
        d = c.differences
        lines.append(f"| {d.projection} | {d.compared} | {len(d.lost)} | {len(d.duplicated)} | {len(d.wrong)} |")
        lines += [
            "",
            f"Gateway answers: {c.accepted} writes accepted (each found in its owner's tables), {c.refused} "
            f"refused with a 4xx (none may take effect), {c.unknown} without a definite answer (5xx or none; "
            f"{c.unknown_applied} of them took effect, which is allowed).",
        ]
    examples = [e for d in result._all() for e in d.as_dict()["examples"]]
    if examples:
        lines += ["", "Examples of differences:", "", *(f"- {e}" for e in examples[:20])]
    p = result.pipeline
    lines += [
        "",
        "#### Event pipeline",
        "",
        f"- events published: {p.get('events_published')}; published more than once: "
        f"{p.get('published_more_than_once')} (each applied once: the projections above show no duplicate)",
        f"- relays killed with a batch in flight: {p.get('in_flight_at_relay_kills')} events unconfirmed, "
        f"{p.get('in_flight_published_again')} of them published again after the restart",
        f"- events applied (inbox rows): {p.get('events_applied')}; dead letters: {p.get('dead_letters')}",
    ]
    return "\n".join(lines) + "\n"


def _fault_row(fault: FaultResult) -> str:
    cells = [_seconds(fault.recovery.get(p)) for p in ("accepted", *PROJECTIONS)]
    notes = ", ".join(f"{k} {v}" for k, v in fault.notes.items() if k != "replicas")
    return f"| {fault.name} | " + " | ".join(cells) + f" | {notes} |"


def _slowest(fault: FaultResult) -> float | None:
    values = [fault.recovery.get(p) for p in PROJECTIONS]
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


def _inline(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def as_json(result: Result) -> str:
    data: dict[str, Any] = {
        "plan": result.plan,
        "started": result.started,
        "seconds": result.seconds,
        "lost": result.lost,
        "duplicated": result.duplicated,
        "wrong": result.wrong,
        "load": result.load,
        "baseline": asdict(result.baseline) if result.baseline else None,
        "faults": [asdict(f) for f in result.faults],
        "projections": [d.as_dict() for d in result.projections],
        "client": result.client.as_dict() if result.client else None,
        "settle_seconds": result.settle_seconds,
        "pipeline": result.pipeline,
    }
    return json.dumps(data, indent=2, default=str)
