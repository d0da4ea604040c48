"""The deploy manifests agree with the service registry (shared/registry.py): one list of services,
whatever file an operator opens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.registry import SERVICES, ServiceSpec

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_compose_runs_each_service_on_its_port(spec: ServiceSpec) -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    service = compose["services"][spec.name]
    assert service["command"] == ["python", "-m", spec.module]
    assert service["ports"] == [f"{spec.port}:{spec.port}"]


def test_compose_has_no_service_the_registry_lacks() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    running = {name for name, s in compose["services"].items()
               if any(str(part).startswith("services.") for part in s.get("command", []))}
    assert running == {s.name for s in SERVICES}


def test_prometheus_scrapes_every_service_on_its_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    assert {f"{s.name}:{s.port}" for s in SERVICES} <= targets


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_kubernetes_manifest_uses_the_registry_port(spec: ServiceSpec) -> None:
    docs = _load_all(DEPLOY / "k8s" / f"{spec.name}.yaml")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["command"][-1] == spec.module or spec.module in container.get("args", container["command"])
    assert [p["containerPort"] for p in container["ports"]] == [spec.port]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(spec.port)
    service = next(d for d in docs if d["kind"] == "Service")
    assert [p["port"] for p in service["spec"]["ports"]] == [spec.port]
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text(encoding="utf-8"))
    assert f"{spec.name}.yaml" in kustomization["resources"]


def test_healthcheck_reads_the_registry() -> None:
    import runpy

    module = runpy.run_path(str(DEPLOY / "healthcheck.py"), run_name="healthcheck")
    assert module["PORTS"] == {s.name: s.port for s in SERVICES}


def test_the_image_binds_every_service_to_all_interfaces() -> None:
    """Services listen on 127.0.0.1 by default (safe for `make run`); in a container that is unreachable."""
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    for spec in SERVICES:
        assert f"{spec.env_prefix}HOST=0.0.0.0" in dockerfile
