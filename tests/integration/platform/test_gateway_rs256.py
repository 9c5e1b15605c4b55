"""The gateway's own check of RS256 access tokens (deploy/lua/queue_join.lua), in a real
nginx with the platform's public keys alone.

The Lua only ever accepts: a token it verifies goes on to the next step of the join (here,
the queue-enabled events snapshot, which has no such event: reason ``event``); a token it
does not is passed to the waitingroom as ``token``. No waitingroom listens, so either way
the fan gets the gateway's 502, and the fallback counters on /metrics tell which step it
reached."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from deploy.gateway import command, gateway_env
from deploy.render_nginx import write
from tests.servers import RUN_ID
from tests.support import free_port, wait_until
from ticketing import keys
from ticketing.config import Settings


def _pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclasses.dataclass
class Gateway:
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path

    def reason(self, token: str) -> str:
        """The fallback reason the join with ``token`` was counted under."""
        before = self._fallbacks()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.settings.gateway_port}/queue/1/join",
            method="POST",
            headers={"Authorization": f"Bearer {token}"},
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=5)
        answer.value.close()
        assert answer.value.code == 502
        after = self._fallbacks()
        (moved,) = [r for r in after if after[r] != before.get(r, 0)]
        return moved

    def _fallbacks(self) -> dict[str, int]:
        url = f"http://127.0.0.1:{self.settings.gateway_metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith('ticketing_gateway_queue_join_fallbacks_total{reason="'):
                name, value = line.split('"')[1], line.rsplit(" ", 1)[1]
                out[name] = int(value)
        return out


CURRENT = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PREVIOUS = rsa.generate_private_key(public_exponent=65537, key_size=2048)
STRANGER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gateway-rs256")
    settings = dataclasses.replace(
        Settings(),
        jwt_algorithm="RS256",
        jwt_public_key=_pem(CURRENT) + _pem(PREVIOUS),  # mid-rollover: both verify
        redis_prefix=f"tkt{RUN_ID}gwrs:",
        gateway_port=free_port(),
        gateway_metrics_port=free_port(),
        waitingroom_port=free_port(),
        waitingroom_processes=1,
    )
    conf, prefix, log = tmp / "nginx.conf", tmp / "nginx", tmp / "nginx.log"
    write(settings, conf, prefix)
    # python -m deploy.gateway reads its settings from this environment, as in make run.
    start_env = {**os.environ, **settings.to_env(), "TICKETING_ENV": "test"}
    env = gateway_env(settings, start_env)
    # Nothing that signs an access or admission token reaches nginx.
    for variable in ("JWT_SECRET", "JWT_PRIVATE_KEY_FILE", "ADMISSION_SECRET"):
        assert f"TICKETING_{variable}" in start_env and f"TICKETING_{variable}" not in env
    assert set(json.loads(env["TICKETING_GATEWAY_JWT_KEYS"])) == {
        keys.kid_of(CURRENT.public_key()),
        keys.kid_of(PREVIOUS.public_key()),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(command(conf, prefix), stdout=out, stderr=out, env=start_env)
    running = Gateway(settings, process, log)
    try:

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                running._fallbacks()
            except OSError:
                return False
            return True

        wait_until(up, 20, "the gateway")
        yield running
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(timeout=10)


def _token(key: rsa.RSAPrivateKey, kid: str | None = None, **claims: object) -> str:
    body = {"sub": "rs-fan", "roles": [], "iat": int(time.time()), "exp": int(time.time()) + 60}
    body.update(claims)
    headers = {"kid": kid if kid is not None else keys.kid_of(key.public_key())}
    return jwt.encode(body, key, algorithm="RS256", headers=headers)


def test_tokens_of_either_key_in_the_ring_are_verified(gateway: Gateway):
    assert gateway.reason(keys.Signer(CURRENT).sign(_claims())) == "event"
    assert gateway.reason(_token(PREVIOUS)) == "event"
    # The same token again: answered from the worker's memo of verified tokens.
    again = _token(CURRENT, sub="rs-again")
    assert [gateway.reason(again) for _ in range(3)] == ["event"] * 3


def _claims() -> dict[str, object]:
    now = int(time.time())
    return {"sub": "rs-signer", "roles": ["fan"], "iat": now, "exp": now + 60}


def test_tokens_it_cannot_verify_go_to_the_waitingroom(gateway: Gateway, settings: Settings):
    current_kid = keys.kid_of(CURRENT.public_key())
    good = _token(CURRENT)
    head, body, sig = good.split(".")
    forged_sig = sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")
    refused = {
        "unknown key": _token(STRANGER),
        "a stranger's key under our kid": _token(STRANGER, kid=current_kid),
        "HS256 with the JWT secret": jwt.encode(
            {"sub": "x", "exp": int(time.time()) + 60}, settings.jwt_secret, algorithm="HS256"
        ),
        "no kid": jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, CURRENT, "RS256"),
        "expired": _token(CURRENT, exp=int(time.time()) - 60),
        "not yet valid": _token(CURRENT, nbf=int(time.time()) + 600),
        "other claims": _token(CURRENT, aud="someone"),
        "forged signature": f"{head}.{body}.{forged_sig}",
        "another body": f"{head}.{_token(CURRENT, sub='mallory').split('.')[1]}.{sig}",
    }
    assert {name: gateway.reason(token) for name, token in refused.items()} == dict.fromkeys(
        refused, "token"
    )
