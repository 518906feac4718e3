"""prefect.yaml and deployments/ are checked by parsing (no Docker engine or server here)."""

from __future__ import annotations

import importlib
import inspect

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
