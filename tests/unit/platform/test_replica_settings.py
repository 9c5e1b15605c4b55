"""The replica settings, and the replica sampler's arithmetic, on plain values."""

from __future__ import annotations

import pytest

from catalog_api.read_routing import view_ttl
from catalog_api.replicas import Replica, Sample, _measure, server_names
from ticketing.config import ConfigError, Settings

DEV = {"TICKETING_ENV": "dev"}


def test_replica_urls_are_space_separated_and_their_passwords_masked() -> None:
    s = Settings.from_env(
        {
            **DEV,
            "TICKETING_DATABASE_REPLICA_URLS": " postgresql://app:pw@db2:5432/t\n"
            "  postgresql://app@db3:5433/t ",
        }
    )
    assert s.database_replica_urls.split() == [
        "postgresql://app:pw@db2:5432/t",
        "postgresql://app@db3:5433/t",
    ]
    assert "pw" not in repr(s)
    assert "postgresql://app:********@db2:5432/t postgresql://app@db3:5433/t" in repr(s)


def test_a_replica_url_must_be_postgresql() -> None:
    with pytest.raises(ConfigError, match="TICKETING_DATABASE_REPLICA_URLS"):
        Settings.from_env({**DEV, "TICKETING_DATABASE_REPLICA_URLS": "redis://x:6379/0"})


def test_prod_refuses_the_published_password_in_a_replica_url() -> None:
    env = {"TICKETING_DATABASE_REPLICA_URLS": "postgresql://u:ticketing@db2/t"}
    with pytest.raises(ConfigError, match="TICKETING_DATABASE_REPLICA_URLS"):
        Settings.from_env(env)


def test_a_multi_host_url_names_each_server() -> None:
    url = "postgresql://u:pw@a:5432,b/t?target_session_attrs=read-write"
    assert server_names(url) == ["a:5432", "b:5432"]


def row(**values: object) -> dict[str, object]:
    return {"in_recovery": True, "receive_lsn": 100, "since_replay": 7.0, **values}


def test_a_replica_that_replayed_all_the_primary_wrote_has_no_lag() -> None:
    sample = _measure(row(replay_lsn=500), primary_lsn=500, at=1.0)  # type: ignore[arg-type]
    assert (sample.lag_bytes, sample.lag_seconds) == (0, 0.0)


def test_a_replica_behind_lags_since_its_last_replayed_commit() -> None:
    sample = _measure(row(replay_lsn=400), primary_lsn=500, at=1.0)  # type: ignore[arg-type]
    assert (sample.lag_bytes, sample.lag_seconds) == (100, 7.0)


def test_without_the_primary_a_replica_measures_against_what_it_received() -> None:
    sample = _measure(row(replay_lsn=100), primary_lsn=None, at=1.0)  # type: ignore[arg-type]
    assert sample.lag_seconds == 0.0


def test_a_node_not_in_recovery_is_no_replica() -> None:
    sample = _measure(row(in_recovery=False, replay_lsn=None), 500, 1.0)  # type: ignore[arg-type]
    assert sample.reachable and not sample.in_recovery


def test_a_replica_is_used_while_its_lag_and_the_sample_age_stay_in_bound() -> None:
    replica = Replica("postgresql://db2/t", pool=None)  # type: ignore[arg-type]
    replica.sample = Sample(10.0, True, True, replay_lsn=400, lag_seconds=0.5, lag_bytes=0)
    assert replica.usable(2.0, None, now=11.0)
    assert not replica.usable(2.0, None, now=12.0)  # 0.5 s lag + 1.5 s unsampled > 2 s
    assert not replica.usable(2.0, 401, now=11.0)  # has not replayed the admin's write
    assert replica.usable(2.0, 400, now=11.0)


def test_a_view_from_a_replica_is_cached_for_the_lag_bound_only() -> None:
    settings = Settings(env="dev", pg_replica_max_lag_seconds=2.5)
    assert view_ttl(settings, from_replica=True) == 3
    assert view_ttl(settings, from_replica=False) == settings.cache_ttl_seconds
