"""The Kubernetes manifests: render with `kubectl kustomize`, then check them against a strict
schema of the fields used and against each other (selectors, ports, volumes, secrets, metrics).

`kubectl apply --dry-run=server` needs a reachable API server, and client-side validation needs
the server's OpenAPI document, so neither runs offline; test_server_dry_run runs it when
BEDSIDE_K8S_DRY_RUN=1 and kubectl has a cluster context.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import DEPLOY, tool
from .k8s_schema import API_VERSIONS, Object, PodSpec, pod_spec
from .settings_table import serve_flags

K8S = DEPLOY / "k8s"
KUSTOMIZATIONS = ["base", "overlays/cpu", "overlays/gpu"]
EXAMPLES = K8S / "examples"
SWEEP = K8S / "jobs" / "sweep-indexed-job.yaml"


def kubectl_with_kustomize() -> tuple[str | None, str]:
    """kubectl, if it embeds kustomize v4 or later (the `labels` and `patches` fields); else why not."""
    kubectl = tool("kubectl")
    if kubectl is None:
        return None, ("kubectl is not installed, so `kubectl kustomize` could not render the overlays "
                      "(kubectl 1.21 or later; Debian 12's `kubernetes-client` 1.20 embeds a kustomize too old for them); "
                      "the raw base files were still checked")
    try:
        out = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"kubectl does not run here ({exc}); the raw base files were still checked"
    match = re.search(r"Kustomize Version: v(\d+)", out)
    if not match or int(match.group(1)) < 4:
        return None, (f"kubectl's embedded kustomize is older than v4 ({out.strip()!r}); the raw base files "
                      "were still checked")
    return kubectl, ""


KUBECTL, NO_KUBECTL = kubectl_with_kustomize()
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason=NO_KUBECTL)


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.yaml") if p.name != "kustomization.yaml")


_rendered: dict[str, list[dict]] = {}


def render(kustomization: str) -> list[dict]:
    if kustomization not in _rendered:
        result = subprocess.run([KUBECTL, "kustomize", str(K8S / kustomization)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        _rendered[kustomization] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return _rendered[kustomization]


def base_files() -> list[dict]:
    """The base's resources as written (complete objects, namespace from the kustomization)."""
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    docs = [doc for name in kustomization["resources"] for doc in load(K8S / "base" / name)]
    for doc in docs:
        if doc["kind"] != "Namespace":
            doc["metadata"].setdefault("namespace", kustomization["namespace"])
    return docs


def sources() -> list:
    params = [pytest.param("files:base", id="base-files")]
    params += [pytest.param(k, id=f"kustomize-{k.replace('/', '-')}", marks=needs_kubectl) for k in KUSTOMIZATIONS]
    return params


def docs_of(source: str) -> list[dict]:
    return base_files() if source == "files:base" else render(source)


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# -- every file -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", manifests(K8S), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_parses_and_names_itself(path):
    docs = load(path)
    assert docs
    for doc in docs:
        obj = Object.model_validate(doc)
        patch = path.parent.name in ("cpu", "gpu")  # strategic-merge patches: partial objects
        if obj.kind in API_VERSIONS:
            assert obj.apiVersion == API_VERSIONS[obj.kind], f"{obj.kind} is {API_VERSIONS[obj.kind]}"
        else:
            pytest.fail(f"unexpected kind {obj.kind} in {path.name}")
        if not patch:
            spec = pod_spec(doc)
            if spec is not None:
                check_pod(spec, doc)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_kustomization_references_exist(kustomization):
    folder = K8S / kustomization
    config = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert config["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and config["kind"] == "Kustomization"
    for resource in config.get("resources", []):
        target = (folder / resource).resolve()
        assert target.is_file() or (target / "kustomization.yaml").is_file(), resource
    for patch in config.get("patches", []):
        assert (folder / patch["path"]).is_file(), patch["path"]
    # Every manifest of the base is listed (nothing written and forgotten).
    if kustomization == "base":
        assert {p.name for p in manifests(folder)} == set(config["resources"])


# -- the workload ---------------------------------------------------------------------------------------
def check_pod(spec: PodSpec, doc: dict) -> None:
    """What every bedside pod must do: non-root, read-only root, resources, mounts that exist."""
    pod_sc = spec.securityContext
    assert pod_sc and pod_sc.runAsNonRoot and pod_sc.runAsUser and pod_sc.runAsUser != 0
    assert pod_sc.seccompProfile == {"type": "RuntimeDefault"}
    assert spec.automountServiceAccountToken is False
    volumes = {v.name: v for v in spec.volumes}
    for container in spec.containers:
        sc = container.securityContext
        assert sc is not None, container.name
        assert sc.allowPrivilegeEscalation is False and sc.readOnlyRootFilesystem is True
        assert sc.capabilities and sc.capabilities.drop == ["ALL"]
        assert sc.runAsNonRoot is not False and sc.runAsUser in (None, pod_sc.runAsUser)
        assert container.resources and container.resources.requests.get("cpu") and \
            container.resources.requests.get("memory") and container.resources.limits.get("memory"), \
            f"{doc['metadata']['name']}: requests cpu/memory and a memory limit"
        mounts = {m.mountPath: m for m in container.volumeMounts}
        for mount in container.volumeMounts:
            assert mount.name in volumes, f"mount of unknown volume {mount.name}"
        assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"].name].model_extra, \
            "a read-only root needs an emptyDir on /tmp"


@pytest.mark.parametrize("source", sources())
def test_deployment(source):
    docs = docs_of(source)
    deployment = one(docs, "Deployment", "bedside")
    spec = pod_spec(deployment)
    check_pod(spec, deployment)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert matches(deployment["spec"]["selector"]["matchLabels"], labels)
    (container,) = spec.containers
    ports = {p.name: p.containerPort for p in container.ports}
    # Probes: BentoML's /livez for startup and liveness, bedside's /ready for readiness, on a declared port.
    for probe, path in (("startupProbe", "/livez"), ("livenessProbe", "/livez"), ("readinessProbe", "/ready")):
        value = getattr(container, probe)
        assert value and value.httpGet and value.httpGet.path == path, probe
        assert value.httpGet.port in ports or value.httpGet.port in ports.values(), probe
    assert container.startupProbe.failureThreshold * container.startupProbe.periodSeconds >= 120, \
        "give the base and the adapters time to load"
    # `bedside serve` and its real flags.
    args = container.args or []
    assert args[0] == "serve"
    flags = {a for a in args[1:] if a.startswith("--")}
    assert flags <= set(serve_flags().values()) | {"--port"}, flags
    assert int(args[args.index("--port") + 1]) in ports.values()
    # Environment: only real settings; the store is the shared volume's mount.
    from bedside.service.settings import ServiceSettings

    env = {e.name: e for e in container.env}
    for name in env:
        if name.startswith("BEDSIDE_"):
            assert name.removeprefix("BEDSIDE_").lower() in ServiceSettings.model_fields, f"{name} is no setting"
    mounts = {m.name: m.mountPath for m in container.volumeMounts}
    volumes = {v.name: v.model_extra for v in spec.volumes}
    store = [n for n, v in volumes.items() if "persistentVolumeClaim" in v]
    assert len(store) == 1 and env["BEDSIDE_STORE"].value == mounts[store[0]]
    claim = volumes[store[0]]["persistentVolumeClaim"]["claimName"]
    pvc = one(docs, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "every replica reads the same store"
    # BentoML's home (with the Prometheus multiprocess directory) is an emptyDir.
    home = env["BENTOML_HOME"].value
    assert any(path == home and "emptyDir" in volumes[name] for name, path in mounts.items())
    # Tokens: files of the Secret described in the example, never plain values in the manifest.
    secret = load(EXAMPLES / "secret-tokens.yaml")[0]
    for name in ("BEDSIDE_PREDICT_TOKENS", "BEDSIDE_ADMIN_TOKENS"):
        assert name not in env or env[name].value is None, f"{name} must come from a Secret"
        path = Path(env[f"{name}_FILE"].value)
        (volume,) = [n for n, p in mounts.items() if p == str(path.parent)]
        assert volumes[volume]["secret"]["secretName"] == secret["metadata"]["name"], name
        assert path.name in secret["stringData"], f"{path.name} is not a key of the Secret"
    # Services, monitoring, autoscaling and policy select these pods.
    service = one(docs, "Service", "bedside")
    assert matches(service["spec"]["selector"], labels)
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports or port["targetPort"] in ports.values()
    monitor = one(docs, "ServiceMonitor")
    assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["path"] == "/metrics" and endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "bedside", \
        'the rules and the dashboard select job="bedside"'
    hpa = one(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert target["kind"] == "Deployment" and target["name"] == deployment["metadata"]["name"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert all(m["type"] == "Pods" for m in hpa["spec"]["metrics"])
    assert matches(one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    ingress_policy = [p for p in policies if "Ingress" in p["spec"]["policyTypes"]]
    assert ingress_policy and all(matches(p["spec"]["podSelector"]["matchLabels"], labels) for p in policies)
    for rule in ingress_policy[0]["spec"]["ingress"]:
        assert {p["port"] for p in rule["ports"]} <= set(ports.values()) | set(ports)
    # One namespace for all.
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    assert namespaces == {one(docs, "Namespace")["metadata"]["name"]}


@needs_kubectl
@pytest.mark.parametrize("overlay, device", [("overlays/cpu", "cpu"), ("overlays/gpu", "cuda")])
def test_overlays(overlay, device):
    deployment = one(render(overlay), "Deployment", "bedside")
    (container,) = pod_spec(deployment).containers
    args = container.args
    assert args[args.index("--device") + 1] == device
    gpus = container.resources.limits.get("nvidia.com/gpu")
    assert container.image.endswith("-cuda" if device == "cuda" else "-cpu")
    if device == "cuda":
        assert int(gpus) == 1 and int(container.resources.requests["nvidia.com/gpu"]) == 1
        tolerations = pod_spec(deployment).tolerations or []
        assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)
    else:
        assert gpus is None
    # The overlay patches merged into the base rather than replacing it.
    assert {e.name for e in container.env} >= {"BEDSIDE_STORE", "BEDSIDE_PREDICT_TOKENS_FILE", "BENTOML_HOME"}
    assert container.readinessProbe and container.securityContext.readOnlyRootFilesystem


# -- exposure: ingresses and the admin path -------------------------------------------------------------
def ingress_paths(doc: dict) -> list[dict]:
    return [path for rule in doc["spec"]["rules"] for path in rule["http"]["paths"]]


def test_ingresses_expose_admin_only_internally():
    service = one(base_files(), "Service", "bedside")
    port_names = {p["name"] for p in service["spec"]["ports"]}
    public = load(EXAMPLES / "ingress-public.yaml")[0]
    internal = load(EXAMPLES / "ingress-admin-internal.yaml")[0]
    for ingress in (public, internal):
        assert ingress["spec"]["tls"] and ingress["spec"]["tls"][0]["secretName"], "TLS terminates here"
        hosts = {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
        assert {r["host"] for r in ingress["spec"]["rules"]} <= hosts
        for path in ingress_paths(ingress):
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"] and backend["port"]["name"] in port_names
    assert public["spec"]["ingressClassName"] != internal["spec"]["ingressClassName"]
    public_paths = {p["path"] for p in ingress_paths(public)}
    assert public_paths == {"/predict", "/extract"}, "the public Ingress is an allow-list"
    assert all(p["pathType"] == "Exact" for p in ingress_paths(public))
    assert not any(p.startswith("/admin") or p == "/" for p in public_paths)
    assert "/admin" in {p["path"] for p in ingress_paths(internal)}
    # The NetworkPolicy admits the controllers of both classes' namespaces (see its comment).
    policy = one(base_files(), "NetworkPolicy", "bedside-ingress")
    allowed = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for rule in policy["spec"]["ingress"] for peer in rule["from"]}
    assert {"ingress-public", "ingress-internal", "monitoring"} <= allowed
    text = (K8S / "base" / "networkpolicy.yaml").read_text()
    assert "L3/L4" in text and "Ingress" in text, "say why the path split is not done here"


def test_secret_example_is_only_an_example():
    secret = load(EXAMPLES / "secret-tokens.yaml")[0]
    assert secret["type"] == "Opaque"
    assert all("REPLACE-ME" in value for value in secret["stringData"].values())
    assert "never commit real tokens" in (EXAMPLES / "secret-tokens.yaml").read_text()
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    assert not any("secret" in r for r in base["resources"]), "placeholder tokens must never be applied"


# -- the sweep job --------------------------------------------------------------------------------------
def test_sweep_indexed_job():
    docs = load(SWEEP)
    job = one(docs, "Job")
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] >= 1
    spec = pod_spec(job)
    check_pod(spec, job)
    (container,) = spec.containers
    command = container.command
    assert command[:2] == ["bedside", "sweep"] and command[command.index("--index") + 1] == "$(JOB_COMPLETION_INDEX)"
    assert "JOB_COMPLETION_INDEX" in {e.name for e in container.env}, "declared, so $(...) expands"
    assert int(container.resources.limits["nvidia.com/gpu"]) == 1
    claims = {v.model_extra.get("persistentVolumeClaim", {}).get("claimName") for v in spec.volumes} - {None}
    assert claims <= {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert "--count" in SWEEP.read_text(), "say how to size completions"


# -- against a cluster, when there is one ------------------------------------------------------------------
@pytest.mark.skipif(os.environ.get("BEDSIDE_K8S_DRY_RUN") != "1" or tool("kubectl") is None,
                    reason="needs a Kubernetes API server: set BEDSIDE_K8S_DRY_RUN=1 with a kubectl context "
                    "(server-side dry run validates against the cluster's own schemas, CRDs included)")
@pytest.mark.parametrize("overlay", ["overlays/cpu", "overlays/gpu"])
def test_server_dry_run(overlay):
    result = subprocess.run([tool("kubectl"), "apply", "--dry-run=server", "-k", str(K8S / overlay)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# -- official schemas, offline ------------------------------------------------------------------------------
SCHEMA_VERSION = "1.32"  # the Kubernetes version the manifests target


@needs_kubectl
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_rendered_objects_pass_the_official_kubernetes_schemas(kustomization):
    """Every rendered core object against the Kubernetes OpenAPI schemas bundled with
    kubernetes-validate (no cluster, no network); CRDs such as ServiceMonitor have no bundled schema."""
    import kubernetes_validate

    checked = 0
    for doc in render(kustomization):
        if "." in doc["apiVersion"].split("/")[0] and not doc["apiVersion"].split("/")[0].endswith("k8s.io"):
            continue  # a custom resource (monitoring.coreos.com, ...)
        kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)
        checked += 1
    assert checked >= 5
