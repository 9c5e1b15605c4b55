"""RabbitMQ as a cluster: TICKETING_AMQP_URL names one node or several, each tried in turn
from a random one; TICKETING_AMQP_QUEUE_TYPE says classic or quorum."""

from __future__ import annotations

import pytest

from tests.unit.platform.test_config import OWN_SECRETS
from ticketing.amqp_connect import attempt_order, nodes
from ticketing.config import Settings
from ticketing.settings_schema import ConfigError

NODES = " ".join(f"amqp://tk:own-secret@rabbit-{i}:5672/prod" for i in range(3))


def test_a_cluster_is_its_nodes_urls_space_separated():
    settings = Settings.from_env({**OWN_SECRETS, "TICKETING_AMQP_URL": f"  {NODES}\n"})
    assert nodes(settings.amqp_url) == NODES.split()
    assert "own-secret" not in repr(settings.amqp_url)  # each node's password masked
    assert settings.amqp_queue_type == "classic"


def test_every_node_is_tried_once_from_the_start_on():
    urls = NODES.split()
    assert attempt_order(urls, 0) == urls
    assert attempt_order(urls, 2) == [urls[2], urls[0], urls[1]]
    assert sorted(attempt_order(urls, 1)) == sorted(urls)


@pytest.mark.parametrize("raw", ["", "   ", "http://tk:own-secret@rabbit:5672/", "rabbit:5672"])
def test_anything_but_amqp_urls_is_refused_without_echoing_a_password(raw):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(
            {
                **OWN_SECRETS,
                "TICKETING_AMQP_URL": f"{NODES.split()[0]} {raw}" if raw.strip() else raw,
            }
        )
    assert "TICKETING_AMQP_URL" in str(refused.value)
    assert "own-secret" not in str(refused.value)


def test_prod_refuses_a_published_password_on_any_node():
    with_guest = f"{NODES} amqp://guest:guest@rabbit-3:5672/prod"
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**OWN_SECRETS, "TICKETING_AMQP_URL": with_guest})
    assert "TICKETING_AMQP_URL" in str(refused.value)


def test_the_queue_type_is_classic_or_quorum():
    quorum = Settings.from_env({**OWN_SECRETS, "TICKETING_AMQP_QUEUE_TYPE": "quorum"})
    assert quorum.amqp_queue_type == "quorum"
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**OWN_SECRETS, "TICKETING_AMQP_QUEUE_TYPE": "mirrored"})
    assert "TICKETING_AMQP_QUEUE_TYPE" in str(refused.value)
