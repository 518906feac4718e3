"""prefect.yaml and deployments/ are checked by parsing (no Docker engine or server here).

The compose stack, the CUDA image, the Helm values, the Kubernetes work-pool job
template and the DaskCluster manifest are parsed and cross-checked: services and
images exist, the environment the worker needs is set, names and addresses agree.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re

import pytest
import yaml

from asmspotter.settings import PROJECT_ROOT


def test_prefect_yaml_entrypoints_resolve_to_flows():
    config = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    names = {d["name"]: d for d in config["deployments"]}
    assert set(names) >= {"daily", "on-demand"}
    assert names["daily"]["schedules"][0]["cron"] == "0 6 * * *"
    for deployment in config["deployments"]:
        module_path, function = deployment["entrypoint"].split(":")
        module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, function)
        assert hasattr(flow, "fn"), f"{deployment['entrypoint']} is not a Prefect flow"
        parameters = inspect.signature(flow.fn).parameters
        assert set(deployment.get("parameters", {})) <= set(parameters)
        assert deployment["work_pool"]["name"] == "asmspotter-local"


def test_dockerfile_installs_the_cpu_torch_pin_and_starts_a_worker():
    dockerfile = (PROJECT_ROOT / "deployments" / "Dockerfile").read_text()
    assert "torch==2.13.0" in dockerfile
    assert 'CMD ["prefect", "worker", "start", "--pool", "asmspotter-local"' in dockerfile


# --------------------------------------------------------------------------------------
# deployments/: compose stack, CUDA image, Kubernetes examples (parsed; no engine here)
# --------------------------------------------------------------------------------------
DEPLOYMENTS = PROJECT_ROOT / "deployments"
KUBERNETES = DEPLOYMENTS / "kubernetes"
REPO_IMAGE = "asmspotter-worker:latest"
WORKER_ENV = {
    "ASMSPOTTER_DATABASE_URL",
    "ASMSPOTTER_DASK_SCHEDULER",
    "ASMSPOTTER_DATA_DIR",
    "PREFECT_API_URL",
}


def load_compose() -> dict:
    return yaml.safe_load((DEPLOYMENTS / "docker-compose.yml").read_text())


def test_every_deployment_file_parses():
    files = sorted(DEPLOYMENTS.rglob("*.y*ml")) + sorted(DEPLOYMENTS.rglob("*.json"))
    assert len(files) >= 5, files
    for path in files:
        text = path.read_text()
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        assert isinstance(document, dict), path


def test_compose_depends_on_names_existing_services():
    services = load_compose()["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_compose_runs_worker_and_dask_on_the_repo_image():
    services = load_compose()["services"]
    built = [s for s in services.values() if "build" in s]
    assert built and all(s["build"]["dockerfile"] == "deployments/Dockerfile" for s in built)
    assert all(s["image"] == REPO_IMAGE for s in built)
    dask = [n for n in services if n.startswith("dask-")]
    assert "dask-scheduler" in dask and len([n for n in dask if "worker" in n]) == 2
    for name in ["worker", *dask]:
        assert services[name]["image"] == REPO_IMAGE, name
    assert services["worker"]["command"][:3] == ["prefect", "worker", "start"]
    assert "asmspotter-local" in services["worker"]["command"]


@pytest.mark.parametrize("service", ["worker", "dask-scheduler", "dask-worker-1", "dask-worker-2"])
def test_compose_services_running_asmspotter_have_its_environment(service):
    services = load_compose()["services"]
    env = services[service]["environment"]
    assert set(env) >= WORKER_ENV
    assert env["ASMSPOTTER_DASK_SCHEDULER"] == "tcp://dask-scheduler:8786"
    assert env["ASMSPOTTER_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@store-db:5432/" in env["ASMSPOTTER_DATABASE_URL"]
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    # The composite is written by Dask workers into the run folder the worker reads.
    assert any(v.startswith("asmspotter-data:/data") for v in services[service]["volumes"])


def test_compose_prefect_server_uses_its_own_postgresql():
    services = load_compose()["services"]
    env = services["prefect-server"]["environment"]
    url = env["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert url.startswith("postgresql+asyncpg://") and "@prefect-db:5432/" in url
    assert services["prefect-server"]["depends_on"]["prefect-db"]["condition"] == "service_healthy"
    for name in ("prefect-db", "store-db", "prefect-server", "dask-scheduler"):
        assert "healthcheck" in services[name], name


def test_compose_host_ports_do_not_clash():
    host_ports = []
    for service in load_compose()["services"].values():
        for mapping in service.get("ports", []):
            host_ports.append(str(mapping).split(":")[-2] if ":" in str(mapping) else str(mapping))
    assert host_ports and len(host_ports) == len(set(host_ports)), host_ports


def test_cuda_dockerfile_uses_the_cuda_wheel_index_of_the_same_torch_pin():
    dockerfile = (DEPLOYMENTS / "Dockerfile.cuda").read_text()
    assert "https://download.pytorch.org/whl/${TORCH_CUDA} torch==2.13.0" in dockerfile
    assert re.search(r"ARG TORCH_CUDA=cu\d+", dockerfile)
    assert "--gpus all" in dockerfile and "nvidia" in dockerfile
    assert 'CMD ["prefect", "worker", "start", "--pool", "asmspotter-local"' in dockerfile


# Keys of Prefect's official Helm charts that our values files may set, looked up in
# github.com/PrefectHQ/prefect-helm (commit 75b0c2776ec0, Aug 2026):
# charts/prefect-server/values.yaml and charts/prefect-worker/values.yaml (both also
# validate against the charts' values.schema.json merged with their defaults).
# Dotted paths to leaves; a list value (e.g. `server.env`) is a leaf.
PREFECT_SERVER_KEYS = {
    "global.prefect.image.repository",
    "global.prefect.image.prefectTag",
    "global.prefect.image.pullPolicy",
    "server.uiConfig.prefectUiApiUrl",
    "server.resources.requests.cpu",
    "server.resources.requests.memory",
    "server.resources.limits.cpu",
    "server.resources.limits.memory",
    "server.env",
    "server.replicaCount",
    "postgresql.enabled",
    "postgresql.auth.database",
    "postgresql.auth.username",
    "postgresql.auth.password",
    "postgresql.primary.persistence.enabled",
    "externalDatabase.host",
    "externalDatabase.port",
    "externalDatabase.database",
    "externalDatabase.user",
    "externalDatabase.password",
    "externalDatabase.existingSecret",
}
PREFECT_WORKER_KEYS = {
    "worker.apiConfig",
    "worker.selfHostedServerApiConfig.apiUrl",
    "worker.image.repository",
    "worker.image.prefectTag",
    "worker.image.pullPolicy",
    "worker.config.workPool",
    "worker.config.workQueues",
    "worker.config.type",
    "worker.config.limit",
    "worker.config.baseJobTemplate.configuration",
    "worker.config.baseJobTemplate.existingConfigMapName",
    "worker.resources.requests.cpu",
    "worker.resources.requests.memory",
    "worker.resources.limits.cpu",
    "worker.resources.limits.memory",
    "worker.replicaCount",
    "worker.extraEnvVars",
}


def leaf_paths(values: dict, prefix: str = "") -> set[str]:
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            paths |= leaf_paths(value, f"{path}.")
        else:
            paths.add(path)
    return paths


@pytest.mark.parametrize(
    ("filename", "known"),
    [
        ("prefect-server-values.yaml", PREFECT_SERVER_KEYS),
        ("prefect-worker-values.yaml", PREFECT_WORKER_KEYS),
    ],
)
def test_helm_values_use_only_keys_of_the_prefect_charts(filename, known):
    values = yaml.safe_load((KUBERNETES / filename).read_text())
    unknown = leaf_paths(values) - known
    assert not unknown, f"{filename}: keys not in the prefect-helm chart: {sorted(unknown)}"


def test_helm_worker_values_point_at_the_self_hosted_server_and_kubernetes_pool():
    worker = yaml.safe_load((KUBERNETES / "prefect-worker-values.yaml").read_text())["worker"]
    assert worker["apiConfig"] == "selfHostedServer"
    assert worker["selfHostedServerApiConfig"]["apiUrl"].endswith(":4200/api")
    assert worker["config"]["type"] == "kubernetes"
    assert worker["config"]["workPool"] == "asmspotter-k8s"


def load_job_template() -> dict:
    return json.loads((KUBERNETES / "base-job-template.json").read_text())


def template_variables(node: object) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(template_variables(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(template_variables(v) for v in node))
    if isinstance(node, str):
        return set(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", node))
    return set()


def test_job_template_has_the_kubernetes_work_pool_shape():
    template = load_job_template()
    assert set(template) == {"job_configuration", "variables"}
    properties = template["variables"]["properties"]
    assert {"image", "namespace", "env"} <= set(properties)
    assert properties["namespace"]["default"] == "asmspotter"
    assert properties["image"]["default"].endswith("asmspotter-worker:latest")
    manifest = template["job_configuration"]["job_manifest"]
    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job"
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "{{ image }}"
    assert container["envFrom"] == [{"secretRef": {"name": "asmspotter-env"}}]


def test_job_template_declares_every_variable_it_uses():
    template = load_job_template()
    used = template_variables(template["job_configuration"])
    declared = set(template["variables"]["properties"])
    assert {"image", "namespace", "env", "command"} <= used
    assert used <= declared, f"undeclared: {sorted(used - declared)}"


def test_job_template_and_dask_cluster_agree_on_the_scheduler_address():
    env = load_job_template()["variables"]["properties"]["env"]["default"]
    cluster = yaml.safe_load((KUBERNETES / "dask-cluster.yaml").read_text())
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    # The operator names the scheduler Service <cluster name>-scheduler.
    assert env["ASMSPOTTER_DASK_SCHEDULER"] == (
        f"tcp://{name}-scheduler.{namespace}.svc.cluster.local:8786"
    )


def test_dask_cluster_manifest_for_the_operator():
    cluster = yaml.safe_load((KUBERNETES / "dask-cluster.yaml").read_text())
    assert cluster["apiVersion"] == "kubernetes.dask.org/v1"
    assert cluster["kind"] == "DaskCluster"
    assert cluster["metadata"]["name"]
    spec = cluster["spec"]
    assert isinstance(spec["worker"]["replicas"], int) and spec["worker"]["replicas"] >= 1
    workers = spec["worker"]["spec"]["containers"]
    schedulers = spec["scheduler"]["spec"]["containers"]
    images = {c["image"] for c in workers + schedulers}
    job_image = load_job_template()["variables"]["properties"]["image"]["default"]
    assert images == {job_image}, "scheduler, workers and flow-run Jobs must share one image"
    assert workers[0]["args"][:2] == ["dask", "worker"]
    assert schedulers[0]["args"][:2] == ["dask", "scheduler"]
    service = spec["scheduler"]["service"]
    assert service["selector"]["dask.org/cluster-name"] == cluster["metadata"]["name"]
    assert 8786 in {p["port"] for p in service["ports"]}


def test_served_deployments_never_share_a_name_with_worker_deployments():
    """A stopping serve pauses (and a starting one rewrites) its own deployments only."""
    from flows import serve

    config = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    deployed = {d["name"] for d in config["deployments"]}
    served = {serve.SERVED_DAILY, serve.SERVED_ON_DEMAND}
    assert served.isdisjoint(deployed)
    assert config["definitions"]["schedules"]["daily_check"]["cron"] == serve.DAILY_CRON
    assert config["definitions"]["schedules"]["daily_check"]["timezone"] == serve.DAILY_TIMEZONE
