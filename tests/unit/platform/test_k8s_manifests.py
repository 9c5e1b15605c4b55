"""deploy/k8s describes the production shape the project can run: every process of
deploy/Procfile in a workload with probes, requests, limits and a PodDisruptionBudget;
every setting one ticketing.config knows and accepts in prod, every secret from a Secret;
the URLs naming the engines these manifests run, as clusters; the gateway configured as
deploy/render_nginx.py renders it for the waitingroom's settings. Rules are functions
(tests/unit/platform/k8s_manifests.py); each is shown failing on a manifest that breaks it.
"""

from __future__ import annotations

import copy
import re
import resource
import shlex
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from deploy import render_nginx
from tests.unit.platform import k8s_manifests as k8s
from ticketing.config import Settings

OBJECTS = k8s.manifests()
WORKLOADS = k8s.of_kind(OBJECTS, *k8s.WORKLOAD_KINDS)
PYTHON = {name: w for name, w in WORKLOADS.items() if k8s.is_python(w)}
CONFIGMAPS = k8s.of_kind(OBJECTS, "ConfigMap")
SERVICES = k8s.of_kind(OBJECTS, "Service")
PDBS = list(k8s.of_kind(OBJECTS, "PodDisruptionBudget").values())

# deploy/Procfile's processes -> the workloads that run them in production
PROCFILE_WORKLOADS = {
    "catalog": ("catalog-api",),
    # --supervise runs waitingroom processes and booking front doors: here pods of each
    "waitingroom": ("waitingroom", "frontdoor"),
    "search_sync": ("search-sync",),
    "booking_worker": ("booking-worker",),  # its pod 0, slot 0/2
    "booking_worker_2": ("booking-worker",),  # its pod 1, slot 1/2
    "booking_payments": ("booking-payments",),
    "gateway": ("gateway",),
}
# make run's alone: Typesense from its PyPI wrapper (production runs typesense.yaml's
# nodes), a fake Stripe, and the start-up announcement.
DEV_ONLY = {"typesense", "localstripe", "ready"}
# Where the gateway's entrypoint reads the template it renders (deploy/gateway-entrypoint.sh).
TEMPLATE_IN_IMAGE = "/etc/nginx/templates/nginx.conf.template"


def procfile() -> dict[str, str]:
    lines = (k8s.ROOT / "deploy" / "Procfile").read_text().splitlines()
    entries = (line.split(":", 1) for line in lines if line and not line.startswith("#"))
    return {name.strip(): command.strip() for name, command in entries}


def main_container(name: str) -> dict:
    container: dict = k8s.pod_spec(WORKLOADS[name])["containers"][0]
    return container


def settings_of(name: str) -> Settings:
    return Settings.from_env(k8s.environment(main_container(name), CONFIGMAPS))


def test_the_kustomization_lists_every_file_and_kustomize_builds_it():
    listed = set(k8s.kustomization()["resources"])
    assert listed == {p.name for p in k8s.K8S.glob("*.yaml")} - {"kustomization.yaml"}
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl here to build the kustomization with")
    built = subprocess.run(
        [kubectl, "kustomize", str(k8s.K8S)], capture_output=True, text=True, check=True
    ).stdout
    rendered = [d for d in yaml.safe_load_all(built) if d]
    namespace = k8s.kustomization()["namespace"]
    assert {(d["kind"], d["metadata"]["name"]) for d in rendered} == {
        (d["kind"], d["metadata"]["name"]) for d in OBJECTS
    }
    assert all(
        d["metadata"].get("namespace") == namespace for d in rendered if d["kind"] != "Namespace"
    )


def test_every_procfile_process_runs_in_a_workload():
    processes = procfile()
    assert set(processes) == set(PROCFILE_WORKLOADS) | DEV_ONLY
    for process, names in PROCFILE_WORKLOADS.items():
        argv = shlex.split(processes[process])
        module = argv[argv.index("-m") + 1]
        stages = argv[argv.index("--stages") + 1] if "--stages" in argv else None
        for name in names:
            assert name in WORKLOADS, f"{process}: no workload {name}"
            if name not in PYTHON:
                continue
            command = k8s.command_line(main_container(name))
            assert re.search(rf"\bpython -m {re.escape(module)}\b", command), name
            assert stages is None or f"--stages {stages}" in command, name


def test_every_workload_has_probes_requests_limits_and_a_disruption_budget():
    for name, workload in WORKLOADS.items():
        problems = k8s.probe_problems(workload) + k8s.resource_problems(workload)
        assert not problems + k8s.pdb_problems(workload, PDBS), name
    # controls: each rule fails on a workload that breaks it
    broken = copy.deepcopy(WORKLOADS["catalog-api"])
    container = k8s.pod_spec(broken)["containers"][0]
    del container["readinessProbe"]
    container["livenessProbe"]["httpGet"]["port"] = 9999
    del container["resources"]["limits"]["memory"]
    broken["spec"]["template"]["metadata"]["labels"] = {"app.kubernetes.io/name": "other"}
    assert len(k8s.probe_problems(broken)) == 2
    assert k8s.resource_problems(broken) == ["catalog-api: no limits.memory"]
    assert k8s.pdb_problems(broken, PDBS)


def test_python_workloads_run_prod_with_every_secret_from_a_secret():
    for name, workload in PYTHON.items():
        for container in k8s.containers(workload):
            config = k8s.config_of(container, CONFIGMAPS)
            assert not k8s.setting_problems(container, config), name
            assert not k8s.secret_problems(container, config), name
            env = k8s.environment(container, CONFIGMAPS)
            assert env.keys() >= k8s.SECRET_SETTINGS, name
            settings = Settings.from_env(env)  # prod: refuses a missing or published secret
            assert (settings.env, settings.is_dev) == ("prod", False), name
    for workload in WORKLOADS.values():  # the engines' passwords too
        for container in k8s.containers(workload):
            assert not k8s.secret_problems(container, {}), workload["metadata"]["name"]
    # controls: a literal secret, a literal password in a URL, a setting that does not exist
    # and a reference to nothing are each found
    container = copy.deepcopy(main_container("catalog-api"))
    env = {e["name"]: e for e in container["env"]}
    env["TICKETING_JWT_SECRET"] = {"name": "TICKETING_JWT_SECRET", "value": "x" * 40}
    url = env["TICKETING_DATABASE_URL"]["value"]
    env["TICKETING_DATABASE_URL"]["value"] = url.replace("$(PG_PASSWORD)", "hunter2")
    env["TICKETING_NO_SUCH_SETTING"] = {"name": "TICKETING_NO_SUCH_SETTING", "value": "1"}
    env["TICKETING_AMQP_URL"]["value"] += " amqp://u:$(MISSING)@h:5672/"
    container["env"] = list(env.values())
    assert len(k8s.secret_problems(container, {})) == 3
    assert len(k8s.setting_problems(container, {})) == 2


def test_the_urls_are_the_clusters_these_manifests_run():
    statefulsets = k8s.of_kind(OBJECTS, "StatefulSet")
    pg = k8s.of_kind(OBJECTS, "Cluster")["ticketing-pg"]
    namespace = k8s.kustomization()["namespace"]

    def pods(name: str, port: int) -> list[tuple[str, int]]:
        """Every pod of a StatefulSet, as its headless Service names it."""
        sts = statefulsets[name]
        service = SERVICES[sts["spec"]["serviceName"]]
        assert service["spec"]["clusterIP"] == "None"
        assert port in {p["port"] for p in service["spec"]["ports"]}
        return [
            (f"{name}-{i}.{service['metadata']['name']}", port)
            for i in range(sts["spec"]["replicas"])
        ]

    for name in PYTHON:
        s = settings_of(name)
        assert s.redis_url.startswith("redis+cluster://"), name
        fqdn = f".{namespace}.svc.cluster.local"
        assert k8s.hosts(s.redis_url) == [(h + fqdn, p) for h, p in pods("redis", 6379)], name
        assert [k8s.hosts(u)[0] for u in s.amqp_url.split()] == pods("rabbitmq", 5672), name
        assert s.amqp_queue_type == "quorum"
        assert [k8s.hosts(u)[0] for u in s.typesense_nodes] == pods("typesense", 8108), name
        assert k8s.hosts(s.database_url) == [(f"{pg['metadata']['name']}-rw", 5432)], name
    catalog = settings_of("catalog-api")
    assert k8s.hosts(catalog.database_replica_urls) == [(f"{pg['metadata']['name']}-ro", 5432)]
    assert pg["spec"]["instances"] >= 2  # a replica to read from and to promote
    assert statefulsets["redis"]["spec"]["replicas"] == 6  # 3 primaries, a replica each


def test_every_cluster_dns_name_is_in_the_namespace():
    namespace = k8s.kustomization()["namespace"]
    text = "\n".join(p.read_text() for p in k8s.K8S.glob("*.yaml"))
    names = re.findall(r"[\w.$()-]+\.svc\.cluster\.local", text)
    assert names
    for name in names:
        assert name.split(".")[-4] in (namespace, "kube-system", "$(POD_NAMESPACE)"), name


def test_each_booking_worker_takes_its_own_slot_of_as_many_as_there_are():
    worker = WORKLOADS["booking-worker"]
    env = {e["name"]: e for e in main_container("booking-worker")["env"]}
    index = env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert index == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert (
        env["TICKETING_BOOKING_WORKER_SLOT"]["value"]
        == f"$(POD_INDEX)/{worker['spec']['replicas']}"
    )
    assert settings_of("booking-worker").booking_worker_slot == f"0/{worker['spec']['replicas']}"


def test_the_websocket_tier_raises_its_open_file_limit_to_the_hard_one():
    # Run as the container would, under a runtime's soft 1,024: the shell's part of the
    # command leaves the process the hard limit.
    shell, flag, script = k8s.pod_spec(WORKLOADS["waitingroom"])["containers"][0]["command"]
    raise_limit, _, start = script.partition(" && exec ")
    assert (shell, flag, start) == ("sh", "-c", "python -m waitingroom")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def soft_limit_after(prefix: str) -> int:
        def runtime_default() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))

        run = subprocess.run(
            [shell, flag, f"{prefix} && ulimit -Sn"],
            preexec_fn=runtime_default,
            capture_output=True,
            text=True,
            check=True,
        )
        return int(run.stdout)

    assert soft_limit_after(raise_limit) == hard
    assert soft_limit_after("true") == min(1024, hard)  # control: the runtime's, unraised


def test_postgres_connections_fit_every_workload_at_its_largest():
    autoscalers = k8s.of_kind(OBJECTS, "HorizontalPodAutoscaler")
    pg = k8s.of_kind(OBJECTS, "Cluster")["ticketing-pg"]
    largest = 0
    for name in PYTHON:
        most = (
            autoscalers[name]["spec"]["maxReplicas"]
            if name in autoscalers
            else WORKLOADS[name]["spec"]["replicas"]
        )
        largest += most * settings_of(name).db_pool_max
    assert largest <= int(pg["spec"]["postgresql"]["parameters"]["max_connections"])


def test_the_gateway_is_configured_as_render_nginx_renders_it():
    container = main_container("gateway")
    env = {e["name"]: e.get("value") for e in container["env"]}
    template = render_nginx.TEMPLATE.read_text()
    placeholders = set(render_nginx.PLACEHOLDER.findall(template))
    assert {k for k in env if k.startswith("GATEWAY_")} == placeholders
    # Every other variable is one the template lets nginx's Lua read, from a Secret.
    readable = set(re.findall(r"^env (\w+);", template, re.M))
    assert {k for k in env if not k.startswith("GATEWAY_")} <= readable
    assert not k8s.secret_problems(container, {})
    assert not render_nginx.PLACEHOLDER.search(
        render_nginx.render({k: str(v) for k, v in env.items() if k in placeholders})
    )
    waitingroom = settings_of("waitingroom")
    frontdoor = settings_of("frontdoor")
    assert (
        env["GATEWAY_CATALOG_UPSTREAM"] == f"catalog-api:{settings_of('catalog-api').catalog_port}"
    )
    assert env["GATEWAY_WAITINGROOM_SERVERS"] == render_nginx.upstream_servers(
        "waitingroom", [waitingroom.waitingroom_port]
    )
    assert env["GATEWAY_BOOKING_SERVERS"] == render_nginx.upstream_servers(
        "frontdoor", [frontdoor.waitingroom_port]
    )
    for service, port in (("catalog-api", 8081), ("waitingroom", 8082), ("frontdoor", 8084)):
        assert port in {p["port"] for p in SERVICES[service]["spec"]["ports"]}, service
    assert env["GATEWAY_MAX_BODY_BYTES"] == str(waitingroom.max_body_bytes)
    assert env["GATEWAY_REAL_IP_FROM"] == render_nginx.real_ip_from("127.0.0.1/32,::1/128")
    assert SERVICES["gateway"]["spec"]["externalTrafficPolicy"] == "Local"
    # Its image carries the template (compose mounts the working tree's over it).
    dockerfile = (k8s.ROOT / "deploy" / "gateway.Dockerfile").read_text()
    assert f"COPY deploy/nginx.conf.template {TEMPLATE_IN_IMAGE}" in dockerfile
    assert TEMPLATE_IN_IMAGE in (k8s.ROOT / "deploy" / "gateway-entrypoint.sh").read_text()
    ignore = (k8s.ROOT / "deploy" / "gateway.Dockerfile.dockerignore").read_text().split()
    assert "!deploy/nginx.conf.template" in ignore
    try:
        options = render_nginx.queue_join_options(waitingroom)
    except ValueError:  # the renderer of a tree before the gateway's cluster join
        pytest.xfail("deploy/render_nginx.py reads no redis+cluster:// URL yet")
    expected = render_nginx.lua_table(options)
    assert env["GATEWAY_QUEUE_JOIN"] == expected, (
        f"set gateway.yaml's GATEWAY_QUEUE_JOIN to {expected}"
    )


def test_every_service_selects_a_workload_on_a_port_it_declares():
    for name, service in SERVICES.items():
        chosen = [
            w
            for w in WORKLOADS.values()
            if k8s.selects(
                {"matchLabels": service["spec"]["selector"]},
                w["spec"]["template"]["metadata"]["labels"],
            )
        ]
        assert len(chosen) == 1, name
        declared = {
            p.get("name") for c in k8s.containers(chosen[0], init=False) for p in c.get("ports", [])
        }
        declared |= {
            p["containerPort"]
            for c in k8s.containers(chosen[0], init=False)
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port.get("targetPort", port["port"]) in declared, f"{name}: {port}"


def test_the_manifests_are_valid_kubernetes_objects():
    # The schemas ship in the package: nothing is fetched. Custom resources (the
    # CloudNativePG Cluster) have none there.
    for manifest in OBJECTS:
        if manifest["apiVersion"].startswith("postgresql.cnpg.io/"):
            continue
        kubernetes_validate.validate(manifest, "1.30.0", strict=True)
    broken = copy.deepcopy(WORKLOADS["catalog-api"])
    k8s.pod_spec(broken)["containers"][0]["readinesProbe"] = {}  # control: a misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)
