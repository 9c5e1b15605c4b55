"""Plain helpers of the compose tests (tests/e2e/test_compose_*.py): which compose services
run our Python modules and which run a tool from our image, and what a service's command,
flags and ports say. The compose files themselves are read by tests/e2e/compose_files.py;
the services, prod and dev, are the ``services`` fixture of tests/e2e/conftest.py."""

from __future__ import annotations

import shlex

from ticketing.config import default

# compose service -> the module its command runs
PYTHON_SERVICES = {
    "catalog_api": "catalog_api",
    "waitingroom": "waitingroom",
    "search_sync": "search_sync",
    "booking_worker": "booking_worker",
    "booking_payments": "booking_worker",
    "migrate": "ticketing.db.migrate",
}


# compose service -> its command line; run from our image, not a Python module of ours (dev
# override only: a fake Stripe)
TOOL_SERVICES = {
    "localstripe": [
        "python",
        "-m",
        "deploy.localstripe_server",
        "--port",
        default("TICKETING_LOCALSTRIPE_PORT"),
    ]
}


def exposed_ports(service: dict) -> set[int]:
    ports = {int(p) for p in service.get("expose", [])}
    ports |= {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}
    return ports


def command_of(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]
