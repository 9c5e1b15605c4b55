"""PostgreSQL servers of our own on this machine: a primary on a port and in a directory of
its own, streaming replicas of it (``pg_basebackup -R``), promotion with ``pg_ctl promote``.

For the tests and a local cluster; it never touches the machine's own clusters (their
ports, data directories and sockets are not ours). As root, PostgreSQL's programs run as
the ``postgres`` user (``initdb`` refuses root), which then owns the directory.

    python -m deploy.pg_cluster up --dir .run/pg-cluster --port 5442 --replicas 1
    python -m deploy.pg_cluster down --dir .run/pg-cluster
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

OWNER = "postgres"


def pg_bin(program: str) -> str:
    """A program of the newest PostgreSQL installed (Debian keeps them off PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"), key=_version)
    if found:
        return found[-1]
    on_path = shutil.which(program)
    if on_path is None:
        raise FileNotFoundError(f"{program}: no PostgreSQL installed")
    return on_path


def _version(path: str) -> float:
    try:
        return float(Path(path).parents[1].name)
    except ValueError:
        return 0.0


def as_owner(command: list[str]) -> list[str]:
    """``command`` as the user that owns our servers: ``postgres`` when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", OWNER, "--", *command]
    return command


def own(path: Path) -> None:
    """Make ``path`` (a directory we created) the servers' owner's, when we are root."""
    if os.geteuid() == 0:
        shutil.chown(path, OWNER, OWNER)


def run(command: list[str], timeout: float = 120) -> str:
    done = subprocess.run(
        as_owner(command), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip() or done.stdout}")
    return done.stdout


@dataclass
class LocalServer:
    """One PostgreSQL server: its data directory, port and log."""

    data_dir: Path
    port: int

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, database: str = "ticketing") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self) -> None:
        try:
            run([pg_bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log), "-w", "start"])
        except RuntimeError as exc:
            tail = self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""
            raise RuntimeError(f"{exc}\n{tail}") from None

    def stop(self, mode: str = "fast") -> None:
        """Stop it (``immediate``: no shutdown checkpoint, as a crash would leave it)."""
        if self.running():
            run([pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])

    def kill(self) -> None:
        """SIGKILL the postmaster: the server is gone at once, as on a lost machine."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)

    def promote(self) -> None:
        run([pg_bin("pg_ctl"), "-D", str(self.data_dir), "-w", "promote"])

    def pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except (OSError, PermissionError):
            return None
        return int(first) if first.strip().isdigit() else None

    def running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


# Settings of our servers beyond initdb's: only loopback, sockets in the cluster's own
# directory, enough senders for replicas, and a standby that answers reads and tells the
# primary what it still reads (fewer queries cancelled by replay).
_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
fsync = on
"""


def init_primary(base: Path, port: int, *, synchronous_standby: str = "") -> LocalServer:
    """A new primary in ``base/primary``, started. With ``synchronous_standby`` (a
    replica's name) every commit waits until that replica has it on disk."""
    base.mkdir(parents=True, exist_ok=True)
    own(base)
    server = LocalServer(base / "primary", port)
    run(
        [
            pg_bin("initdb"),
            "-D",
            str(server.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )
    conf = _CONF.format(port=port, sockets=base)
    if synchronous_standby:
        conf += f"synchronous_standby_names = '{synchronous_standby}'\nsynchronous_commit = on\n"
    _append(server.data_dir / "postgresql.conf", conf)
    server.start()
    return server


def add_replica(primary: LocalServer, base: Path, port: int, name: str) -> LocalServer:
    """A streaming replica of ``primary`` in ``base/<name>``, started: a base backup
    (immediate checkpoint, WAL streamed alongside, a replication slot of its name so the
    primary keeps the WAL it has not received) with ``-R``, which writes its
    ``primary_conninfo`` and ``standby.signal``."""
    server = LocalServer(base / name, port)
    conninfo = f"host=127.0.0.1 port={primary.port} user=postgres application_name={name}"
    run(
        [
            pg_bin("pg_basebackup"),
            "-d",
            conninfo,
            "-D",
            str(server.data_dir),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-C",
            "-S",
            name,
        ]
    )
    _append(server.data_dir / "postgresql.conf", f"port = {port}\n")
    server.start()
    return server


def _append(path: Path, text: str) -> None:
    # As root the file is postgres's; appending as root keeps its owner.
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


def remove(base: Path, servers: list[LocalServer]) -> None:
    """Stop every server (immediately: they are thrown away) and delete ``base``."""
    for server in servers:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            server.stop("immediate")
        server.kill()
    shutil.rmtree(base, ignore_errors=True)


def _servers(base: Path) -> list[LocalServer]:
    found = []
    for conf in sorted(base.glob("*/postgresql.conf")):
        ports = [line for line in conf.read_text().splitlines() if line.startswith("port = ")]
        found.append(LocalServer(conf.parent, int(ports[-1].split("=")[1])))
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.pg_cluster", description=__doc__)
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--dir", type=Path, default=Path(".run/pg-cluster"))
    parser.add_argument("--port", type=int, default=5442, help="the primary's; replicas follow")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--synchronous", action="store_true", help="the first replica is")
    args = parser.parse_args(argv)
    base = args.dir.resolve()
    if args.action == "down":
        remove(base, _servers(base))
        return
    sync = "replica1" if args.synchronous and args.replicas else ""
    primary = init_primary(base, args.port, synchronous_standby=sync)
    replicas = [
        add_replica(primary, base, args.port + i, f"replica{i}")
        for i in range(1, args.replicas + 1)
    ]
    print(f"TICKETING_DATABASE_URL={primary.url()}")
    print("TICKETING_DATABASE_REPLICA_URLS=" + " ".join(r.url() for r in replicas))


if __name__ == "__main__":
    main()
