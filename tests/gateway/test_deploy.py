"""The gateway's manifests (deploy/components/gateway) and API keys in the cluster overlay
(deploy/components/api-keys, in deploy/overlays/gpu): rendered by the pinned kubectl, validated strictly,
and read back through the components' own settings loaders."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import GatewayConfig
from servers.common.settings import load_settings
from tests.deploy.test_manifests import (
    KUBERNETES_VERSIONS,
    ORCHESTRATOR,
    container_environment,
    effective_config,
    find,
    main_container,
    render_with_components,
    rendered,
    secret_references,
    validation_errors,
)


@pytest.fixture(scope="module")
def with_gateway(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    return render_with_components(tmp_path_factory.mktemp("site"), "gpu", ["gateway"])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_gateway_component_validates_strictly(with_gateway: list[dict[str, object]], version: str) -> None:
    assert validation_errors(with_gateway, version) == []


def test_the_gateway_reaches_the_orchestrators_grpc_port_and_holds_no_secret(
    with_gateway: list[dict[str, object]],
) -> None:
    deployment = find(with_gateway, "Deployment", "gateway")
    container = main_container(deployment)
    env = container_environment(with_gateway, container)
    assert all(name.removeprefix("INPAINT_GATEWAY_").lower() in GatewayConfig.model_fields for name in env
               if name.startswith("INPAINT_GATEWAY_"))  # fmt: skip
    config = load_settings(GatewayConfig, [], env)
    orchestrator = find(with_gateway, "Service", "orchestrator")
    namespace = orchestrator["metadata"]["namespace"]
    assert deployment["metadata"]["namespace"] == namespace
    grpc_port = next(p["port"] for p in orchestrator["spec"]["ports"] if p["name"] == "grpc")
    assert config.orchestrator == f"orchestrator.{namespace}.svc.cluster.local:{grpc_port}"
    assert config.host == "0.0.0.0"
    service = find(with_gateway, "Service", "gateway")
    assert {p["port"] for p in service["spec"]["ports"]} == {config.port}
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert not secret_references(deployment["spec"]["template"]["spec"]), "the gateway forwards keys, holds none"


def test_api_keys_are_required_in_the_cluster_overlay_and_read_from_a_mounted_secret() -> None:
    docs = rendered("gpu")
    deployment = find(docs, "Deployment", "orchestrator")
    container = main_container(deployment)
    config = effective_config(ORCHESTRATOR, container_environment(docs, container))
    assert config.auth.mode == "api_key"
    assert config.auth.key_file is not None
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "api-keys"]
    (source,) = volume["projected"]["sources"]
    assert source["secret"]["name"] == "inpaint-api-keys"
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "api-keys"]
    assert mount["readOnly"] is True
    assert Path(config.auth.key_file) == Path(mount["mountPath"]) / source["secret"]["items"][0]["path"]
    assert not [d for d in docs if d["kind"] == "Secret"], "the keys live only in the cluster"


def test_the_dev_overlay_keeps_auth_off() -> None:
    docs = rendered("dev")
    container = main_container(find(docs, "Deployment", "orchestrator"))
    assert effective_config(ORCHESTRATOR, container_environment(docs, container)).auth.mode == "none"
