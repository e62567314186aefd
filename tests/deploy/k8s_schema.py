"""A small, strict schema of the Kubernetes fields the bedside manifests use.

No API server (and so no `kubectl apply --dry-run`) is reachable offline, and no OpenAPI
schema ships with the tools here; these pydantic models stand in for the parts that matter:
unknown keys in containers, probes, security contexts and pod specs are errors (a typo such as
`readinessProbes` would otherwise be dropped silently by the API server), and scalar types are
the API's (an env value must be a string).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

API_VERSIONS = {
    "Namespace": "v1", "ServiceAccount": "v1", "Service": "v1", "Secret": "v1", "ConfigMap": "v1",
    "PersistentVolumeClaim": "v1", "Deployment": "apps/v1", "Job": "batch/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2", "PodDisruptionBudget": "policy/v1",
    "NetworkPolicy": "networking.k8s.io/v1", "Ingress": "networking.k8s.io/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class Metadata(Strict):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    namespace: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class Object(Loose):
    apiVersion: str
    kind: str
    metadata: Metadata


class HTTPGet(Strict):
    path: str
    port: int | str
    host: str | None = None
    scheme: str | None = None
    httpHeaders: list[dict] | None = None


class Probe(Strict):
    httpGet: HTTPGet | None = None
    exec: dict | None = None
    tcpSocket: dict | None = None
    grpc: dict | None = None
    initialDelaySeconds: int | None = None
    timeoutSeconds: int | None = None
    periodSeconds: int | None = None
    successThreshold: int | None = None
    failureThreshold: int | None = None
    terminationGracePeriodSeconds: int | None = None


class Capabilities(Strict):
    add: list[str] | None = None
    drop: list[str] | None = None


class SecurityContext(Strict):
    allowPrivilegeEscalation: bool | None = None
    appArmorProfile: dict | None = None
    capabilities: Capabilities | None = None
    privileged: bool | None = None
    procMount: str | None = None
    readOnlyRootFilesystem: bool | None = None
    runAsGroup: int | None = None
    runAsNonRoot: bool | None = None
    runAsUser: int | None = None
    seLinuxOptions: dict | None = None
    seccompProfile: dict | None = None
    windowsOptions: dict | None = None


class PodSecurityContext(Strict):
    appArmorProfile: dict | None = None
    fsGroup: int | None = None
    fsGroupChangePolicy: str | None = None
    runAsGroup: int | None = None
    runAsNonRoot: bool | None = None
    runAsUser: int | None = None
    seLinuxOptions: dict | None = None
    seccompProfile: dict | None = None
    supplementalGroups: list[int] | None = None
    supplementalGroupsPolicy: str | None = None
    sysctls: list[dict] | None = None
    windowsOptions: dict | None = None


class Resources(Strict):
    requests: dict[str, str | int] = {}
    limits: dict[str, str | int] = {}
    claims: list[dict] | None = None


class KeyRef(Strict):
    name: str
    key: str
    optional: bool | None = None


class EnvSource(Strict):
    secretKeyRef: KeyRef | None = None
    configMapKeyRef: KeyRef | None = None
    fieldRef: dict | None = None
    resourceFieldRef: dict | None = None


class EnvVar(Strict):
    name: str
    value: str | None = None
    valueFrom: EnvSource | None = None


class ContainerPort(Strict):
    name: str | None = Field(None, max_length=15)
    containerPort: int
    protocol: str | None = None
    hostPort: int | None = None
    hostIP: str | None = None


class VolumeMount(Strict):
    name: str
    mountPath: str
    readOnly: bool | None = None
    recursiveReadOnly: str | None = None
    subPath: str | None = None
    subPathExpr: str | None = None
    mountPropagation: str | None = None


class Container(Strict):
    name: str
    image: str
    imagePullPolicy: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    workingDir: str | None = None
    ports: list[ContainerPort] = []
    env: list[EnvVar] = []
    envFrom: list[dict] | None = None
    resources: Resources | None = None
    resizePolicy: list[dict] | None = None
    restartPolicy: str | None = None
    volumeMounts: list[VolumeMount] = []
    volumeDevices: list[dict] | None = None
    livenessProbe: Probe | None = None
    readinessProbe: Probe | None = None
    startupProbe: Probe | None = None
    lifecycle: dict | None = None
    terminationMessagePath: str | None = None
    terminationMessagePolicy: str | None = None
    securityContext: SecurityContext | None = None
    stdin: bool | None = None
    stdinOnce: bool | None = None
    tty: bool | None = None


class Volume(Loose):
    name: str


class PodSpec(Strict):
    activeDeadlineSeconds: int | None = None
    affinity: dict | None = None
    automountServiceAccountToken: bool | None = None
    containers: list[Container]
    dnsConfig: dict | None = None
    dnsPolicy: str | None = None
    enableServiceLinks: bool | None = None
    hostAliases: list[dict] | None = None
    hostIPC: bool | None = None
    hostNetwork: bool | None = None
    hostPID: bool | None = None
    hostUsers: bool | None = None
    hostname: str | None = None
    imagePullSecrets: list[dict] | None = None
    initContainers: list[Container] | None = None
    nodeName: str | None = None
    nodeSelector: dict[str, str] | None = None
    os: dict | None = None
    priority: int | None = None
    priorityClassName: str | None = None
    readinessGates: list[dict] | None = None
    restartPolicy: str | None = None
    runtimeClassName: str | None = None
    schedulerName: str | None = None
    securityContext: PodSecurityContext | None = None
    serviceAccountName: str | None = None
    shareProcessNamespace: bool | None = None
    subdomain: str | None = None
    terminationGracePeriodSeconds: int | None = None
    tolerations: list[dict] | None = None
    topologySpreadConstraints: list[dict] | None = None
    volumes: list[Volume] = []


class PodTemplate(Strict):
    metadata: Loose
    spec: PodSpec


def pod_spec(doc: dict) -> PodSpec | None:
    """The validated pod spec of a workload (Deployment, Job), else None."""
    if doc["kind"] == "Deployment":
        return PodTemplate.model_validate(doc["spec"]["template"]).spec
    if doc["kind"] == "Job":
        return PodTemplate.model_validate(doc["spec"]["template"]).spec
    return None
