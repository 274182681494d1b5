"""A structural schema of the Kubernetes, KEDA and Kustomize objects under ops/k8s.

Each kind is a msgspec Struct with the fields the manifests use, typed as the API types them, and
unknown fields rejected: a misspelt `readinesProbe`, an unquoted number where the API wants a
string (an env value, a ConfigMap value, a KEDA trigger parameter), or a kind nobody expects all
fail `validate()`. It is a subset of the real schemas (apps/v1, v1, keda.sh/v1alpha1,
kustomize.config.k8s.io): a field the manifests start using is added here first.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Quantity = str | int  # "500m", "2Gi", 1
IntOrString = int | str


class Spec(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    pass


# ---- shared pieces -------------------------------------------------------------------------


class ObjectMeta(Spec):
    name: str
    namespace: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class TemplateMeta(Spec):
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class KeyRef(Spec):
    name: str
    key: str


class FieldRef(Spec):
    field_path: str


class EnvVarSource(Spec):
    secret_key_ref: KeyRef | None = None
    config_map_key_ref: KeyRef | None = None
    field_ref: FieldRef | None = None


class EnvVar(Spec):
    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None


class LocalRef(Spec):
    name: str


class EnvFromSource(Spec):
    config_map_ref: LocalRef | None = None
    secret_ref: LocalRef | None = None


class ContainerPort(Spec):
    container_port: int
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class HTTPGetAction(Spec):
    path: str
    port: IntOrString


class ExecAction(Spec):
    command: list[str]


class TCPSocketAction(Spec):
    port: IntOrString


class Probe(Spec):
    http_get: HTTPGetAction | None = None
    exec: ExecAction | None = None
    tcp_socket: TCPSocketAction | None = None
    initial_delay_seconds: int | None = None
    period_seconds: int | None = None
    timeout_seconds: int | None = None
    success_threshold: int | None = None
    failure_threshold: int | None = None


class LifecycleHandler(Spec):
    exec: ExecAction


class Lifecycle(Spec):
    pre_stop: LifecycleHandler | None = None
    post_start: LifecycleHandler | None = None


class ResourceRequirements(Spec):
    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}


class VolumeMount(Spec):
    name: str
    mount_path: str
    read_only: bool = False


class Container(Spec):
    name: str
    image: str
    command: list[str] = []
    args: list[str] = []
    env: list[EnvVar] = []
    env_from: list[EnvFromSource] = []
    ports: list[ContainerPort] = []
    startup_probe: Probe | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    lifecycle: Lifecycle | None = None
    resources: ResourceRequirements | None = None
    volume_mounts: list[VolumeMount] = []


class EmptyDirSource(Spec):
    medium: Literal["", "Memory"] | None = None
    size_limit: Quantity | None = None


class ClaimSource(Spec):
    claim_name: str
    read_only: bool = False


class Volume(Spec):
    name: str
    empty_dir: EmptyDirSource | None = None
    persistent_volume_claim: ClaimSource | None = None


class PodSecurityContext(Spec):
    run_as_non_root: bool | None = None
    run_as_user: int | None = None
    fs_group: int | None = None


class Toleration(Spec):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class PodSpec(Spec):
    containers: list[Container]
    termination_grace_period_seconds: int | None = None
    security_context: PodSecurityContext | None = None
    volumes: list[Volume] = []
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = []
    runtime_class_name: str | None = None


class PodTemplate(Spec):
    metadata: TemplateMeta
    spec: PodSpec


class LabelSelector(Spec):
    match_labels: dict[str, str]


class RollingUpdate(Spec):
    max_unavailable: IntOrString | None = None
    max_surge: IntOrString | None = None


class DeploymentStrategy(Spec):
    type: Literal["RollingUpdate", "Recreate"]
    rolling_update: RollingUpdate | None = None


class DeploymentSpec(Spec):
    selector: LabelSelector
    template: PodTemplate
    replicas: int | None = None
    revision_history_limit: int | None = None
    strategy: DeploymentStrategy | None = None


class ServicePort(Spec):
    port: int
    target_port: IntOrString
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class ServiceSpec(Spec):
    selector: dict[str, str]
    ports: list[ServicePort]
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"


class StorageRequest(Spec):
    requests: dict[Literal["storage"], Quantity]


class ClaimSpec(Spec):
    access_modes: list[Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]]
    resources: StorageRequest
    storage_class_name: str | None = None
    volume_name: str | None = None


# ---- KEDA ----------------------------------------------------------------------------------


class ScaleTargetRef(Spec):
    name: str
    kind: str | None = None
    api_version: str | None = None


class ScalingRules(Spec):
    stabilization_window_seconds: int


class Behavior(Spec):
    scale_up: ScalingRules | None = None
    scale_down: ScalingRules | None = None


class HPAConfig(Spec):
    behavior: Behavior


class Advanced(Spec):
    horizontal_pod_autoscaler_config: HPAConfig | None = None


class Trigger(Spec):
    type: str
    metadata: dict[str, str]
    name: str | None = None
    authentication_ref: LocalRef | None = None


class ScaledObjectSpec(Spec):
    scale_target_ref: ScaleTargetRef
    triggers: list[Trigger]
    min_replica_count: int | None = None
    max_replica_count: int | None = None
    polling_interval: int | None = None
    cooldown_period: int | None = None
    advanced: Advanced | None = None


class SecretTargetRef(Spec):
    parameter: str
    name: str
    key: str


class TriggerAuthenticationSpec(Spec):
    secret_target_ref: list[SecretTargetRef]


# ---- Kustomize -----------------------------------------------------------------------------


class PatchTarget(Spec):
    kind: str | None = None
    name: str | None = None
    group: str | None = None
    version: str | None = None
    label_selector: str | None = None


class Image(Spec):
    name: str
    new_name: str | None = None
    new_tag: str | None = None
    digest: str | None = None


class Patch(Spec):
    path: str | None = None
    patch: str | None = None
    target: PatchTarget | None = None


# ---- the kinds -----------------------------------------------------------------------------


class Resource(Spec, tag_field="kind", tag=True):
    """A document; its `kind` is the class name."""


class Deployment(Resource):
    api_version: Literal["apps/v1"]
    metadata: ObjectMeta
    spec: DeploymentSpec


class Service(Resource):
    api_version: Literal["v1"]
    metadata: ObjectMeta
    spec: ServiceSpec


class ConfigMap(Resource):
    api_version: Literal["v1"]
    metadata: ObjectMeta
    data: dict[str, str] = {}


class Secret(Resource):
    api_version: Literal["v1"]
    metadata: ObjectMeta
    type: str = "Opaque"
    string_data: dict[str, str] = {}
    data: dict[str, str] = {}


class PersistentVolumeClaim(Resource):
    api_version: Literal["v1"]
    metadata: ObjectMeta
    spec: ClaimSpec


class ScaledObject(Resource):
    api_version: Literal["keda.sh/v1alpha1"]
    metadata: ObjectMeta
    spec: ScaledObjectSpec


class TriggerAuthentication(Resource):
    api_version: Literal["keda.sh/v1alpha1"]
    metadata: ObjectMeta
    spec: TriggerAuthenticationSpec


class Kustomization(Resource):
    api_version: Literal["kustomize.config.k8s.io/v1beta1"]
    resources: list[str] = []
    components: list[str] = []
    patches: list[Patch] = []
    images: list[Image] = []
    namespace: str | None = None


class Component(Resource):
    api_version: Literal["kustomize.config.k8s.io/v1alpha1"]
    resources: list[str] = []
    patches: list[Patch] = []


Document = (
    Deployment
    | Service
    | ConfigMap
    | Secret
    | PersistentVolumeClaim
    | ScaledObject
    | TriggerAuthentication
    | Kustomization
    | Component
)


def validate(raw: Any) -> Document:
    """The document as its kind's Struct; raises msgspec.ValidationError naming the bad field."""
    return msgspec.convert(raw, Document)
