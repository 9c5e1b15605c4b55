"""Render deploy/nginx.conf.template into a runnable gateway config.

    python -m deploy.render_nginx [--output .run/nginx.conf] [--prefix .run/nginx]
    nginx -c $PWD/.run/nginx.conf -p $PWD/.run/nginx -e stderr

Ports, the number of waitingroom processes and the body limit come from
ticketing.config.Settings. docker-compose.yml renders the same template with the nginx
image's envsubst from the GATEWAY_* variables it sets.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

from ticketing.config import Settings

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
PLACEHOLDER = re.compile(r"\$\{(GATEWAY_[A-Z_]+)\}")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
# A waitingroom process holds about this many websockets under 20,000 open files.
SOCKETS_PER_WAITINGROOM = 15_000
# Connections one nginx worker is planned for: under its worker_connections (16,384) with
# room for the kernel's reuseport spread being a little uneven.
CONNECTIONS_PER_WORKER = 15_000


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def upstream_servers(host: str, ports: list[int]) -> str:
    """The ``server`` lines of an upstream block, one per port."""
    return " ".join(f"server {_address(host, port)};" for port in ports)


def worker_processes(waitingroom_processes: int) -> int:
    """Enough workers for every waiting fan's two connections (fan side and upstream)."""
    connections = 2 * SOCKETS_PER_WAITINGROOM * waitingroom_processes
    return max(2, math.ceil(connections / CONNECTIONS_PER_WORKER))


def variables(settings: Settings, access_log: str = "logs/access.log") -> dict[str, str]:
    # Services bound to a wildcard address are still reached over loopback.
    backend_host = "127.0.0.1" if settings.host in WILDCARD_HOSTS else settings.host
    return {
        "GATEWAY_LISTEN": _address(settings.host or "0.0.0.0", settings.gateway_port),
        "GATEWAY_WORKER_PROCESSES": str(worker_processes(settings.waitingroom_processes)),
        "GATEWAY_CATALOG_UPSTREAM": _address(backend_host, settings.catalog_port),
        "GATEWAY_WAITINGROOM_SERVERS": upstream_servers(backend_host, settings.waitingroom_ports),
        "GATEWAY_MAX_BODY_BYTES": str(settings.max_body_bytes),
        "GATEWAY_ACCESS_LOG": access_log,
    }


def render(values: dict[str, str], template: str | None = None) -> str:
    text = TEMPLATE.read_text() if template is None else template
    missing = sorted(set(PLACEHOLDER.findall(text)) - values.keys())
    if missing:
        raise KeyError(f"no value for template placeholder(s): {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def write(settings: Settings, output: Path, prefix: Path) -> Path:
    """Render to ``output`` and create the prefix nginx needs (logs/; temp dirs it makes)."""
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(variables(settings)))
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.render_nginx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path(".run/nginx.conf"))
    parser.add_argument("--prefix", type=Path, default=Path(".run/nginx"))
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    values = variables(settings)
    write(settings, args.output, args.prefix)
    print(f"render_nginx: wrote {args.output} (listen {values['GATEWAY_LISTEN']}, "
          f"{values['GATEWAY_WORKER_PROCESSES']} workers; "
          f"catalog_api {values['GATEWAY_CATALOG_UPSTREAM']}; "
          f"waitingroom {', '.join(map(str, settings.waitingroom_ports))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
