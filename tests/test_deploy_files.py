"""docker-compose.yml cannot run on our machines (no Docker engine), so these tests keep it true."""

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__main__.py").exists())


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_service_runs_from_the_one_image_with_its_own_command() -> None:
    services = compose()["services"]
    for name in SERVICES:
        assert name in services, f"{name} missing from docker-compose.yml"
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        assert services[name]["build"] == "."
    assert {"postgres", "rabbitmq", "mailcatcher"} <= set(services)


def test_settings_are_set_and_urls_agree_with_ports_and_health_checks() -> None:
    services = compose()["services"]
    settings_fields = {str(field.validation_alias or name).upper() for name, field in Settings.model_fields.items()}
    for name in SERVICES:
        env = services[name]["environment"]
        for variable in (
            "DATABASE_URL",
            "RABBITMQ_URL",
            "TILLIT_NAMESPACE",
            "SMTP_URL",
            "JWT_SECRET",
            "PUBLIC_URL",
            "GATEWAY_PORT",
            "BIND_HOST",
        ):
            assert variable in env, f"{name} lacks {variable}"
        assert set(env) - {"HEALTHCHECK_URL"} <= settings_fields, "a variable no setting reads"
        for other in SERVICES:
            if other == "gateway":
                continue
            url = urlsplit(env[f"{other.upper()}_URL"])
            assert url.hostname == other, f"{name} reaches {other} at {url.hostname}"
        health = urlsplit(env["HEALTHCHECK_URL"])
        own_port = int(env["GATEWAY_PORT"]) if name == "gateway" else urlsplit(env[f"{name.upper()}_URL"]).port
        assert health.port == own_port, f"{name}'s health check probes another port"
        assert health.path == ("/api/health" if name == "gateway" else "/ready")
    assert services["gateway"]["ports"] == [f"{services['gateway']['environment']['GATEWAY_PORT']}:8000"]


def test_servers_have_health_checks_and_services_wait_for_them() -> None:
    services = compose()["services"]
    for server in ("postgres", "rabbitmq"):
        assert services[server]["healthcheck"]["test"]
    assert services["rabbitmq"]["image"].startswith("rabbitmq:4"), "production runs RabbitMQ 4.x"
    for name in SERVICES:
        depends = services[name]["depends_on"]
        assert all(condition == {"condition": "service_healthy"} for condition in depends.values())
    assert set(services["gateway"]["depends_on"]) == set(SERVICES) - {"gateway"}
    for name in set(SERVICES) - {"gateway"}:
        assert set(services[name]["depends_on"]) == {"postgres", "rabbitmq"}
    smtp = urlsplit(services["gateway"]["environment"]["SMTP_URL"])
    assert smtp.hostname == "mailcatcher"
    assert services["mailcatcher"]["environment"]["MP_SMTP_BIND_ADDR"].endswith(f":{smtp.port}")


def test_dockerfile_runs_as_non_root_with_a_health_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER tillit" in dockerfile and "HEALTHCHECK" in dockerfile
    assert dockerfile.count("FROM ") >= 2, "multi-stage"
