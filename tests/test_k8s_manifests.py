"""deploy/ (kustomize) cannot be applied here (no cluster), so these tests build each overlay and hold the
objects against the code: a Deployment, Service, PodDisruptionBudget and autoscaler for every service of
the catalog, probes on the ports the settings give, KEDA triggers on the queues the consumers declare, and
every setting provided by the ConfigMap or the Secret.

The overlays are built by a small kustomize resolver below (only the fields deploy/ uses; it refuses any
other), and, where `kubectl` is installed, the resolver's build is checked against `kubectl kustomize`.
Built-in kinds are validated against the Kubernetes JSON schemas that kubernetes-validate ships."""

from __future__ import annotations

import copy
import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from shared.settings import (
    BACKEND_SERVICES,
    DEVELOPMENT_JWT_SECRET,
    DEVELOPMENT_UNSUBSCRIBE_SECRET,
    Settings,
)
from tests.test_deploy_files import SECRET_VARIABLES, SERVICES, settings_variables
from tillit.catalog import consumers_of

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.32.0"
BUILT_IN = {
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "Job",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "Ingress",
}
Object = dict[str, Any]


# --- a small kustomize -------------------------------------------------------------------------------

# Strategic merge: lists of these are merged item by item on the key; every other list is replaced.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
}


def documents(path: Path) -> list[Object]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def strategic_merge(target: Any, patch: Any, key: str = "") -> Any:
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            elif name in merged:
                merged[name] = strategic_merge(merged[name], value, name)
            else:
                merged[name] = copy.deepcopy(value)
        return merged
    if isinstance(target, list) and isinstance(patch, list) and key in MERGE_KEYS:
        by = MERGE_KEYS[key]
        merged_list = [copy.deepcopy(item) for item in target]
        for item in patch:
            index = next((i for i, old in enumerate(merged_list) if old.get(by) == item.get(by)), None)
            if index is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[index] = strategic_merge(merged_list[index], item)
        return merged_list
    return copy.deepcopy(patch)


def matches(obj: Object, target: dict[str, str]) -> bool:
    if "kind" in target and obj["kind"] != target["kind"]:
        return False
    if "name" in target and obj["metadata"]["name"] != target["name"]:
        return False
    for requirement in filter(None, target.get("labelSelector", "").split(",")):
        label, _, value = requirement.partition("=")
        if obj["metadata"].get("labels", {}).get(label.strip()) != value.strip():
            return False
    return True


def set_image(pod_spec: Object, images: list[dict[str, str]]) -> None:
    for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        name = container["image"].split("@")[0]
        if ":" in name.rsplit("/", 1)[-1]:
            name = name.rsplit(":", 1)[0]
        for image in images:
            if image["name"] == name:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"


def kustomize(directory: Path) -> list[Object]:
    """`kustomize build` for the fields deploy/ uses: resources, patches, images, namespace."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - {"apiVersion", "kind", "resources", "patches", "images", "namespace"}
    assert not unknown, f"{directory}: this resolver does not implement {sorted(unknown)}"
    objects: list[Object] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        objects += kustomize(path) if path.is_dir() else documents(path)
    for entry in kustomization.get("patches", []):
        assert set(entry) <= {"path", "patch", "target"}, f"unsupported patch {entry}"
        bodies = documents(directory / entry["path"]) if "path" in entry else list(yaml.safe_load_all(entry["patch"]))
        for body in bodies:
            target = entry.get("target") or {"kind": body["kind"], "name": body["metadata"]["name"]}
            patch = copy.deepcopy(body)
            patch.pop("apiVersion", None)
            patch.pop("kind", None)
            patch["metadata"] = {k: v for k, v in patch.get("metadata", {}).items() if k != "name"}
            selected = [i for i, obj in enumerate(objects) if matches(obj, target)]
            assert selected, f"{directory}: patch {entry} matches nothing"
            for i in selected:
                objects[i] = strategic_merge(objects[i], patch)
    for obj in objects:
        if "namespace" in kustomization:
            obj["metadata"]["namespace"] = kustomization["namespace"]
        template = obj.get("spec", {}).get("template", {}).get("spec")
        if template and "images" in kustomization:
            set_image(template, kustomization["images"])
    return objects


def kubectl_kustomize(directory: Path) -> list[Object] | None:
    if shutil.which("kubectl") is None:
        return None
    built = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def by_identity(objects: list[Object]) -> dict[tuple[str, str], Object]:
    identities = {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}
    assert len(identities) == len(objects), "two objects of one kind share a name"
    return identities


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request) -> tuple[str, dict[tuple[str, str], Object]]:
    return request.param, by_identity(kustomize(DEPLOY / "overlays" / request.param))


def of_kind(objects: dict[tuple[str, str], Object], kind: str) -> dict[str, Object]:
    return {name: obj for (k, name), obj in objects.items() if k == kind}


# --- the resolver and the generated files are true -----------------------------------------------------


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_resolver_builds_what_kubectl_kustomize_builds(name: str) -> None:
    real = kubectl_kustomize(DEPLOY / "overlays" / name)
    if real is None:
        pytest.skip("kubectl is not installed: the resolver's build is not checked against kustomize here")
    assert by_identity(kustomize(DEPLOY / "overlays" / name)) == by_identity(real)


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_generate", DEPLOY / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_manifests_are_up_to_date() -> None:
    generated: dict[Path, str] = load_generator().generated()
    on_disk = set((DEPLOY / "base" / "services").glob("*.yaml")) | {DEPLOY / "base" / "config.yaml"}
    assert set(generated) == on_disk, "run `.venv/bin/python deploy/generate.py`"
    for path, text in generated.items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run `.venv/bin/python deploy/generate.py`"
    base = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())["resources"]
    assert {f"services/{name}.yaml" for name in SERVICES} <= set(base), "a service's manifests are not in the base"


def test_built_in_objects_are_valid_against_the_kubernetes_schemas(overlay) -> None:
    _, objects = overlay
    validated = 0
    for (kind, name), obj in objects.items():
        if kind in BUILT_IN:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{kind}/{name}: {error.message} at {'.'.join(map(str, error.path))}")
            validated += 1
    assert validated >= 3 * len(SERVICES), "a Deployment, a Service and a PodDisruptionBudget each"


# --- every service ------------------------------------------------------------------------------------


def config(objects: dict[tuple[str, str], Object]) -> dict[str, str]:
    data: dict[str, str] = objects["ConfigMap", "tillit-config"]["data"]
    return data


def secret_keys(name: str, objects: dict[tuple[str, str], Object]) -> dict[str, str]:
    """The Secret's values: in git for dev; for prod only its keys, from secrets.env.example."""
    if ("Secret", "tillit-secrets") in objects:
        return dict(objects["Secret", "tillit-secrets"]["stringData"])
    example = (DEPLOY / "overlays" / name / "secrets.env.example").read_text().splitlines()
    return {line.split("=", 1)[0]: line.split("=", 1)[1] for line in example if line and not line.startswith("#")}


def pod_labels(deployment: Object) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def test_every_service_has_a_deployment_with_probes_on_its_port(overlay) -> None:
    _, objects = overlay
    deployments = of_kind(objects, "Deployment")
    urls = config(objects)
    for name in SERVICES:
        assert name in deployments, f"no Deployment for {name}"
        spec = deployments[name]["spec"]
        assert "replicas" not in spec, "the autoscaler owns the replicas"
        assert spec["selector"]["matchLabels"] == pod_labels(deployments[name])
        [container] = spec["template"]["spec"]["containers"]
        assert container["args"] == ["python", "-m", f"services.{name}"]
        [port] = container["ports"]
        expected = int(urls["GATEWAY_PORT"]) if name == "gateway" else urlsplit(urls[f"{name.upper()}_URL"]).port
        assert port == {"name": "http", "containerPort": expected}
        api = "/api" if name == "gateway" else ""
        assert container["livenessProbe"]["httpGet"] == {"path": f"{api}/health", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": f"{api}/health", "port": "http"}
        ready = "/api/health" if name == "gateway" else "/ready"
        assert container["readinessProbe"]["httpGet"] == {"path": ready, "port": "http"}
        assert container["envFrom"] == [
            {"configMapRef": {"name": "tillit-config"}},
            {"secretRef": {"name": "tillit-secrets"}},
        ]


def test_every_workload_has_requests_limits_probes_and_runs_as_non_root(overlay) -> None:
    _, objects = overlay
    workloads = [*of_kind(objects, "Deployment").values(), *of_kind(objects, "Job").values()]
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        for container in pod["containers"]:
            where = f"{workload['kind']}/{workload['metadata']['name']}"
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{where}: no {bound}"
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            if workload["kind"] == "Deployment":
                assert container["readinessProbe"] and container["livenessProbe"], f"{where}: probes"


def test_every_service_has_a_service_and_a_disruption_budget_that_select_its_pods(overlay) -> None:
    _, objects = overlay
    deployments = of_kind(objects, "Deployment")
    services = of_kind(objects, "Service")
    budgets = of_kind(objects, "PodDisruptionBudget")
    urls = config(objects)
    for name in SERVICES:
        labels = pod_labels(deployments[name])
        assert selects(services[name]["spec"]["selector"], labels)
        assert selects(budgets[name]["spec"]["selector"]["matchLabels"], labels)
        [port] = services[name]["spec"]["ports"]
        assert port["targetPort"] == "http"
        if name != "gateway":
            url = urlsplit(urls[f"{name.upper()}_URL"])
            assert (url.hostname, url.port) == (name, port["port"]), f"{name}_URL does not reach its Service"
        for other, deployment in deployments.items():
            if other != name:
                assert not selects(services[name]["spec"]["selector"], pod_labels(deployment)), (
                    f"{name} selects {other}"
                )


def test_the_gateway_has_an_ingress_and_a_cpu_autoscaler(overlay) -> None:
    _, objects = overlay
    ingress = objects["Ingress", "gateway"]
    [rule] = ingress["spec"]["rules"]
    [path] = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "gateway", "port": {"name": "http"}}
    assert objects["Service", "gateway"]["spec"]["ports"][0]["name"] == "http"
    hpa = objects["HorizontalPodAutoscaler", "gateway"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]


def test_consumers_scale_on_their_queues_and_http_services_on_cpu(overlay) -> None:
    _, objects = overlay
    namespace = config(objects)["TILLIT_NAMESPACE"]
    scaled = of_kind(objects, "ScaledObject")
    hpas = of_kind(objects, "HorizontalPodAutoscaler")
    targets = [obj["spec"]["scaleTargetRef"]["name"] for obj in [*scaled.values(), *hpas.values()]]
    assert sorted(targets) == sorted(SERVICES), "each service has exactly one autoscaler: KEDA's or an HPA"
    authentication = objects["TriggerAuthentication", "rabbitmq-queue-length"]["spec"]["secretTargetRef"]
    assert authentication == [{"parameter": "host", "name": "tillit-secrets", "key": "RABBITMQ_URL"}]
    for name in BACKEND_SERVICES:
        queues = {f"{namespace}.{consumer.name}" for consumer in consumers_of(name)}
        if not queues:
            assert name in hpas and name not in scaled
            continue
        assert name in scaled and name not in hpas, f"{name} consumes events: KEDA scales it on queue length"
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"] == {"name": name}
        assert spec["minReplicaCount"] >= 1, "never zero: the service answers HTTP and runs its outbox relay"
        rabbit = [t for t in spec["triggers"] if t["type"] == "rabbitmq"]
        assert {t["metadata"]["queueName"] for t in rabbit} == queues
        for trigger in rabbit:
            assert trigger["metadata"]["mode"] == "QueueLength" and int(trigger["metadata"]["value"]) > 0
            assert trigger["authenticationRef"] == {"name": "rabbitmq-queue-length"}
        assert any(t["type"] == "cpu" for t in spec["triggers"]), "it serves HTTP too"


def test_the_config_map_and_the_secret_provide_every_setting(overlay) -> None:
    name, objects = overlay
    provided = config(objects)
    secrets = secret_keys(name, objects)
    assert set(secrets) == set(SECRET_VARIABLES)
    assert not set(provided) & set(secrets), "a setting in both the ConfigMap and the Secret"
    for variable, default in settings_variables().items():
        if default is None and name == "dev":
            continue  # optional (OIDC); prod sets them
        assert variable in provided or variable in secrets, f"{name}: nothing provides {variable}"
    assert set(provided) <= set(settings_variables()), "the ConfigMap sets what no setting reads"
    assert provided["BIND_HOST"] == "0.0.0.0"


def settings_of(name: str, objects: dict[tuple[str, str], Object], monkeypatch) -> Settings:
    values = {**config(objects), **secret_keys(name, objects)}
    if name == "prod":  # what ops put into the Secret: anything but the development values
        values.update(
            {key: f"prod-{key.lower()}" for key in ("JWT_SECRET", "UNSUBSCRIBE_SECRET")},
            DATABASE_URL="postgresql://app:x@postgres-rw:5432/tillit",
            RABBITMQ_URL="amqp://u:p@rabbitmq:5672/",
            SMTP_URL="smtp://smtp.example.com:587",
        )
    for variable in settings_variables():
        monkeypatch.delenv(variable, raising=False)
    for variable, value in values.items():
        monkeypatch.setenv(variable, value)
    return Settings()


def test_dev_runs_with_development_settings_against_the_operators_services(monkeypatch) -> None:
    objects = by_identity(kustomize(DEPLOY / "overlays" / "dev"))
    settings = settings_of("dev", objects, monkeypatch)
    assert settings.environment == "development"
    database, broker = urlsplit(settings.database_url), urlsplit(settings.rabbitmq_url)
    assert database.hostname == f"{objects['Cluster', 'postgres']['metadata']['name']}-rw"
    credentials = objects["Secret", "postgres-credentials"]["stringData"]
    assert (database.username, database.password) == (credentials["username"], credentials["password"])
    bootstrap = objects["Cluster", "postgres"]["spec"]["bootstrap"]["initdb"]
    assert bootstrap["secret"]["name"] == "postgres-credentials" and database.path == f"/{bootstrap['database']}"
    assert broker.hostname == objects["RabbitmqCluster", "rabbitmq"]["metadata"]["name"]
    rabbit_config = objects["RabbitmqCluster", "rabbitmq"]["spec"]["rabbitmq"]["additionalConfig"]
    assert f"default_user = {broker.username}" in rabbit_config and f"default_pass = {broker.password}" in rabbit_config
    smtp = urlsplit(settings.smtp_url)
    mailpit_ports = {p["name"]: p["port"] for p in objects["Service", "mailpit"]["spec"]["ports"]}
    assert (smtp.hostname, smtp.port) == ("mailpit", mailpit_ports["smtp"])


def test_prod_is_production_and_holds_no_development_secret(monkeypatch) -> None:
    objects = by_identity(kustomize(DEPLOY / "overlays" / "prod"))
    provided = config(objects)
    assert provided["TILLIT_ENV"] == "production"
    assert provided["TILLIT_DEV_SIGNIN"] == "false"
    assert provided["PUBLIC_URL"].startswith("https://")
    assert ("Secret", "tillit-secrets") not in objects, "production secrets are not kept in git"
    assert not [key for key, obj in objects.items() if key[0] == "Secret"], "no Secret at all in prod"
    text = yaml.safe_dump_all(list(objects.values()))
    for development in (DEVELOPMENT_JWT_SECRET, DEVELOPMENT_UNSUBSCRIBE_SECRET, "tillit-dev", "guest"):
        assert development not in text, f"prod carries the development value {development!r}"
    assert all(not value for value in secret_keys("prod", objects).values()), "the example must not hold values"
    settings = settings_of("prod", objects, monkeypatch)
    assert settings.environment == "production" and not settings.dev_signin_enabled
    monkeypatch.setenv("UNSUBSCRIBE_SECRET", DEVELOPMENT_UNSUBSCRIBE_SECRET)
    with pytest.raises(ValueError, match="UNSUBSCRIBE_SECRET"):
        Settings()
    assert objects["RabbitmqCluster", "rabbitmq"]["spec"]["replicas"] == 3, "quorum queues need three nodes"
    assert objects["Cluster", "postgres"]["spec"]["instances"] >= 2
    assert objects["Ingress", "gateway"]["spec"]["tls"], "prod serves HTTPS"
    for scaler in of_kind(objects, "ScaledObject").values():
        assert scaler["spec"]["minReplicaCount"] >= 2
    for hpa in of_kind(objects, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["minReplicas"] >= 2


def test_overlays_set_their_namespace_image_tag_and_host(overlay) -> None:
    name, objects = overlay
    namespaces = {obj["metadata"].get("namespace") for obj in objects.values()}
    assert len(namespaces) == 1 and None not in namespaces
    images = set()
    for workload in [*of_kind(objects, "Deployment").values(), *of_kind(objects, "Job").values()]:
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if container["name"] == "app":
                images.add(container["image"])
    assert len(images) == 1, "every service and the migration run the one image"
    [image] = images
    tag = image.rsplit(":", 1)[1]
    assert tag == "dev" if name == "dev" else tag[0].isdigit(), f"{name} runs {image}"
    job = objects["Job", "migrate"]["spec"]["template"]["spec"]["containers"][0]
    assert job["args"] == ["python", "-m", "tillit", "migrate"]
    host = objects["Ingress", "gateway"]["spec"]["rules"][0]["host"]
    assert urlsplit(config(objects)["PUBLIC_URL"]).hostname == host, "emails link to where the Ingress answers"


def test_the_operators_resources_are_referenced(overlay) -> None:
    _, objects = overlay
    rabbitmq = objects["RabbitmqCluster", "rabbitmq"]
    assert rabbitmq["apiVersion"] == "rabbitmq.com/v1beta1"
    assert rabbitmq["spec"]["image"].startswith("rabbitmq:4"), "production runs RabbitMQ 4.x"
    postgres = objects["Cluster", "postgres"]
    assert postgres["apiVersion"] == "postgresql.cnpg.io/v1"
    assert int(postgres["spec"]["imageName"].rsplit(":", 1)[1].split(".")[0]) >= 15, "NULLS NOT DISTINCT"
    assert objects["TriggerAuthentication", "rabbitmq-queue-length"]["apiVersion"] == "keda.sh/v1alpha1"
