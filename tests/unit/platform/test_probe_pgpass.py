"""deploy/probe.py counts a password the URL does not carry but ~/.pgpass does (where
deploy/setup.sh puts the one it gives a development role), as libpq and asyncpg do; and it
runs before the virtualenv exists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.probe import has_pgpass_entry

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def pgpass(tmp_path, monkeypatch):
    path = tmp_path / "pgpass"
    monkeypatch.setenv("PGPASSFILE", str(path))
    return path


def test_an_entry_for_every_database_of_the_role_counts(pgpass):
    pgpass.write_text("# setup.sh\n127.0.0.1:5432:*:postgres:0123abcd\n")
    assert has_pgpass_entry("127.0.0.1", 5432, "postgres")
    assert has_pgpass_entry("127.0.0.1", 5432, None)  # the URL names no user: postgres
    # Controls: another port, role or host has no password there.
    assert not has_pgpass_entry("127.0.0.1", 5433, "postgres")
    assert not has_pgpass_entry("127.0.0.1", 5432, "ticketing")
    assert not has_pgpass_entry("db.internal", 5432, "postgres")


def test_wildcards_and_escapes_read_as_libpq_reads_them(pgpass):
    pgpass.write_text("*:*:*:app:pa\\:ss\n")
    assert has_pgpass_entry("db.internal", 6432, "app")
    # One database's entry says nothing of the others, and an empty password is none.
    pgpass.write_text("127.0.0.1:5432:ticketing:postgres:secret\n127.0.0.1:5432:*:postgres:\n")
    assert not has_pgpass_entry("127.0.0.1", 5432, "postgres")


def test_no_file_means_no_password(pgpass):
    assert not pgpass.exists()
    assert not has_pgpass_entry("127.0.0.1", 5432, "postgres")


def test_the_probe_runs_on_the_standard_library_alone():
    """deploy/setup.sh probes the servers with the system Python before the virtualenv
    exists: deploy.probe (and the settings it reads the URLs with) must not need a package
    from it. ``-S`` leaves every site-packages directory off the path."""
    bare = [sys.executable, "-S", "-c"]
    env = {"PYTHONPATH": str(ROOT), "TICKETING_ENV": "dev", "PATH": os.environ["PATH"]}
    probe = "import deploy.probe as p; p.targets(p.Settings.from_env())"
    done = subprocess.run([*bare, probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # Control: the same interpreter and path cannot import a package the venv has.
    control = subprocess.run([*bare, "import redis"], cwd=ROOT, env=env, capture_output=True)
    assert control.returncode != 0
