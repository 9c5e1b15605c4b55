"""deploy/probe.py counts a password the URL does not carry but ~/.pgpass does (where
deploy/setup.sh puts the one it gives a development role), as libpq and asyncpg do."""

from __future__ import annotations

import pytest

from deploy.probe import has_pgpass_entry


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
