"""What nginx's environment holds (deploy/gateway.py): no secret or password of the
platform's but the keys its join path reads; under RS256 with the join path off, none that
signs anything."""

from __future__ import annotations

import dataclasses
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from deploy.gateway import gateway_env
from ticketing.config import Settings
from ticketing.settings_schema import Secret, Url, declared

HS256 = Settings(
    env="test",
    jwt_secret="h" * 40,
    queue_ticket_secret="q" * 40,
    admission_secret="a" * 40,
    redis_url="redis://:redis-pass@127.0.0.1:6379/0",
)
# Every secret and URL the platform has, as make run's environment carries them.
BASE = {
    **{d.variable: f"value-of-{d.variable}" for d in declared(Settings) if d.type in (Secret, Url)},
    "TICKETING_JWT_PRIVATE_KEY_FILE": "/keys/private.pem",
    "TICKETING_GATEWAY_PORT": "8080",
    "PATH": "/usr/bin",
}


def test_under_hs256_nginx_gets_the_token_and_line_keys_and_nothing_else_secret():
    env = gateway_env(HS256, BASE)
    kept = {k for k in env if k in BASE and k not in ("TICKETING_GATEWAY_PORT", "PATH")}
    assert kept == {"TICKETING_JWT_SECRET", "TICKETING_QUEUE_TICKET_SECRET"}
    assert env["TICKETING_JWT_SECRET"] == "h" * 40  # the settings', not the base's
    assert env["TICKETING_QUEUE_TICKET_SECRET"] == "q" * 40
    assert env["TICKETING_GATEWAY_REDIS_PASSWORD"] == "redis-pass"
    for withheld in (
        "TICKETING_ADMISSION_SECRET",
        "TICKETING_COMMAND_SECRET",
        "TICKETING_DATABASE_URL",
        "TICKETING_AMQP_URL",
        "TICKETING_STRIPE_API_KEY",
        "TICKETING_JWT_PRIVATE_KEY_FILE",
    ):
        assert withheld not in env, withheld
    assert (env["TICKETING_GATEWAY_PORT"], env["PATH"]) == ("8080", "/usr/bin")


def test_with_its_join_path_off_nginx_holds_no_line_key():
    off = dataclasses.replace(HS256, gateway_queue_join="off")
    assert "TICKETING_QUEUE_TICKET_SECRET" not in gateway_env(off, BASE)
    # control: on, it does
    assert "TICKETING_QUEUE_TICKET_SECRET" in gateway_env(HS256, BASE)


def test_under_rs256_with_the_join_path_off_nginx_holds_public_keys_only():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    rs256 = dataclasses.replace(
        HS256, jwt_algorithm="RS256", jwt_public_key=public.decode(), gateway_queue_join="off"
    )
    env = gateway_env(rs256, BASE)
    assert not {k for k in env if k in BASE and k not in ("TICKETING_GATEWAY_PORT", "PATH")}
    assert list(json.loads(env["TICKETING_GATEWAY_JWT_KEYS"]).values()) == [public.decode()]
