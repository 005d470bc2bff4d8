"""docker-compose.yml and the Dockerfile cannot run on our machines (no Docker engine), so these tests keep
them true: to the catalog of services, to every setting the services read, and to each other.

The lists come from the code (shared.settings.BACKEND_SERVICES, the pydantic Settings classes), so a new
service or a new setting fails here until the deployment files carry it."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

from shared.settings import BACKEND_SERVICES, Settings

ROOT = Path(__file__).resolve().parent.parent
SERVICES: tuple[str, ...] = ("gateway", *BACKEND_SERVICES)
INFRASTRUCTURE = ("postgres", "rabbitmq", "mailpit")
# Settings whose value in a deployment is particular to it; every other default must equal the code's.
DEPLOYMENT_SPECIFIC = {
    "TILLIT_ENV",
    "DATABASE_URL",
    "RABBITMQ_URL",
    "SMTP_URL",
    "PUBLIC_URL",
    "BIND_HOST",
    "GATEWAY_PORT",
    *(f"{name.upper()}_URL" for name in BACKEND_SERVICES),
}
SECRET_VARIABLES = ("DATABASE_URL", "RABBITMQ_URL", "JWT_SECRET", "UNSUBSCRIBE_SECRET", "SMTP_URL")
INTERPOLATION = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):-(?P<default>.*)\}$")


def settings_classes() -> list[type[BaseSettings]]:
    """shared.settings.Settings and every services/<name>/settings.py's BaseSettings classes."""
    modules: list[ModuleType] = [importlib.import_module("shared.settings")]
    for path in sorted((ROOT / "services").glob("*/settings.py")):
        modules.append(importlib.import_module(f"services.{path.parent.name}.settings"))
    classes = []
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseSettings) and value.__module__ == module.__name__:
                classes.append(value)
    return classes


def settings_variables() -> dict[str, Any]:
    """Every environment variable a setting reads, with the setting's default (None: optional)."""
    variables: dict[str, Any] = {}
    for cls in settings_classes():
        prefix = str(cls.model_config.get("env_prefix") or "")
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            variable = alias if isinstance(alias, str) else f"{prefix}{name}"
            variables[variable.upper()] = field.default
    return variables


def service_ports() -> dict[str, int]:
    """The port each service listens on with the code's defaults."""
    defaults = Settings()
    return {name: defaults.service_port(name) for name in SERVICES}


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def resolved(value: Any) -> str | None:
    """What a compose value is when the shell sets nothing: `${VAR:-default}` -> default."""
    if value is None:
        return None
    match = INTERPOLATION.match(str(value))
    return match.group("default") if match else str(value)


def test_settings_discovery_finds_the_shared_and_the_feeds_settings() -> None:
    variables = settings_variables()
    assert {"DATABASE_URL", "TILLIT_ENV", "TILLIT_NAMESPACE", "FEEDS_ACTIVE_DAYS"} <= set(variables)
    assert all(f"{name.upper()}_URL" in variables for name in BACKEND_SERVICES)


def test_every_service_of_the_catalog_runs_from_the_one_image() -> None:
    services = compose()["services"]
    on_disk = {p.parent.name for p in (ROOT / "services").glob("*/__main__.py")}
    assert set(SERVICES) == on_disk, "shared.settings.BACKEND_SERVICES and services/ disagree"
    images = set()
    for name in SERVICES:
        assert name in services, f"{name} is missing from docker-compose.yml"
        service = services[name]
        assert service["environment"]["SERVICE"] == name, "the image's entrypoint runs services.$SERVICE"
        assert "command" not in service or service["command"] == ["python", "-m", f"services.{name}"]
        assert service["build"] == "."
        images.add(service["image"])
    assert services["migrate"]["build"] == "."
    images.add(services["migrate"]["image"])
    assert len(images) == 1, "every service runs from one image"
    assert set(INFRASTRUCTURE) <= set(services)


def test_every_variable_the_settings_read_is_set_and_nothing_else() -> None:
    services = compose()["services"]
    variables = settings_variables()
    for name in (*SERVICES, "migrate"):
        env = services[name]["environment"]
        missing = set(variables) - set(env)
        assert not missing, f"{name} does not set {sorted(missing)}"
        unknown = set(env) - set(variables) - {"SERVICE"}
        assert not unknown, f"{name} sets {sorted(unknown)}, which no setting reads"
        for variable, value in env.items():
            if variables.get(variable, "") is None:
                # Optional settings pass through from the shell only: "" would be checked as a value.
                assert value is None, f"{variable} must stay unset unless the shell sets it"
                continue
            match = INTERPOLATION.match(str(value))
            if match:
                assert match.group("name") == variable, f"{variable} is overridden by ${match.group('name')}"
            if variable in DEPLOYMENT_SPECIFIC or variable == "SERVICE":
                continue
            assert match, f"{variable} cannot be overridden from the environment: write ${{{variable}:-...}}"
            assert str(resolved(value)).lower() == str(variables[variable]).lower(), (
                f"{variable}'s default in docker-compose.yml is not the code's ({variables[variable]!r})"
            )


def test_the_settings_parse_and_each_service_listens_where_the_others_reach_it(monkeypatch) -> None:
    services = compose()["services"]
    for name in SERVICES:
        env = services[name]["environment"]
        for variable, value in env.items():
            if value is None:
                monkeypatch.delenv(variable, raising=False)
            else:
                monkeypatch.setenv(variable, str(resolved(value)))
        settings = Settings()
        assert settings.bind_host == "0.0.0.0", "a container must listen on every interface"
        assert settings.environment == "development" and settings.dev_signin_enabled
        for other in BACKEND_SERVICES:
            url = urlsplit(settings.service_url(other))
            assert url.hostname == other, f"{name} reaches {other} at {url.hostname}, not its compose name"
            assert url.port == service_ports()[other], f"{other}'s port differs from the code's default"
        assert settings.service_port("gateway") == service_ports()["gateway"]
        smtp = urlsplit(settings.smtp_url)
        assert smtp.hostname == "mailpit"
        assert services["mailpit"]["environment"]["MP_SMTP_BIND_ADDR"].endswith(f":{smtp.port}")
        database = urlsplit(settings.database_url)
        postgres = services["postgres"]["environment"]
        assert (database.hostname, database.port) == ("postgres", 5432)
        assert (database.username, database.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
        assert database.path == f"/{postgres['POSTGRES_DB']}"
        broker = urlsplit(settings.rabbitmq_url)
        rabbitmq = services["rabbitmq"]["environment"]
        assert (broker.hostname, broker.port) == ("rabbitmq", 5672)
        assert (broker.username, broker.password) == (
            rabbitmq["RABBITMQ_DEFAULT_USER"],
            rabbitmq["RABBITMQ_DEFAULT_PASS"],
        )


def test_only_the_gateway_publishes_a_port_and_backends_can_scale() -> None:
    services = compose()["services"]
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: a fixed container name forbids --scale"
    for name in BACKEND_SERVICES:
        assert "ports" not in services[name], f"{name}: a host port forbids --scale; the gateway reaches it by name"
    [published] = services["gateway"]["ports"]
    host, container = str(resolved(published.rsplit(":", 1)[0])), int(published.rsplit(":", 1)[1])
    assert container == service_ports()["gateway"]
    assert host.endswith("8000")
    for name in INFRASTRUCTURE:
        for port in services[name].get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond the loopback"


def test_long_running_services_have_health_checks_and_wait_for_what_they_need() -> None:
    services = compose()["services"]
    for name in (*INFRASTRUCTURE, *SERVICES):
        check = services[name]["healthcheck"]
        assert check["test"] and not check.get("disable"), f"{name} has no health check"
    for name in SERVICES:
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "/app/healthcheck.py"]
        assert (test[3:] == ["--ready"]) == (name != "gateway")
    for name in BACKEND_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"] == depends["rabbitmq"] == {"condition": "service_healthy"}
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
    assert services["notifications"]["depends_on"]["mailpit"] == {"condition": "service_healthy"}
    assert services["gateway"]["depends_on"] == {name: {"condition": "service_healthy"} for name in BACKEND_SERVICES}
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "tillit", "migrate"]
    assert migrate["restart"] == "no" and migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_images_are_pinned_to_a_major_version() -> None:
    services = compose()["services"]
    images = {name: services[name]["image"] for name in INFRASTRUCTURE}
    for name, image in images.items():
        tag = image.partition(":")[2]
        assert tag and tag != "latest" and re.match(r"v?\d+", tag), f"{name}: {image} is not pinned"
    assert int(images["postgres"].split(":")[1].split(".")[0]) >= 15, "NULLS NOT DISTINCT needs PostgreSQL 15"
    assert re.fullmatch(r"rabbitmq:4[.\d]*-management", images["rabbitmq"]), "production runs RabbitMQ 4.x"
    assert images["mailpit"].startswith("axllent/mailpit:")


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_is_multi_stage_and_non_root_with_a_health_check() -> None:
    text = dockerfile()
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.MULTILINE)
    assert len(stages) >= 2, "multi-stage"
    python = re.search(r'requires-python = ">=(\d+\.\d+)', (ROOT / "pyproject.toml").read_text())
    assert python is not None
    assert stages[-1][0] == f"python:{python.group(1)}-slim", "the runtime is the slim image of our Python"
    assert "COPY --from=builder /venv /venv" in text
    [user] = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user.split(":")[0] not in {"root", "0"}
    assert "useradd --uid 10001 " in text, "deploy/ runs the pods as uid 10001"
    [check] = re.findall(r"^HEALTHCHECK .* CMD (.*)$", text, re.MULTILINE)
    assert yaml.safe_load(check) == ["python", "/app/healthcheck.py"]
    assert 'ENTRYPOINT ["/app/entrypoint.sh"]' in text


def test_dockerfile_exposes_every_service_port() -> None:
    [exposed] = re.findall(r"^EXPOSE (.*)$", dockerfile(), re.MULTILINE)
    assert {int(port) for port in exposed.split()} == set(service_ports().values())


def test_dockerignore_keeps_out_the_venv_and_state_but_not_what_the_image_copies() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git", ".pytest_cache", ".mypy_cache", "**/__pycache__"} <= set(ignored)
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile(), re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which does not exist"
            top = path.split("/")[0]
            assert top not in ignored or f"!{path}" in ignored or f"!{path.rsplit('/', 1)[0]}" in ignored, (
                f".dockerignore leaves {path} out of the build context"
            )


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "deploy" / "docker" / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_health_check_probes_each_service_on_its_own_port(monkeypatch) -> None:
    healthcheck = load_healthcheck()
    assert healthcheck.running_service({"SERVICE": "feeds"}, "") == "feeds"
    assert healthcheck.running_service({}, "python\0-m\0services.reactions\0") == "reactions"
    assert healthcheck.running_service({}, "") == "gateway"
    env = compose()["services"]["gateway"]["environment"]
    for variable, value in env.items():
        if value is not None:
            monkeypatch.setenv(variable, str(resolved(value)))
    for name, port in service_ports().items():
        path = "/api/health" if name == "gateway" else "/health"
        assert healthcheck.probe_url(name, ready=False) == f"http://127.0.0.1:{port}{path}"
        ready = "/api/ready" if name == "gateway" else "/ready"
        assert healthcheck.probe_url(name, ready=True) == f"http://127.0.0.1:{port}{ready}"


@pytest.mark.parametrize(
    ("arguments", "environment", "expected"),
    [
        ([], {}, "-m services.gateway"),
        ([], {"SERVICE": "posts"}, "-m services.posts"),
        (["python", "-m", "tillit", "migrate"], {"SERVICE": "posts"}, "-m tillit migrate"),
    ],
)
def test_the_entrypoint_runs_the_command_or_the_service(tmp_path, arguments, environment, expected) -> None:
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    result = subprocess.run(
        ["sh", str(ROOT / "deploy" / "docker" / "entrypoint.sh"), *arguments],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == expected
