# One image for every service; the command picks the service (see docker-compose.yml).
FROM python:3.11-slim AS build
WORKDIR /app
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY tillit ./tillit
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 tillit
COPY --from=build /venv /venv
WORKDIR /app
COPY Procfile ./
ENV PATH="/venv/bin:$PATH" PYTHONUNBUFFERED=1 BIND_HOST=0.0.0.0
USER tillit
# Each service answers /ready on its own port; the gateway on /api/ready.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL','http://127.0.0.1:8000/api/health'), timeout=2).status == 200 else 1)"
CMD ["python", "-m", "services.gateway"]
