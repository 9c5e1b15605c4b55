"""What docker-compose.yml runs, prod and dev, read as compose reads them (no docker engine
needed; tests/e2e/compose_files.py): every component on a pinned image, two booking
workers and a payments worker, localstripe in dev only, the project's own build context and
Dockerfile, and the same commands as deploy/Procfile."""

from __future__ import annotations

import itertools
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from tests.e2e import compose_files
from tests.e2e.compose_files import ROOT
from tests.e2e.compose_services import (
    PYTHON_SERVICES,
    TOOL_SERVICES,
    command_of,
    exposed_ports,
    flag,
)
from ticketing.config import default

IMAGES = {
    "postgres": "postgres:15",
    "redis": "redis:7",
    "rabbitmq": "rabbitmq:3-management",
    "typesense": "typesense/typesense:0.24.1",
    "nginx": "ticketing-gateway:dev",  # built from deploy/gateway.Dockerfile (Debian nginx + Lua)
}


def is_dev(services: dict[str, dict]) -> bool:
    return services["catalog_api"]["environment"]["TICKETING_ENV"] == "dev"


def tools(services: dict[str, dict]) -> dict[str, list[str]]:
    """The tool services this stack runs: localstripe in dev, none in prod."""
    return TOOL_SERVICES if is_dev(services) else {}


def test_the_stack_is_every_component_on_pinned_images(services):
    assert set(services) == set(IMAGES) | set(PYTHON_SERVICES) | set(tools(services))
    for name, image in IMAGES.items():
        assert services[name]["image"] == image, name
    for name, module in PYTHON_SERVICES.items():
        argv = command_of(services[name])
        assert argv[:3] == ["python", "-m", module], name
    for name, argv in tools(services).items():
        assert command_of(services[name]) == argv, name
        assert services[name]["image"] == services["catalog_api"]["image"], name


def test_booking_runs_two_workers_and_a_payments_worker(services):
    worker = services["booking_worker"]
    assert worker["deploy"]["replicas"] >= 2
    # The partition workers run commands only; the payments stage has a worker of its own.
    payments = services["booking_payments"]
    assert flag(command_of(worker), "--stages") == "commands"
    assert flag(command_of(payments), "--stages") == "payments"
    assert payments.get("deploy", {}).get("replicas", 1) >= 1
    for service in (worker, payments):
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert payments["environment"] == worker["environment"]
    env = worker["environment"]
    assert env == services["waitingroom"]["environment"], "the front door and workers differ"


def test_dev_charges_through_localstripe():
    services = compose_files.dev_services()
    env = services["booking_worker"]["environment"]
    for name in ("booking_worker", "booking_payments"):
        assert services[name]["depends_on"]["localstripe"]["condition"] == "service_healthy"
    assert urlsplit(env["TICKETING_STRIPE_API_BASE"]).scheme == "http"
    stripe = services["localstripe"]
    port = int(flag(command_of(stripe), "--port"))
    assert port == urlsplit(env["TICKETING_STRIPE_API_BASE"]).port
    assert port in exposed_ports(stripe)
    assert str(port) in " ".join(stripe["healthcheck"]["test"])
    assert "localstripe" in (ROOT / "deploy" / "Dockerfile").read_text()
    # The image's build context lets in the launcher the localstripe service runs, and
    # every deploy module it imports.
    context = set((ROOT / "deploy" / "Dockerfile.dockerignore").read_text().split())
    launcher = ROOT / "deploy" / "localstripe_server.py"
    imported = set(re.findall(r"^from (deploy\.\w+) import", launcher.read_text(), re.M))
    assert imported, "control: the launcher imports a deploy module"
    needed = {"deploy/__init__.py", "deploy/localstripe_server.py"}
    needed |= {name.replace(".", "/") + ".py" for name in imported}
    assert {"!" + path for path in needed} <= context


def test_build_context_and_dockerfile_are_the_projects(services):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    installed = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for name in [*PYTHON_SERVICES, *tools(services)]:
        build = services[name]["build"]
        context = (ROOT / build["context"]).resolve()
        dockerfile = context / build["dockerfile"]
        assert context == ROOT and dockerfile.is_file(), f"{name}: {build}"
        assert re.search(r"^FROM python:3\.11-slim\b", dockerfile.read_text(), re.M)
        if name in TOOL_SERVICES:
            continue
        package = PYTHON_SERVICES[name].split(".")[0]
        assert any(re.fullmatch(p.replace("*", ".*"), package) for p in installed), package
        ignore = Path(f"{dockerfile}.dockerignore").read_text().split()
        assert f"!{package}" in ignore, f"{package} is left out of the build context"


def test_compose_runs_what_the_procfile_runs(services):
    procfile = dict(
        line.split(":", 1)
        for line in (ROOT / "deploy" / "Procfile").read_text().splitlines()
        if line and not line.startswith("#")
    )
    # A line's leading VAR=value words are that process's own settings (a worker's slot).
    commands = {
        " ".join(itertools.dropwhile(lambda w: re.match(r"^[A-Z_]+=", w), shlex.split(cmd)))
        for cmd in procfile.values()
    }
    for name in ("catalog_api", "waitingroom", "search_sync", "booking_worker", "booking_payments"):
        assert " ".join(command_of(services[name])) in commands, name
    # The Procfile's localstripe line, with its port variable at its default (dev's).
    localstripe = " ".join(shlex.split(procfile["localstripe"])).replace(
        "${TICKETING_LOCALSTRIPE_PORT:-8420}", default("TICKETING_LOCALSTRIPE_PORT")
    )
    if is_dev(services):
        assert localstripe == " ".join(command_of(services["localstripe"]))
    workers = [shlex.split(cmd) for cmd in procfile.values() if "python -m booking_worker" in cmd]
    stages = [
        flag(argv, "--stages") if "--stages" in argv else "commands,payments" for argv in workers
    ]
    assert sum("commands" in s.split(",") for s in stages) >= 2
    assert any("payments" in s.split(",") for s in stages), "no process runs the payments stage"
