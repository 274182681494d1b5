"""The Kubernetes + KEDA manifests (ops/k8s): every document matches the schema of its kind
(k8s_schema.py), runs the Dockerfile's image, and agrees with the runtime: stream and group names,
drain time, probes, the stages of each mode. With `kubectl` on PATH each overlay is also rendered
by kustomize and checked again as a whole."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from queues.config import from_env
from queues.keys import Keys
from queues.transfer.config import TransferConfig
from queues.types import MODES, STAGES, Mode, stages
from tests.unit.ops.k8s_schema import (
    Component,
    ConfigMap,
    Container,
    Deployment,
    Document,
    Kustomization,
    PersistentVolumeClaim,
    ScaledObject,
    Secret,
    Service,
    TriggerAuthentication,
    validate,
)
from workers.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "ops" / "k8s"


def yaml_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def load(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def documents(under: Path = K8S) -> Iterator[tuple[Path, Document]]:
    for path in sorted(under.rglob("*.yaml")):
        for raw in load(path):
            yield path, validate(raw)


def of_kind(kind: type[Any], under: Path = K8S) -> dict[str, Any]:
    """Objects of one kind by name (kustomization files by directory)."""
    found: dict[str, Any] = {}
    for path, doc in documents(under):
        if isinstance(doc, kind):
            key = str(path.parent.relative_to(K8S)) if isinstance(doc, Kustomization) else doc.metadata.name
            found.setdefault(key, doc)
    return found


def dockerfile_image() -> str:
    text = (ROOT / "ops" / "Dockerfile").read_text()
    [label] = re.findall(r'io\.triptych\.image="([^"]+)"', text)
    assert f"docker build -f ops/Dockerfile -t {label} ." in text  # the documented build names it too
    return label


def images(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image":
                yield value
            yield from images(value)
    elif isinstance(node, list):
        for item in node:
            yield from images(item)


CONFIG = of_kind(ConfigMap)["triptych-config"].data
REDIS_IMAGE = re.compile(r"^redis:7\.\d+(-alpine)?$")


# ---- every file ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_document_matches_its_schema(path: Path):
    docs = load(path)
    assert docs, f"{path} is empty"
    for raw in docs:
        try:
            validate(raw)
        except msgspec.ValidationError as exc:
            raise AssertionError(f"{path.relative_to(ROOT)}: {raw.get('kind')}: {exc}") from None


def test_schema_rejects_typos_and_unquoted_values():
    deployment = load(K8S / "stages" / "encode" / "deployment.yaml")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("ports")
    with pytest.raises(msgspec.ValidationError, match="readinesProbe"):
        validate(deployment)
    scaled = load(K8S / "stages" / "encode" / "scaledobject.yaml")[0]
    scaled["spec"]["triggers"][0]["metadata"]["lagCount"] = 8
    with pytest.raises(msgspec.ValidationError, match="Expected `str`"):
        validate(scaled)


def test_every_image_is_the_dockerfiles_or_redis():
    image = dockerfile_image()
    found = {found for path in yaml_files() for raw in load(path) for found in images(raw)}
    assert image in found
    assert all(name == image or REDIS_IMAGE.match(name) for name in found), found


def test_kustomizations_name_files_that_exist():
    for path in K8S.rglob("kustomization.yaml"):
        [doc] = load(path)
        listed = doc.get("resources", []) + doc.get("components", [])
        listed += [patch["path"] for patch in doc.get("patches", []) if "path" in patch]
        for entry in listed:
            assert (path.parent / entry).exists(), (
                f"{path.relative_to(ROOT)} names {entry}, which does not exist"
            )
        if "patches" not in doc and "components" not in doc:  # a plain list: every yaml beside it is used
            siblings = {p.name for p in path.parent.glob("*.yaml")} - {"kustomization.yaml"}
            assert siblings <= set(listed), f"{path.parent} has files no kustomization uses"


# ---- the stages ----------------------------------------------------------------------------


def stage_objects(stage: str) -> tuple[Deployment, ScaledObject]:
    directory = K8S / "stages" / stage
    return of_kind(Deployment, directory)[f"triptych-{stage}"], of_kind(ScaledObject, directory)[
        f"triptych-{stage}"
    ]


def normalized(stage: str) -> str:
    text = "".join(
        (K8S / "stages" / stage / name).read_text() for name in ("deployment.yaml", "kustomization.yaml")
    )
    return re.sub(rf"\b{re.escape(stage)}\b", "STAGE", text.split("\napiVersion", 1)[1])


@pytest.mark.parametrize("stage", STAGES)
def test_stage_deployment_runs_its_worker_and_drains(stage: str):
    deployment, _ = stage_objects(stage)
    pod = deployment.spec.template.spec
    [container] = pod.containers
    assert container.command == ["python", "-m", f"workers.{stage}"]
    assert deployment.spec.selector.match_labels.items() <= deployment.spec.template.metadata.labels.items()
    assert [e.config_map_ref.name for e in container.env_from if e.config_map_ref] == ["triptych-config"]
    env = {var.name: var for var in container.env}
    assert env["CONSUMER_NAME"].value_from and env["CONSUMER_NAME"].value_from.field_ref
    assert {"REDIS_URL", "REDIS_ADDRESS"} <= env.keys()  # REDIS_ADDRESS: KEDA's addressFromEnv
    grace = float(CONFIG["QUEUE_GRACE_S"])
    assert pod.termination_grace_period_seconds is not None
    assert grace < pod.termination_grace_period_seconds <= grace + 30  # drain, then settle and close


def test_stage_deployments_differ_only_by_their_stage():
    first = normalized(STAGES[0])
    for stage in STAGES[1:]:
        assert normalized(stage) == first, f"stages/{stage} drifted from stages/{STAGES[0]}"


@pytest.mark.parametrize("stage", STAGES)
def test_scaled_object_reads_the_stages_stream(stage: str):
    deployment, scaled = stage_objects(stage)
    spec = scaled.spec
    assert spec.scale_target_ref.name == deployment.metadata.name
    assert spec.min_replica_count is not None and spec.min_replica_count >= 1  # lag may be null: never 0
    assert spec.max_replica_count is not None and spec.max_replica_count >= spec.min_replica_count
    keys = Keys(CONFIG["KEY_PREFIX"])
    assert {t.type for t in spec.triggers} == {"redis-streams"}
    assert all(t.metadata["stream"] == keys.stream(stage) for t in spec.triggers)
    assert all(t.metadata["addressFromEnv"] == "REDIS_ADDRESS" for t in spec.triggers)
    assert all(t.authentication_ref and t.authentication_ref.name == "triptych-redis" for t in spec.triggers)
    by_signal = {
        signal: t
        for t in spec.triggers
        for signal in ("lagCount", "pendingEntriesCount")
        if signal in t.metadata
    }
    assert by_signal.keys() == {"lagCount", "pendingEntriesCount"}
    assert all(t.metadata["consumerGroup"] == keys.group(stage) for t in by_signal.values())
    assert all(int(t.metadata[signal]) >= 1 for signal, t in by_signal.items())
    behavior = spec.advanced and spec.advanced.horizontal_pod_autoscaler_config
    assert (
        behavior
        and behavior.behavior.scale_down
        and behavior.behavior.scale_down.stabilization_window_seconds > 0
    )


def test_watch_only_autoscaler_mirrors_the_scaled_objects():
    deployment = of_kind(Deployment)["triptych-autoscaler"]
    env = {var.name: var.value for var in deployment.spec.template.spec.containers[0].env}
    assert env["AUTOSCALE_SPAWN"] == "false"
    limits = dict(entry.split("=") for entry in (env["AUTOSCALE_LIMITS"] or "").split(","))
    for stage in STAGES:
        _, scaled = stage_objects(stage)
        [length] = [t.metadata["streamLength"] for t in scaled.spec.triggers if "streamLength" in t.metadata]
        spec = scaled.spec
        assert limits[stage] == f"{spec.min_replica_count}:{spec.max_replica_count}:{length}", stage
        behavior = spec.advanced and spec.advanced.horizontal_pod_autoscaler_config
        assert behavior and behavior.behavior.scale_down
        assert (
            float(env["AUTOSCALE_COOLDOWN_S"] or 0)
            == behavior.behavior.scale_down.stabilization_window_seconds
        )


# ---- the front door, Redis, configuration --------------------------------------------------


def test_front_door_probes_and_service():
    deployment = of_kind(Deployment)["triptych-app"]
    [container] = deployment.spec.template.spec.containers
    [port] = container.ports
    env = {var.name: var.value for var in container.env}
    assert env["PORT"] == str(port.container_port) and env["HOST"] == "0.0.0.0"
    liveness = container.liveness_probe
    assert liveness.http_get.path == "/health" and liveness.http_get.port == port.name
    # /ready is guarded by API keys like every route but /health: the probe sends one (app/probe.py)
    assert container.readiness_probe.exec.command == ["python", "-m", "app.probe"]
    service = of_kind(Service)["triptych"]
    assert service.spec.selector.items() <= deployment.spec.template.metadata.labels.items()
    assert [p.target_port for p in service.spec.ports] == [port.name]


def test_every_secret_and_config_reference_is_defined():
    keys = {
        name: set(secret.string_data)
        for name, secret in of_kind(Secret, K8S / "components" / "redis").items()
    }
    for variant in ("redis", "external-redis"):
        [secret] = of_kind(Secret, K8S / "components" / variant).values()
        assert set(secret.string_data) == keys["triptych-redis"], variant
    for deployment in of_kind(Deployment).values():
        for container in deployment.spec.template.spec.containers:
            for var in container.env:
                ref = var.value_from and (var.value_from.secret_key_ref or var.value_from.config_map_key_ref)
                if ref:
                    assert ref.key in keys.get(ref.name, set()) | set(CONFIG), (deployment.metadata.name, ref)
    [auth] = of_kind(TriggerAuthentication).values()
    assert {ref.key for ref in auth.spec.secret_target_ref} <= keys["triptych-redis"]


def test_bundled_redis_keeps_jobs():
    redis = of_kind(Deployment, K8S / "components" / "redis")["triptych-redis"]
    [container] = redis.spec.template.spec.containers
    args = " ".join(container.args)
    assert "--maxmemory-policy noeviction" in args  # the runtime refuses an evicting Redis
    assert "--appendonly yes" in args


@pytest.mark.parametrize("mode", MODES)
def test_overlay_runs_the_modes_stages(mode: Mode):
    [doc] = load(K8S / "overlays" / mode / "kustomization.yaml")
    stage_dirs = [entry.rsplit("/", 1)[1] for entry in doc["resources"] if "/stages/" in entry]
    assert stage_dirs == stages(mode)
    [patch] = doc["patches"]
    assert yaml.safe_load(patch["patch"]) == [{"op": "replace", "path": "/data/MODE", "value": mode}]


# ---- rendered by kustomize -----------------------------------------------------------------

KUBECTL = shutil.which("kubectl")


needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl (with its built-in kustomize) is not installed"
)


def render(directory: Path) -> list[Any]:
    """`kubectl kustomize directory`: the raw documents."""
    assert KUBECTL is not None
    out = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [raw for raw in yaml.safe_load_all(out.stdout) if raw]


@needs_kubectl
@pytest.mark.parametrize("mode", MODES)
def test_overlay_renders_a_consistent_install(mode: Mode):
    raws = render(K8S / "overlays" / mode)
    rendered = [validate(raw) for raw in raws]
    deployments = {d.metadata.name for d in rendered if isinstance(d, Deployment)}
    workers = {f"triptych-{stage}" for stage in stages(mode)}
    assert deployments == {"triptych-app", "triptych-autoscaler", "triptych-redis"} | workers
    scaled = [d for d in rendered if isinstance(d, ScaledObject)]
    assert {s.spec.scale_target_ref.name for s in scaled} == workers
    [config] = [d for d in rendered if isinstance(d, ConfigMap)]
    assert config.data["MODE"] == mode
    assert {image for raw in raws for image in images(raw)} <= {dockerfile_image(), "redis:7.2-alpine"}


# ---- GPUs: components/gpu, overlays/gpu ----------------------------------------------------

GPU = K8S / "components" / "gpu"
MODELS_CLAIM = "triptych-models"
GPU_RESOURCE = "nvidia.com/gpu"


def cuda_image() -> str:
    """The CUDA build's tag, as ops/Dockerfile documents building it."""
    image = f"{dockerfile_image()}-cuda"
    text = (ROOT / "ops" / "Dockerfile").read_text()
    assert f"docker build -f ops/Dockerfile -t {image}" in text
    assert "--build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu" in text
    return image


def test_gpu_overlay_is_e_p_d_with_the_gpu_component_and_the_cuda_image():
    overlay = validate(load(K8S / "overlays" / "gpu" / "kustomization.yaml")[0])
    assert isinstance(overlay, Kustomization)
    assert overlay.resources == ["../e-p-d"]
    assert overlay.components == ["../../components/gpu"]
    [image] = overlay.images
    assert f"{image.name}:{image.new_tag}" == cuda_image() and image.new_name is None


def test_gpu_component_patches_every_stage_but_nothing_else():
    component = validate(load(GPU / "kustomization.yaml")[0])
    assert isinstance(component, Component)
    selectors = [p.target.label_selector for p in component.patches if p.target and p.target.label_selector]
    [selector] = selectors
    found = re.fullmatch(
        r"app\.kubernetes\.io/name=triptych,app\.kubernetes\.io/component in \((.*)\)", selector
    )
    assert found and sorted(found.group(1).split(",")) == sorted(STAGES)
    [claim] = of_kind(PersistentVolumeClaim, GPU).values()
    assert claim.metadata.name == MODELS_CLAIM and claim.spec.access_modes == ["ReadOnlyMany"]


def gpu_install(mode: Mode, tmp_path: Path) -> list[Any]:
    """The rendered install of `mode` on GPUs: overlays/gpu for e-p-d; for the other modes, their
    overlay with the gpu component, as its comment says to add it."""
    if mode == "e-p-d":
        return render(K8S / "overlays" / "gpu")
    up = Path(os.path.relpath(K8S, tmp_path))  # kustomize takes relative paths only
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [str(up / "overlays" / mode)],
                "components": [str(up / "components" / "gpu")],
                "images": [{"name": "triptych", "newTag": cuda_image().split(":", 1)[1]}],
            }
        )
    )
    return render(tmp_path)


def environment(container: Container, config: dict[str, str]) -> dict[str, str]:
    """The container's variables with a plain value: the ConfigMap's, then its own `env`."""
    assert [e.config_map_ref.name for e in container.env_from if e.config_map_ref] == ["triptych-config"]
    return {**config, **{var.name: var.value for var in container.env if var.value is not None}}


def reads_model(container: Container) -> bool:
    """The front door and the stage workers read MODEL; the autoscaler does not."""
    return container.command[:2] == ["python", "-m"] and (
        container.command[2] == "app" or container.command[2].startswith("workers.")
    )


@needs_kubectl
@pytest.mark.parametrize("mode", MODES)
def test_gpu_install_gives_the_workers_a_gpu_and_everyone_the_checkpoint_read_only(mode: Mode, tmp_path):
    raws = gpu_install(mode, tmp_path)
    rendered = [validate(raw) for raw in raws]
    deployments = {d.metadata.name: d for d in rendered if isinstance(d, Deployment)}
    workers = {f"triptych-{stage}" for stage in stages(mode)}
    assert deployments.keys() == {"triptych-app", "triptych-autoscaler", "triptych-redis"} | workers
    [config] = [d.data for d in rendered if isinstance(d, ConfigMap)]
    assert config["MODE"] == mode
    claims = [d for d in rendered if isinstance(d, PersistentVolumeClaim)]
    assert [c.spec.access_modes for c in claims if c.metadata.name == MODELS_CLAIM] == [["ReadOnlyMany"]]
    assert {image for raw in raws for image in images(raw)} <= {cuda_image(), "redis:7.2-alpine"}

    with_gpu = set()
    for name, deployment in deployments.items():
        pod = deployment.spec.template.spec
        [container] = pod.containers
        limits = container.resources.limits if container.resources else {}
        if GPU_RESOURCE in limits:
            assert str(limits[GPU_RESOURCE]) == "1", name
            with_gpu.add(name)
        claimed = {
            v.name: v.persistent_volume_claim
            for v in pod.volumes
            if v.persistent_volume_claim and v.persistent_volume_claim.claim_name == MODELS_CLAIM
        }
        assert all(source.read_only for source in claimed.values()), name  # the pod's claim is read-only
        mounts = [m for m in container.volume_mounts if m.name in claimed]
        assert all(m.read_only for m in mounts), name  # and so is every mount of it
        if name == "triptych-redis":
            continue
        env = environment(container, config)
        if reads_model(container):  # MODEL lies on the claim, mounted read-only
            model = Path(env["MODEL"])
            assert any(model.is_relative_to(m.mount_path) for m in mounts), (name, env["MODEL"], mounts)
        if name in workers:
            assert (env["DEVICE"], env["DTYPE"], env["MAX_KV_TOKENS"]) == ("cuda", "auto", "auto"), name
            settings = from_env(WorkerSettings, env)  # what the worker will read, as it reads it
            assert settings.device == "cuda" and settings.max_kv_tokens == "auto"
            assert TransferConfig.from_env(env).transport in ("auto", "nixl", "redis")
            assert re.fullmatch(r"\d+-\d+", env["UCX_TCP_PORT_RANGE"]), name
        else:
            assert "DEVICE" not in env, name  # the front door and the autoscaler never touch a GPU
    assert with_gpu == workers  # GPUs on the stage workers only: not the front door, autoscaler, Redis
