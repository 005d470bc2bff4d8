"""The image's health check: exit 0 when the service in this container answers on its own port.

`python /app/healthcheck.py` probes liveness (/health; the gateway's /api/health), `--ready` readiness
(/ready; /api/ready). The service is SERVICE, or else the `python -m services.<name>` that runs as PID 1;
its port comes from the same settings the service reads, so the check cannot probe another port.
"""

from __future__ import annotations

import os
import re
import sys
import urllib.request
from pathlib import Path


def running_service(environ: dict[str, str], pid1_cmdline: str) -> str:
    if environ.get("SERVICE"):
        return environ["SERVICE"]
    match = re.search(r"-m\0services\.([a-z_]+)", pid1_cmdline)
    return match.group(1) if match else "gateway"


def probe_url(service: str, *, ready: bool) -> str:
    from shared.settings import Settings

    port = Settings().service_port(service)
    path = ("/ready" if ready else "/health") if service != "gateway" else ("/api/ready" if ready else "/api/health")
    return f"http://127.0.0.1:{port}{path}"


def main(argv: list[str]) -> int:
    try:
        cmdline = Path("/proc/1/cmdline").read_text()
    except OSError:
        cmdline = ""
    url = probe_url(running_service(dict(os.environ), cmdline), ready="--ready" in argv)
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return 0 if reply.status == 200 else 1
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
