"""Where the orchestrator keeps its operations in the rendered manifests (deploy/).

The orchestrator runs tasks as durable operations (orchestrator/operations/): a database and an image blob
store. In the cluster (the gpu overlay, 2 to 10 replicas) every replica must share them, so the
operations-store component gives the database URL from a Secret and the object store from a ConfigMap; a
single pod (the base alone, the dev overlay) keeps SQLite and local blobs, but on a writable volume, since
the root filesystem is read-only. The settings are checked as the orchestrator's own loader reads them, so
a renamed setting breaks these tests; and the drain on SIGTERM must end before the kubelet's SIGKILL.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

import pytest

from orchestrator.config import OrchestratorConfig
from orchestrator.operations.config import OperationsConfig
from servers.common.settings import load_settings
from tests.deploy.test_manifests import (
    CONTAINERS,
    DEPLOY,
    OVERLAYS,
    Doc,
    container_environment,
    find,
    instructions,
    kustomize,
    main_container,
    of_kind,
    pinned_kubectl,
    rendered,
)

OPERATIONS_PREFIX = "INPAINT_OPERATIONS__"
DATABASE_SECRET = ("inpaint-operations-db", "database-url")
BLOB_CREDENTIALS_SECRET = "inpaint-blob-credentials"
# What the Secret inpaint-operations-db holds in a cluster (created out of band, never rendered).
DATABASE_URL = "postgresql://inpaint:s3cret@postgres-rw.inpaint.svc.cluster.local:5432/inpaint"
# The settings the operations-store component gives the cluster's orchestrator.
CLUSTER_SETTINGS = {"DATABASE_URL", "BLOB_URL", "S3_ENDPOINT_URL", "S3_REGION", "STATE_DIR"}
# After the drain grace, the service stops the gRPC server (servers/common/server.py: `stop(1.0)`) and hands
# its unfinished tasks back (orchestrator/operations/engine.py, `stop`: one heartbeat write, DBOS.destroy).
HAND_BACK_S = 10.0


@functools.cache
def _rendered_base() -> tuple[Doc, ...]:
    return tuple(kustomize(pinned_kubectl(), DEPLOY / "base"))


def rendered_variant(variant: str) -> list[Doc]:
    """An overlay, or the base on its own (what a pod gets when no overlay sets anything)."""
    return list(_rendered_base()) if variant == "base" else rendered(variant)


def resolved_environment(docs: list[Doc], container: Doc, secrets: Mapping[tuple[str, str], str]) -> dict[str, str]:
    """The container's variables as the kubelet sets them: literals, ConfigMaps (whole or by key), and the
    Secrets' values from `secrets` (a required Secret missing there fails; an optional one is left unset)."""
    env = container_environment(docs, container)
    config_maps = {d["metadata"]["name"]: d for d in of_kind(docs, "ConfigMap")}
    for variable in container.get("env", []):
        source = variable.get("valueFrom", {})
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            assert ref["name"] in config_maps, f"{variable['name']}: no ConfigMap {ref['name']} rendered"
            env[variable["name"]] = config_maps[ref["name"]]["data"][ref["key"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if (ref["name"], ref["key"]) in secrets:
                env[variable["name"]] = secrets[(ref["name"], ref["key"])]
            else:
                assert ref.get("optional"), f"{variable['name']}: unexpected required Secret {ref['name']}"
    return env


def orchestrator_settings(docs: list[Doc]) -> OrchestratorConfig:
    """The orchestrator's settings as its own loader builds them from the pod's environment."""
    container = main_container(find(docs, "Deployment", "orchestrator"))
    env = resolved_environment(docs, container, {DATABASE_SECRET: DATABASE_URL})
    return load_settings(OrchestratorConfig, [], env)


def image_workdir() -> PurePosixPath:
    """The orchestrator image's working directory: its final stage's last WORKDIR, `/` without one."""
    steps = instructions(CONTAINERS / "orchestrator.Dockerfile")
    final_stage = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    workdirs = [args for word, args in final_stage if word == "WORKDIR"]
    return PurePosixPath(workdirs[-1]) if workdirs else PurePosixPath("/")


def writable_volume_at(deployment: Doc, path: PurePosixPath) -> str | None:
    """The writable volume (emptyDir or claim) the main container has mounted over `path`, if any."""
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    container = main_container(deployment)
    for mount in container.get("volumeMounts", []):
        mount_path = PurePosixPath(mount["mountPath"])
        if (path == mount_path or mount_path in path.parents) and not mount.get("readOnly"):
            volume = volumes[mount["name"]]
            if "emptyDir" in volume or "persistentVolumeClaim" in volume:
                return str(mount["name"])
    return None


def operations_variables(docs: list[Doc]) -> set[str]:
    """Every INPAINT_OPERATIONS__* name the orchestrator gets, from env entries or whole ConfigMaps."""
    container = main_container(find(docs, "Deployment", "orchestrator"))
    names = {e["name"] for e in container.get("env", [])} | set(container_environment(docs, container))
    return {n for n in names if n.startswith(OPERATIONS_PREFIX)}


# ---------------------------------------------------------------- the cluster: shared operations


def test_the_cluster_reads_the_database_url_from_its_secret() -> None:
    container = main_container(find(rendered("gpu"), "Deployment", "orchestrator"))
    env = {e["name"]: e for e in container["env"]}
    ref = env["INPAINT_OPERATIONS__DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == DATABASE_SECRET
    assert not ref.get("optional"), "without the database the pod waits rather than keeping tasks to itself"
    assert "value" not in env["INPAINT_OPERATIONS__DATABASE_URL"], "the password is written in no manifest"
    # The Secrets are created out of band: a rendered placeholder would overwrite them at every apply.
    assert not of_kind(rendered("gpu"), "Secret")
    # boto3's standard variables, from a Secret that may be absent (IRSA, EKS Pod Identity: no keys).
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        key_ref = env[name]["valueFrom"]["secretKeyRef"]
        assert key_ref == {"name": BLOB_CREDENTIALS_SECRET, "key": name, "optional": True}


def test_the_cluster_shares_one_database_and_one_object_store() -> None:
    docs = rendered("gpu")
    operations = orchestrator_settings(docs).operations
    assert operations.database_url == DATABASE_URL
    container = main_container(find(docs, "Deployment", "orchestrator"))
    env = {e["name"]: e for e in container["env"]}
    config_map_name = operations_config_map_name(docs)  # hashed: editing the store rolls the pods
    for setting in ("BLOB_URL", "S3_ENDPOINT_URL", "S3_REGION"):
        assert env[f"{OPERATIONS_PREFIX}{setting}"]["valueFrom"]["configMapKeyRef"]["name"] == config_map_name
    data = find(docs, "ConfigMap", config_map_name)["data"]
    assert data["blob-url"].startswith("s3://")
    # By name, not attribute: the object store's fields are newer than this test's first version.
    settings = dataclasses.asdict(operations)
    assert settings["blob_url"] == data["blob-url"]
    assert settings["s3_region"] == data["s3-region"]
    assert not settings["s3_endpoint_url"], "empty by default: AWS S3"
    # The operator edits these before applying; the placeholders are marked.
    assert "REPLACE-ME" in data["blob-url"] and "REPLACE-ME" in data["s3-region"]
    # Each pod is its own executor (host name + random suffix): no fixed id that a new pod could reuse.
    assert f"{OPERATIONS_PREFIX}EXECUTOR_ID" not in env and operations.executor_id == ""


def operations_config_map_name(docs: list[Doc]) -> str:
    (name,) = [
        d["metadata"]["name"]
        for d in of_kind(docs, "ConfigMap")
        if d["metadata"]["name"].startswith("inpaint-operations-store-")
    ]
    return str(name)


# ---------------------------------------------------------------- every variant: a writable state_dir


@pytest.mark.parametrize("variant", ["base", *OVERLAYS])
def test_state_dir_is_on_a_writable_volume(variant: str) -> None:
    """The root filesystem is read-only: the operations' state_dir (and, where they are local, the SQLite
    file and the blobs) must lie on a mounted writable volume, or the service cannot start."""
    docs = rendered_variant(variant)
    deployment = find(docs, "Deployment", "orchestrator")
    assert main_container(deployment)["securityContext"]["readOnlyRootFilesystem"] is True
    config = orchestrator_settings(docs)
    operations = config.operations
    paths = {"state_dir": operations.resolved_state_dir(config.port)}
    if operations.resolved_database_url(config.port).startswith("sqlite:///"):
        paths["the SQLite file's folder"] = paths["state_dir"]
        paths["blob_root"] = operations.resolved_blob_root(config.port)
    for what, path in paths.items():
        absolute = image_workdir() / PurePosixPath(path)  # a relative path starts at the image's WORKDIR
        assert writable_volume_at(deployment, absolute), f"{variant}: {what} {absolute} is on the read-only root"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_replicas_share_operations_or_run_alone(overlay: str) -> None:
    """SQLite in a pod is that pod's alone: an overlay that keeps it never runs a second orchestrator."""
    docs = rendered(overlay)
    database_url = orchestrator_settings(docs).operations.resolved_database_url(50050)
    hpa = find(docs, "HorizontalPodAutoscaler", "orchestrator")
    replicas = find(docs, "Deployment", "orchestrator")["spec"]["replicas"]
    if database_url.startswith("sqlite:///"):
        assert replicas == 1 and hpa["spec"]["maxReplicas"] == 1, f"{overlay}: replicas with separate operations"
    else:
        assert database_url.startswith("postgresql://")
        assert hpa["spec"]["minReplicas"] >= 2, f"{overlay}: a shared store is for several replicas"


# ---------------------------------------------------------------- names and the drain


@pytest.mark.parametrize("variant", ["base", *OVERLAYS])
def test_operations_variables_are_settings(variant: str) -> None:
    """Each INPAINT_OPERATIONS__X names a field of OperationsConfig, so a renamed setting fails here
    rather than in the cluster, where the loader would refuse it and the pod would not start."""
    fields = {f.name for f in dataclasses.fields(OperationsConfig)}
    names = operations_variables(rendered_variant(variant))
    assert f"{OPERATIONS_PREFIX}STATE_DIR" in names
    if variant == "gpu":
        assert {n.removeprefix(OPERATIONS_PREFIX) for n in names} == CLUSTER_SETTINGS
    for name in names:
        setting = name.removeprefix(OPERATIONS_PREFIX).lower()
        assert setting in fields, f"{variant}: {name} names no field of OperationsConfig ({sorted(fields)})"


@pytest.mark.parametrize("variant", ["base", *OVERLAYS])
def test_the_drain_hands_tasks_back_before_the_kubelet_kills(variant: str) -> None:
    docs = rendered_variant(variant)
    pod: dict[str, Any] = find(docs, "Deployment", "orchestrator")["spec"]["template"]["spec"]
    drain_grace_s = orchestrator_settings(docs).drain_grace_s
    assert drain_grace_s > 0, "running tasks get time to finish before they are handed back"
    assert pod["terminationGracePeriodSeconds"] >= drain_grace_s + HAND_BACK_S, (
        f"{variant}: drain {drain_grace_s} s + hand-back {HAND_BACK_S} s exceeds the grace period"
    )
