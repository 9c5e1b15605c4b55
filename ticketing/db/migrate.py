"""Versioned schema migrations (yoyo), up and down, plus database creation.

python -m ticketing.db.migrate up        # create the database if missing, apply all
python -m ticketing.db.migrate down      # roll back the newest migration
python -m ticketing.db.migrate status
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from yoyo import get_backend, read_migrations

from ticketing.config import Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _yoyo_url(database_url: str) -> str:
    parts = urlsplit(_writable_node(database_url))
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def _writable_node(database_url: str) -> str:
    """yoyo parses a URL of one host only: a failover formation's (its nodes
    comma-separated, ``target_session_attrs=read-write``) becomes the URL of the node that
    takes writes now, as libpq chooses it."""
    parts = urlsplit(database_url)
    if "," not in parts.netloc:
        return database_url
    with psycopg.connect(database_url) as conn:
        host, port = conn.info.host, conn.info.port
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if userinfo else "") + f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _database_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/") or "postgres"


def _maintenance_url(database_url: str) -> str:
    return urlunsplit(urlsplit(database_url)._replace(path="/postgres"))


def create_database(database_url: str) -> bool:
    """Create the database named in the URL if it does not exist; True when created."""
    name = _database_name(database_url)
    with psycopg.connect(_maintenance_url(database_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        log.info("created database %s", name)
        return True


def drop_database(database_url: str) -> None:
    name = _database_name(database_url)
    with psycopg.connect(_maintenance_url(database_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def _backend(database_url: str) -> Iterator[Any]:
    backend = get_backend(_yoyo_url(database_url))
    try:
        yield backend
    finally:
        backend.connection.close()


def upgrade(database_url: str) -> int:
    """Apply every pending migration; returns how many were applied."""
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with _backend(database_url) as backend, backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return len(pending)


def downgrade(database_url: str, steps: int = 1) -> int:
    """Roll back the newest ``steps`` applied migrations; returns how many were rolled back."""
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with _backend(database_url) as backend, backend.lock():
        chosen = backend.to_rollback(migrations)[:steps]
        backend.rollback_migrations(chosen)
    return len(chosen)


def status(database_url: str) -> list[tuple[str, bool]]:
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with _backend(database_url) as backend:
        applied = {m.id for m in backend.to_rollback(migrations)}
    return [(m.id, m.id in applied) for m in migrations]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ticketing.db.migrate")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--steps", type=int, default=1, help="how many to roll back (down)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("yoyo").setLevel(logging.WARNING)
    url = Settings.from_env().database_url
    if args.command == "up":
        create_database(url)
        print(f"applied {upgrade(url)} migration(s) to {_database_name(url)}")
    elif args.command == "down":
        print(f"rolled back {downgrade(url, args.steps)} migration(s)")
    else:
        for mid, applied in status(url):
            print(f"{'applied' if applied else 'pending'}  {mid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
