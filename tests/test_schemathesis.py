"""Schemathesis against the gateway's own OpenAPI document, served by a running system: every operation gets
requests that fit its schema and requests that do not, as a signed-in person with every role. No answer may be
a server error, and every client error is RFC 9457 problem+json with its title, status and detail.

Three rounds per operation: positive and negative cases with generated path parameters (mostly ids that do
not exist: the 404 paths), then positive cases aimed at things that exist (a post, a question with a comment,
a campaign with an idea, a Q&A session with a question, a webhook), so that the deeper branches run too.
Bounded by EXAMPLES so that it takes a minute or two on two cores; SCHEMATHESIS_EXAMPLES raises it for a
longer hunt. docs/reliability.md ("Bad input") has the figures and the bugs it found.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from tests.harness import System, random_id

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "8"))
# Endless (an SSE stream): the streaming tests cover it.
SKIPPED = {("GET", "/api/stream")}
ROLES = ["moderators", "leaders", "integrations"]
PROBLEM = "application/problem+json"
# Headers every answer of the gateway carries (services/gateway/security.py).
SECURITY_HEADERS = ("x-content-type-options", "content-security-policy", "x-frame-options", "referrer-policy")


@dataclass
class Findings:
    statuses: Counter[int] = field(default_factory=Counter)
    cases: int = 0
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)  # first failure per (op, kind)

    def note(self, operation: str, kind: str, detail: str) -> None:
        self.failures.setdefault((operation, kind, detail.partition("\n")[0][:80]), detail)


@pytest.fixture(scope="module")
async def fuzzed() -> AsyncIterator[System]:
    """A system of its own: the fuzz writes many odd things that no other test should meet."""
    running = System()
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def _existing(system: System, token: str) -> dict[str, str]:
    """Things that exist, by the path parameter names that address them."""
    async with system.client(token) as me, system.client(system.token(random_id("commenter"))) as other:

        async def created(client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
            reply = await client.post(path, json=body)
            assert reply.status_code == 201, f"{path}: {reply.text}"
            created: dict[str, Any] = reply.json()
            return created

        question = await created(me, "/api/posts", {"body": "Hvem kan Kafka?", "kind": "question"})
        comment = await created(other, f"/api/posts/{question['id']}/comments", {"body": "Jeg!"})
        campaign = await created(
            me, "/api/campaigns", {"title": "Bedre møter", "question": "Hvordan?", "closes_at": _in(3600)}
        )
        idea = await created(other, f"/api/campaigns/{campaign['id']}/ideas", {"body": "Kortere møter"})
        session = await created(me, "/api/qna", {"title": "Spør oss", "starts_at": _in(-60), "ends_at": _in(3600)})
        asked = await created(other, f"/api/qna/{session['id']}/questions", {"body": "Når kommer lønna?"})
        webhook = await created(
            me, "/api/webhooks", {"url": "http://127.0.0.1:9/hook", "event_types": ["post.*"], "description": "fuzz"}
        )
    person = question["author"]["id"]
    return {
        "post_id": question["id"],
        "comment_id": comment["id"],
        "campaign_id": campaign["id"],
        "idea_id": idea["id"],
        "session_id": session["id"],
        "question_id": asked["id"],
        "webhook_id": webhook["id"],
        "person_id": person,
    }


def _check(findings: Findings, operation: str, response: Any) -> None:
    status = response.status_code
    findings.statuses[status] += 1
    findings.cases += 1
    headers = {name.lower(): values[0] for name, values in response.headers.items()}
    missing = [name for name in SECURITY_HEADERS if name not in headers]
    if missing:
        findings.note(operation, "security headers missing", f"{status} without {missing}")
    if status >= 500:
        findings.note(operation, f"{status}", response.text[:300])
    elif status >= 400:
        if not headers.get("content-type", "").startswith(PROBLEM):
            findings.note(
                operation, f"{status} not problem+json", f"{headers.get('content-type')}: {response.text[:200]}"
            )
            return
        body = response.json()
        if not (isinstance(body, dict) and body.get("title") and body.get("detail") and body.get("status") == status):
            findings.note(operation, f"{status} incomplete problem", response.text[:300])


def _fuzz(base_url: str, spec: dict[str, Any], tokens: list[str], existing: dict[str, str]) -> Findings:
    schema = schemathesis.openapi.from_dict(spec)
    findings = Findings()
    # One person per operation and round: the write limit (600 a minute, 120 at once) never comes into it.
    people = itertools.cycle(tokens)
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    operations = [op for op in operations if (op.method.upper(), op.path) not in SKIPPED]
    # The round on existing things deletes last, so that everything else meets them first.
    aimed = sorted(operations, key=lambda op: op.method.upper() == "DELETE")
    rounds: list[tuple[Any, GenerationMode, dict[str, str] | None]] = [
        *((op, GenerationMode.POSITIVE, None) for op in operations),
        *((op, GenerationMode.NEGATIVE, None) for op in operations),
        *((op, GenerationMode.POSITIVE, existing) for op in aimed if "{" in op.path),
    ]
    for operation, mode, known in rounds:
        name = f"{operation.method.upper()} {operation.path}"
        token = next(people)
        path_parameters = None
        if known is not None:
            path_parameters = {p.name: known[p.name] for p in operation.path_parameters if p.name in known}
        strategy = operation.as_strategy(
            generation_mode=mode, headers={"Authorization": f"Bearer {token}"}, path_parameters=path_parameters
        )

        try:
            _round(strategy, name, base_url, session, findings)
        except Exception as exc:
            # A schema that admits no negative case (no parameters, no body) is no finding.
            if type(exc).__name__ != "Unsatisfiable":
                findings.note(name, "generation failed", repr(exc)[:300])
    return findings


def _round(strategy: Any, name: str, base_url: str, session: requests.Session, findings: Findings) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, session=session, timeout=30)
        except requests.RequestException as exc:
            findings.note(name, "no answer", f"{exc!r}\n    {case.as_curl_command()}")
            return
        before = len(findings.failures)
        _check(findings, name, response)
        if len(findings.failures) > before:
            key = list(findings.failures)[-1]
            findings.failures[key] += f"\n    {case.as_curl_command()}"

    run()


async def test_no_server_error_and_every_client_error_is_problem_json(fuzzed: System) -> None:
    system = fuzzed
    tokens = [system.token(random_id("fuzz"), groups=ROLES) for _ in range(40)]
    async with system.client() as client:
        spec = (await client.get("/openapi.json")).json()
    existing = await _existing(system, tokens[0])
    started = time.monotonic()
    findings = await asyncio.to_thread(_fuzz, system.base_url, spec, tokens, existing)
    elapsed = time.monotonic() - started
    print(
        f"\nschemathesis: {findings.cases} requests over {len(spec['paths'])} paths in {elapsed:.0f} s;"
        f" statuses {dict(sorted(findings.statuses.items()))}"
    )
    assert findings.cases > 500, f"too few requests made it: {findings.statuses}"
    report = "\n".join(f"{op} [{kind}]: {detail}" for (op, kind, _), detail in findings.failures.items())
    assert not findings.failures, f"{len(findings.failures)} findings:\n{report}"
    for service in system.processes:
        assert "Traceback" not in (system.log_dir / f"{service}.log").read_text(errors="replace"), system.log_tail(
            service
        )
