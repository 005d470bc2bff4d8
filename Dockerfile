# syntax=docker/dockerfile:1
# One image for every service. `docker run IMAGE python -m services.posts` (or `-e SERVICE=posts`) runs a
# service; `docker run IMAGE python -m tillit migrate` applies every service's migrations once and exits.
# docs/operations.md describes how docker-compose.yml and deploy/ (Kubernetes) use it.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml ./
# Only the dependencies of pyproject.toml go into the venv, so this layer is rebuilt when they change and
# not on every code change; the code itself is copied into the runtime stage below.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && python -m venv /venv \
    && /venv/bin/pip install -r requirements.txt

FROM python:3.11-slim AS runtime
RUN groupadd --gid 10001 tillit \
    && useradd --uid 10001 --gid tillit --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin tillit
COPY --from=builder /venv /venv
WORKDIR /app
# The code stays owned by root: the service user can read it, not change it.
COPY shared ./shared
COPY services ./services
COPY tillit ./tillit
COPY docs/asyncapi.json ./docs/asyncapi.json
COPY deploy/docker/entrypoint.sh deploy/docker/healthcheck.py ./
# Byte-code compiled now, since the service user cannot write __pycache__ (and Kubernetes mounts / read-only).
RUN python -m compileall -q shared services tillit healthcheck.py && chmod 0755 entrypoint.sh
ENV PATH="/venv/bin:$PATH" \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BIND_HOST=0.0.0.0
USER tillit:tillit
# The gateway listens on GATEWAY_PORT, each backend on the port of its own <NAME>_URL (shared/settings.py).
EXPOSE 8000 8001 8002 8003 8004 8005 8006 8007
# Liveness of whichever service runs here: healthcheck.py finds its port and path from the same settings.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD ["python", "/app/healthcheck.py"]
ENTRYPOINT ["/app/entrypoint.sh"]
CMD []
