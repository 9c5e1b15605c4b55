"""Start the gateway: nginx with the keys its queue join needs in its environment.

    python -m deploy.gateway -c $PWD/.run/nginx.conf -p $PWD/.run/nginx -e stderr

deploy/lua/queue_join.lua verifies fans' access tokens and signs their queue tickets with
the waitingroom's keys. They come from the environment (the config file names them in
``env`` directives and never holds them), as ticketing.config.Settings resolves them, so
the gateway and the waitingroom always agree, defaults included. Every argument is
nginx's; this process becomes nginx (exec), so signals and exit status are nginx's own.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ticketing.config import Settings


def gateway_env(settings: Settings, base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    if settings.jwt_algorithm == "HS256":
        env["TICKETING_JWT_SECRET"] = settings.jwt_secret
    else:  # RS256 tokens are the waitingroom's to verify: the gateway passes every join on
        env.pop("TICKETING_JWT_SECRET", None)
    env["TICKETING_QUEUE_TICKET_SECRET"] = settings.queue_ticket_secret
    password = urlsplit(settings.redis_url).password
    if password:
        env["TICKETING_GATEWAY_REDIS_PASSWORD"] = unquote(password)
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
