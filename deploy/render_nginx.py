"""Render deploy/nginx.conf.template into a runnable gateway config.

    python -m deploy.render_nginx [--output .run/nginx.conf] [--prefix .run/nginx]
    nginx -c $PWD/.run/nginx.conf -p $PWD/.run/nginx -e stderr

Ports, the number of waitingroom processes and the body limit come from
ticketing.config.Settings. docker-compose.yml renders the same template with the nginx
image's envsubst from the GATEWAY_* variables it sets.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import sys
from pathlib import Path

from ticketing.auth import LEEWAY_SECONDS
from ticketing.config import Settings
from ticketing.domain.queue import MIN_RATE_SPAN_SECONDS, RATE_WINDOW_SECONDS
from ticketing.jwt_speed import HS256Signer
from ticketing.redis_url import RedisTarget, parse_redis_url
from ticketing.validation import MAX_ID
from waitingroom.queue import scripts as queue_scripts
from waitingroom.queue.metrics import WAIT_BUCKETS
from waitingroom.queue.store import gcra_limit
from waitingroom.queue.ticket import TICKET_TTL_SECONDS

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
# The gateway's Lua (the queue join it answers itself); the template's lua_package_path.
LUA_DIR = Path(__file__).resolve().with_name("lua")
# The merged OpenAPI document the gateway serves at /openapi.json (deploy/openapi.py).
OPENAPI_FILE = Path(__file__).resolve().with_name("openapi.json")
PLACEHOLDER = re.compile(r"\$\{(GATEWAY_[A-Z_]+)\}")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # noqa: S104 - recognised, nothing binds to it here
# A waitingroom process holds about this many websockets under 20,000 open files.
SOCKETS_PER_WAITINGROOM = 15_000
# Connections one nginx worker is planned for: under its worker_connections (16,384) with
# room for the kernel's reuseport spread being a little uneven.
CONNECTIONS_PER_WORKER = 15_000
# How long a worker trusts its Redis Cluster slot map (deploy/lua/redis_link.lua) without a
# MOVED or a node refusing: a slot that moves says so at once (MOVED); this catches the
# rest (a primary replaced while no join touched it, nodes added) at one CLUSTER SLOTS a
# minute per worker.
SLOT_MAP_TTL_SECONDS = 60


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def upstream_servers(host: str, ports: list[int]) -> str:
    """The ``server`` lines of an upstream block, one per port. ``max_fails=0``: a process
    that refused a connection is tried again by the next request, not shunned for
    fail_timeout (10 s). The supervisor restarts the waitingroom processes together, and
    with every server shunned nginx answered 502 "no live upstreams" for ten seconds after
    they were back (bench/chaos.py); a refused connection on loopback costs nothing, and a
    request still moves on to the next server (proxy_next_upstream)."""
    return " ".join(f"server {_address(host, port)} max_fails=0;" for port in ports)


def real_ip_from(trusted_proxies: str) -> str:
    """The ``set_real_ip_from`` lines: the proxies whose X-Forwarded-For names the client."""
    return " ".join(f"set_real_ip_from {cidr};" for cidr in trusted_proxies.split(",") if cidr)


def worker_processes(waitingroom_processes: int) -> int:
    """Enough workers for every waiting fan's two connections (fan side and upstream)."""
    connections = 2 * SOCKETS_PER_WAITINGROOM * waitingroom_processes
    return max(2, math.ceil(connections / CONNECTIONS_PER_WORKER))


def variables(settings: Settings, access_log: str = "logs/access.log") -> dict[str, str]:
    # Services bound to a wildcard address are still reached over loopback.
    backend_host = "127.0.0.1" if settings.host in WILDCARD_HOSTS else settings.host
    return {
        # The gateway listens where the services do; every interface when no host is set.
        "GATEWAY_LISTEN": _address(settings.host or "0.0.0.0", settings.gateway_port),  # noqa: S104
        "GATEWAY_WORKER_PROCESSES": str(worker_processes(settings.waitingroom_processes)),
        "GATEWAY_CATALOG_UPSTREAM": _address(backend_host, settings.catalog_port),
        "GATEWAY_WAITINGROOM_SERVERS": upstream_servers(backend_host, settings.waitingroom_ports),
        "GATEWAY_BOOKING_SERVERS": upstream_servers(backend_host, settings.booking_ports),
        "GATEWAY_MAX_BODY_BYTES": str(settings.max_body_bytes),
        "GATEWAY_REAL_IP_FROM": real_ip_from(settings.trusted_proxies),
        "GATEWAY_ACCESS_LOG": access_log,
        "GATEWAY_METRICS_LISTEN": _address(backend_host, settings.gateway_metrics_port),
        "GATEWAY_LUA_DIR": str(LUA_DIR),
        "GATEWAY_OPENAPI_FILE": str(OPENAPI_FILE),
        "GATEWAY_QUEUE_JOIN": lua_table(queue_join_options(settings)),
        "GATEWAY_RESOLVER": system_resolver(),
    }


def system_resolver(resolv_conf: Path = Path("/etc/resolv.conf")) -> str:
    """The first nameserver of this host, for nginx's Lua to look up a Redis host name
    (upstream names nginx resolves itself at start; a Redis address needs none)."""
    try:
        for line in resolv_conf.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                return f"[{words[1]}]" if ":" in words[1] else words[1]
    except OSError:
        pass
    return "127.0.0.1"


def queue_join_options(settings: Settings) -> dict[str, object]:
    """What deploy/lua/queue_join.lua needs to answer a join as the waitingroom would,
    taken from the same Python (keys, script, limits, token header, buckets) so that the
    two cannot drift. The secrets are not here: the gateway reads them from its
    environment (``python -m deploy.gateway`` sets them)."""
    prefix = settings.redis_prefix
    return {
        "enabled": settings.gateway_queue_join == "on",
        "jwt_algorithm": settings.jwt_algorithm,
        "token_header": HS256Signer.HEADER.decode(),
        "leeway": LEEWAY_SECONDS,
        **redis_options(parse_redis_url(settings.redis_url)),
        "redis_timeout_ms": 2000,
        "redis_idle_ms": 60_000,
        "redis_pool": 256,
        "events_key": prefix + "queue:events",
        "key_prefix": prefix + "q:{",
        # The script's name in Redis (EVALSHA): SHA-1 by Redis's protocol, not a safeguard.
        "place_sha": hashlib.sha1(queue_scripts.PLACE.encode(), usedforsecurity=False).hexdigest(),
        "user_limit": list(gcra_limit(settings.queue_user_rate_per_minute)),
        "ip_limit": list(gcra_limit(settings.queue_ip_rate_per_minute)),
        "rate_window": RATE_WINDOW_SECONDS,
        "rate_min_span": MIN_RATE_SPAN_SECONDS,
        "ticket_ttl": TICKET_TTL_SECONDS,
        "wait_buckets": list(WAIT_BUCKETS),
        "max_id": min(MAX_ID, 2**53 - 1),  # ids Lua numbers hold exactly; larger ones pass
        "stats_dict": "queue_join_stats",
    }


def redis_options(target: RedisTarget) -> dict[str, object]:
    """Where deploy/lua/redis_link.lua finds Redis: the mode and its nodes (the server; the
    cluster's seed nodes; the sentinels), the db and Sentinel's name for the primary. The
    password goes in the environment (deploy/gateway.py)."""
    return {
        "redis_mode": target.mode,
        # A unix socket (its path, port 0) as nginx's cosockets name one.
        "redis_nodes": [
            [f"unix:{host}" if port == 0 else host, port] for host, port in target.nodes
        ],
        "redis_db": target.db,
        "redis_service": target.service or "",
        "redis_slots_ttl": SLOT_MAP_TTL_SECONDS,
    }


_LUA_SAFE = re.compile(r"[ -~]*")  # printable ASCII


def lua_table(value: object) -> str:
    """A Lua literal of ``value`` (dicts, lists, str, int, float, bool) on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if not _LUA_SAFE.fullmatch(value):
            raise ValueError(f"not printable ASCII: {value!r}")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_table(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {lua_table(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


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
    parser = argparse.ArgumentParser(
        prog="python -m deploy.render_nginx",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", type=Path, default=Path(".run/nginx.conf"))
    parser.add_argument("--prefix", type=Path, default=Path(".run/nginx"))
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    values = variables(settings)
    write(settings, args.output, args.prefix)
    print(
        f"render_nginx: wrote {args.output} (listen {values['GATEWAY_LISTEN']}, "
        f"{values['GATEWAY_WORKER_PROCESSES']} workers; "
        f"catalog_api {values['GATEWAY_CATALOG_UPSTREAM']}; "
        f"waitingroom {', '.join(map(str, settings.waitingroom_ports))}; "
        f"booking {', '.join(map(str, settings.booking_ports))})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
