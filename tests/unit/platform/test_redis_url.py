"""TICKETING_REDIS_URL names one server, a Redis Cluster's seed nodes, or the sentinels of
a primary: the scheme chooses the mode (ticketing.redis_url)."""

from __future__ import annotations

import pytest

from tests.unit.platform.test_config import OWN_SECRETS
from ticketing.config import Settings
from ticketing.redis_url import RedisTarget, parse_redis_url
from ticketing.settings_schema import ConfigError


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("redis://127.0.0.1:6379/0", RedisTarget("single", (("127.0.0.1", 6379),), None, 0, None)),
        ("redis://cache", RedisTarget("single", (("cache", 6379),), None, 0, None)),
        (
            "redis://:s%40cret@cache:7000/3",
            RedisTarget("single", (("cache", 7000),), "s@cret", 3, None),
        ),
        ("rediss://cache:6380", RedisTarget("single", (("cache", 6380),), None, 0, None)),
        (
            "redis+cluster://r1:7000,r2:7001,r3",
            RedisTarget("cluster", (("r1", 7000), ("r2", 7001), ("r3", 6379)), None, 0, None),
        ),
        (
            "redis+cluster://:pw@[::1]:7000,10.0.0.2:7000/0",
            RedisTarget("cluster", (("::1", 7000), ("10.0.0.2", 7000)), "pw", 0, None),
        ),
        (
            "redis+sentinel://s1:26379,s2:26380,s3/tk-main",
            RedisTarget(
                "sentinel", (("s1", 26379), ("s2", 26380), ("s3", 26379)), None, 0, "tk-main"
            ),
        ),
        (
            "redis+sentinel://:data-pw@s1:26379/tk-main/2",
            RedisTarget("sentinel", (("s1", 26379),), "data-pw", 2, "tk-main"),
        ),
        ("REDIS+CLUSTER://r1:7000", RedisTarget("cluster", (("r1", 7000),), None, 0, None)),
    ],
)
def test_each_form_names_its_mode_nodes_password_and_db(url, target):
    assert parse_redis_url(url) == target


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("cache:6379", "must be a URL"),
        ("http://cache:6379", "unknown scheme 'http'"),
        ("redis+cluster://r1:7000,r2:7001/1", "only db 0"),
        ("redis+cluster://r1:7000,r1:7000", "names a node twice"),
        ("redis+cluster://r1:7000,,r2:7001", "'' is not host:port"),
        ("redis+cluster://r1:99999", "is not host:port"),
        ("redis+cluster://r1:port", "is not host:port"),
        ("redis+cluster://r1:7000?timeout=1", "no query"),
        ("redis+cluster://admin:own-secret@r1:7000", "no user name"),
        ("redis+cluster://own-secret@r1:7000", "after a colon"),
        ("redis+sentinel://s1:26379", "/<master-name>"),
        ("redis+sentinel://s1:26379/", "/<master-name>"),
        ("redis+sentinel://s1:26379/tk/1/2", "/<master-name>"),
        ("redis+sentinel://s1:26379/tk/one", "must be a number"),
        ("redis://:own-secret@cache:port/0", "the port is not a number"),
        ("redis://:own-secret@cache/0?db=x", "the db must be a number"),
    ],
)
def test_a_url_naming_no_target_is_refused_with_the_reason(url, said):
    with pytest.raises(ConfigError) as refused:
        parse_redis_url(url)
    assert said in str(refused.value)
    assert "TICKETING_REDIS_URL" in str(refused.value)
    assert "own-secret" not in str(refused.value)


def test_the_setting_takes_each_form_and_masks_its_password():
    for url in (
        "redis://:own-secret@cache:6379/0",
        "redis+cluster://:own-secret@r1:7000,r2:7000",
        "redis+sentinel://:own-secret@s1:26379,s2:26379/tk-main",
    ):
        settings = Settings.from_env({**OWN_SECRETS, "TICKETING_REDIS_URL": f" {url}\n"})
        assert settings.redis_url == url
        assert "own-secret" not in repr(settings)


def test_the_setting_refuses_what_parse_redis_url_refuses():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**OWN_SECRETS, "TICKETING_REDIS_URL": "redis+cluster://r1:7000/2"})
    assert "TICKETING_REDIS_URL" in str(refused.value)
    assert "only db 0" in str(refused.value)
