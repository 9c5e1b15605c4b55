"""deploy/k8s read as kustomize lists it, and the rules its manifests are held to.

Each rule is a function of plain dicts that returns what is wrong (an empty list when
nothing is), so tests/unit/platform/test_k8s_manifests.py can show that a rule fails on a
manifest that breaks it. A container's environment is computed as the kubelet computes it:
the ConfigMaps of ``envFrom`` first, then ``env`` in order, each ``$(NAME)`` filled in from
what is defined before it and left as written when nothing is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ticketing.config import VARIABLES, Settings
from ticketing.settings_schema import Secret, Url, declared

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
# The image every Python process runs (deploy/Dockerfile), as the manifests name it.
PYTHON_IMAGE = "ticketing"
SECRET_SETTINGS = frozenset(d.variable for d in declared(Settings) if d.type is Secret)
URL_SETTINGS = frozenset(d.variable for d in declared(Settings) if d.type is Url)
# Names that say a value is a secret, whatever container holds it.
SECRET_NAME = re.compile(r"PASS|SECRET|_KEY$|COOKIE|AUTH")
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

Manifest = dict[str, Any]


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return loaded


def manifests() -> list[Manifest]:
    """Every object of the files the kustomization lists, in its namespace."""
    kust = kustomization()
    found = []
    for name in kust["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            if doc:
                found.append(doc)
    return found


def of_kind(objects: list[Manifest], *kinds: str) -> dict[str, Manifest]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] in kinds}


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest, *, init: bool = True) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec["containers"]
    if init:
        yield from spec.get("initContainers", [])


def image_name(container: Mapping[str, Any]) -> str:
    return str(container["image"]).split(":", 1)[0]


def is_python(workload: Manifest) -> bool:
    return all(image_name(c) == PYTHON_IMAGE for c in containers(workload))


def command_line(container: Mapping[str, Any]) -> str:
    return " ".join(str(part) for part in container.get("command", []))


# --- the rules --------------------------------------------------------------------------


def probe_problems(workload: Manifest) -> list[str]:
    """Each long-running container is probed for readiness and liveness, on a port it
    declares."""
    problems = []
    for container in containers(workload, init=False):
        ports = {p.get("name") for p in container.get("ports", [])}
        ports |= {p["containerPort"] for p in container.get("ports", [])}
        for kind in ("readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            if not probe:
                problems.append(f"{container['name']}: no {kind}")
                continue
            action = probe.get("httpGet") or probe.get("tcpSocket")
            if action and action["port"] not in ports:
                problems.append(f"{container['name']}: {kind} on undeclared port {action['port']}")
    return problems


def resource_problems(workload: Manifest) -> list[str]:
    """Each container, init containers too, requests and is limited to CPU and memory."""
    return [
        f"{container['name']}: no {bound}.{resource}"
        for container in containers(workload)
        for bound in ("requests", "limits")
        for resource in ("cpu", "memory")
        if resource not in container.get("resources", {}).get(bound, {})
    ]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    wanted = selector.get("matchLabels", {})
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def pdb_problems(workload: Manifest, pdbs: list[Manifest]) -> list[str]:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    if any(selects(pdb["spec"]["selector"], labels) for pdb in pdbs):
        return []
    return [f"{workload['metadata']['name']}: no PodDisruptionBudget selects its pods"]


def secret_problems(container: Mapping[str, Any], config: Mapping[str, str]) -> list[str]:
    """Secrets come from Secrets: every Secret setting, every variable named like a secret,
    and the password of every URL setting (a ``$(NAME)`` of a variable read from one)."""
    problems = []
    from_secret = set()
    for entry in container.get("env", []):
        name, source = entry["name"], entry.get("valueFrom", {})
        if "secretKeyRef" in source:
            from_secret.add(name)
        elif name in SECRET_SETTINGS or SECRET_NAME.search(name):
            problems.append(f"{name} is not read from a Secret")
        if name in URL_SETTINGS and "value" in entry:
            for url in str(entry["value"]).split():
                password = urlsplit(url).password
                held = _REFERENCE.fullmatch(password or "")
                if password is not None and not (held and held[1] in from_secret):
                    problems.append(f"{name}: a password not read from a Secret")
    problems += [f"{name} is in a ConfigMap" for name in config if SECRET_NAME.search(name)]
    return problems


def setting_problems(container: Mapping[str, Any], config: Mapping[str, str]) -> list[str]:
    """A Python process reads TICKETING_* settings only: each variable set is one of them,
    but for the few read from a Secret or the pod that a setting's ``$(NAME)`` uses; and
    every ``$(NAME)`` refers to a variable defined before it."""
    problems = [f"{k} is no setting of ticketing.config" for k in config if k not in VARIABLES]
    defined = set(config)
    used: set[str] = set()
    for entry in container.get("env", []):
        name = entry["name"]
        for ref in _REFERENCE.findall(str(entry.get("value", ""))):
            used.add(ref)
            if ref not in defined:
                problems.append(f"{name}: $({ref}) is not defined before it")
        defined.add(name)
        if name.startswith("TICKETING_") and name not in VARIABLES:
            problems.append(f"{name} is no setting of ticketing.config")
    for entry in container.get("env", []):
        name = entry["name"]
        if not name.startswith("TICKETING_") and name not in used:
            problems.append(f"{name} is neither a setting nor used by one")
    return problems


# --- a container's environment, as the kubelet makes it ---------------------------------


def stand_in(source: Mapping[str, Any]) -> str:
    """A value of the deployment's own for a ``valueFrom``: a secret no one else has (long
    enough for any, URL-safe like those README.md asks for), or the pod's field."""
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        return f"{ref['name']}-{ref['key']}-of-this-deployment-0123456789".replace("_", "-")
    field = source["fieldRef"]["fieldPath"]
    return "0" if "pod-index" in field else "ticketing" if "namespace" in field else "pod-0"


def environment(container: Mapping[str, Any], configmaps: Mapping[str, Manifest]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for entry in container.get("env", []):
        if "valueFrom" in entry:
            env[entry["name"]] = stand_in(entry["valueFrom"])
        else:
            env[entry["name"]] = _REFERENCE.sub(
                lambda m: env.get(m[1], m[0]), str(entry.get("value", ""))
            )
    return env


def config_of(container: Mapping[str, Any], configmaps: Mapping[str, Manifest]) -> dict[str, str]:
    """The ConfigMap variables a container's ``envFrom`` brings."""
    data: dict[str, str] = {}
    for source in container.get("envFrom", []):
        data.update(configmaps[source["configMapRef"]["name"]]["data"])
    return data


def hosts(url: str) -> list[tuple[str, int]]:
    """Every ``host:port`` of a URL, a cluster's comma-separated seed list included."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    return [(h.rpartition(":")[0], int(h.rpartition(":")[2])) for h in netloc.split(",")]
