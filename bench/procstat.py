"""Who used the CPU during a phase, from /proc: each of our processes by role, PostgreSQL, RabbitMQ and
everything else. Figures are percent of ONE core (a 2-core machine tops out at 200), as in
../shared/limits/procstat.py, so our tables read like the limits' tables."""

from __future__ import annotations

import os
import time
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


def _pg_database(pid: int) -> str:
    """The database a PostgreSQL backend serves, from its process title ("postgres: 15/main: user db
    host(port) state"); "" for the server's own processes (WAL writer, checkpointer, ...)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().replace(b"\0", b" ").decode(errors="replace").split()
    except OSError:
        return ""
    return words[3] if len(words) >= 5 and words[0] == "postgres:" else ""


def _proc_ticks() -> dict[int, tuple[str, int, int]]:
    """pid -> (command name, CPU ticks used, start time); the start time tells a reused pid apart. A
    PostgreSQL backend's command name is "postgres <database>"."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read().decode(errors="replace")
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        if comm.startswith("postgres"):
            comm = f"postgres {_pg_database(int(name))}".rstrip()
        out[int(name)] = (comm, int(fields[11]) + int(fields[12]), int(fields[19]))
    return out


def snapshot() -> dict[str, Any]:
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return {"t": time.perf_counter(), "procs": _proc_ticks(), "total": sum(cpu[:8]), "idle": cpu[3] + cpu[4]}


def usage(
    before: dict[str, Any], after: dict[str, Any], roles: dict[int, str], *, database: str | None = None
) -> dict[str, float]:
    """CPU per group between two snapshots, plus machine_busy (percent of all cores). With `database`,
    PostgreSQL backends serving other databases (other people's test runs on a shared machine) count as
    "other"; the server's own processes count as "postgres", since they work for every database."""
    wall = after["t"] - before["t"]
    groups = {"rabbitmq": 0.0, "postgres": 0.0, **{r: 0.0 for r in roles.values()}, "other": 0.0}
    for pid, (comm, ticks, started) in after["procs"].items():
        prev = before["procs"].get(pid)
        # A process that started during the window (or reused a pid) counts from zero.
        base = prev[1] if prev and prev[2] == started else 0
        if pid in roles:
            group = roles[pid]
        elif comm.startswith("beam"):
            group = "rabbitmq"
        elif comm.startswith("postgres"):
            served = comm.removeprefix("postgres").strip()
            group = "other" if database and served and served != database else "postgres"
        else:
            group = "other"
        groups[group] += ticks - base
    res = {k: round(100.0 * v / _TICKS / wall, 1) for k, v in groups.items()} if wall > 0 else {}
    total = after["total"] - before["total"]
    if total > 0:
        res["machine_busy"] = round(100.0 * (1 - (after["idle"] - before["idle"]) / total), 1)
    return res


def wait_quiet(max_wait: float, *, threshold: float = 25.0, window: float = 0.5) -> float:
    """Wait until the machine is less than `threshold` % busy over `window` s, at most `max_wait` s;
    returns the busy percentage last seen, so a noisy start shows in the results (as measure.py does)."""
    deadline = time.perf_counter() + max_wait
    while True:
        s0 = snapshot()
        time.sleep(window)
        busy = usage(s0, snapshot(), {}).get("machine_busy", 0.0)
        if busy < threshold or time.perf_counter() >= deadline:
            return busy
