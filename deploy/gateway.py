"""Start the gateway: nginx with the keys its queue join needs in its environment.

    python -m deploy.gateway -c $PWD/.run/nginx.conf -p $PWD/.run/nginx -e stderr

deploy/lua/queue_join.lua verifies fans' access tokens and signs the queue tickets of the
places in line it hands out. Its keys come from the environment (the config file names them
in ``env`` directives and never holds them), as ticketing.config.Settings resolves them, so
the gateway and the waitingroom always agree, defaults included. Under RS256 the gateway
gets the platform's public keys alone (``TICKETING_GATEWAY_JWT_KEYS``, kid to PEM): nothing
that signs an access token or an admission. The one signing key it holds,
``TICKETING_QUEUE_TICKET_SECRET``, signs places in line only, which the gateway writes into
Redis itself anyway; an admitted fan's ticket (a session back, so admissions) is signed with
a key derived from the admission secret, which stays out (waitingroom/queue/ticket.py).
Every argument is nginx's; this process becomes nginx (exec), so signals and exit status
are nginx's own.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from ticketing.config import Settings
from ticketing.keys import public_pems
from ticketing.redis_url import parse_redis_url
from ticketing.settings_schema import Secret, Url, declared

# What nginx never gets: keys that sign access or admission tokens (and, derived from the
# admission secret, admitted fans' queue tickets), nor any other secret or password of the
# platform's (every Secret and Url setting: the stores' and the broker's logins, Stripe's
# keys, the command secret), but the few it needs, put back below.
SIGNING_VARIABLES = (
    "TICKETING_JWT_PRIVATE_KEY_FILE",
    "TICKETING_ADMISSION_SECRET",
)
WITHHELD = frozenset(
    {d.variable for d in declared(Settings) if d.type in (Secret, Url)} | set(SIGNING_VARIABLES)
)


def gateway_env(settings: Settings, base: dict[str, str]) -> dict[str, str]:
    """nginx's environment: ``base`` without any secret, and the keys its Lua reads: the
    HS256 secret (under HS256), the platform's public keys (under RS256), the queue-ticket
    key of places in line (only while it answers joins: with
    ``TICKETING_GATEWAY_QUEUE_JOIN=off`` under RS256 it holds no key that signs anything),
    and Redis's password (the data nodes', in every mode)."""
    env = {k: v for k, v in base.items() if k not in WITHHELD}
    env.pop("TICKETING_GATEWAY_JWT_KEYS", None)
    if settings.jwt_algorithm == "HS256":
        env["TICKETING_JWT_SECRET"] = settings.jwt_secret
    else:  # RS256: verified with the platform's public keys (an external provider's go on)
        keys = public_pems(settings)
        if keys:
            env["TICKETING_GATEWAY_JWT_KEYS"] = json.dumps(keys)
    if settings.gateway_queue_join == "on":
        env["TICKETING_QUEUE_TICKET_SECRET"] = settings.queue_ticket_secret
    password = parse_redis_url(settings.redis_url).password
    if password:
        env["TICKETING_GATEWAY_REDIS_PASSWORD"] = password
    return env


def command(conf: Path, prefix: Path) -> list[str]:
    """The command line that starts the gateway on a rendered ``conf`` (for the benches;
    deploy/Procfile spells out the same)."""
    return [
        sys.executable,
        "-m",
        "deploy.gateway",
        "-c",
        str(conf.resolve()),
        "-p",
        str(prefix.resolve()),
        "-e",
        "stderr",
    ]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    # Becomes nginx (an argument list, no shell), so signals reach it directly.
    os.execve(nginx, [nginx, *args], gateway_env(Settings.from_env(), dict(os.environ)))  # noqa: S606


if __name__ == "__main__":
    main()
