"""The whole stack under RS256, as `make run` starts it now: the waitingroom signs access
and admission tokens with the platform's key, every other process and the gateway hold the
public keys alone, and the gateway still answers the plain join itself (its Lua verifies
the token with the public key named by its kid).

A stack of its own (another database, Redis prefix and vhost than the shared HS256 one),
started once for this module."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e import stack as stack_module
from tests.e2e.stack import Stack, dev_token, queue_event, running_stack
from tests.integration.booking.support import own_vhost
from tests.servers import RUN_ID
from tests.support import wait_until
from ticketing import keys
from ticketing.config import Settings
from waitingroom.queue.ticket import read_ticket

GATEWAY = "gateway"


@pytest.fixture(scope="module")
def rs_stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("rs-stack")
    keys.init(workdir / "keys")
    with pytest.MonkeyPatch.context() as patch:
        # running_stack reads these from the environment it is started in.
        patch.setenv("TICKETING_JWT_ALGORITHM", "RS256")
        patch.setenv("TICKETING_JWT_PUBLIC_KEY", str(workdir / "keys" / keys.PUBLIC))
        patch.setenv("TICKETING_JWT_PRIVATE_KEY_FILE", str(workdir / "keys" / keys.SIGNING))
        # Names of its own (database, Redis prefix, collection) beside the shared stack's.
        patch.setattr(stack_module, "RUN_ID", f"{RUN_ID}rs")
        with (
            contextlib.contextmanager(own_vhost)(amqp_url) as vhost,
            running_stack(vhost, workdir) as running,
        ):
            patch.undo()
            yield running


def _join(stack: Stack, event_id: int, token: str, base: str | None = None):
    return stack.request("POST", f"/queue/{event_id}/join", None, token=token, base=base)


def _settings(stack: Stack) -> Settings:
    return Settings.from_env(stack.env)


@pytest.fixture(scope="module")
def on_sale(rs_stack: Stack) -> int:
    admin = dev_token(rs_stack, f"rs-ops-{RUN_ID}", ["admin"])
    assert jwt.get_unverified_header(admin)["alg"] == "RS256"
    event_id = queue_event(rs_stack, admin)["id"]
    status, _, body = rs_stack.request(
        "PATCH", f"/admin/queues/{event_id}", {"paused": True}, token=admin
    )
    assert status == 200, body
    probes = iter(range(10_000))

    def answered() -> bool:
        token = dev_token(rs_stack, f"rs-probe-{next(probes)}-{RUN_ID}", [])
        return _join(rs_stack, event_id, token)[1].get("X-Queue-Join") == GATEWAY

    wait_until(answered, 20, "the gateway to answer the new event's joins")
    time.sleep(1.1)  # every nginx worker's events snapshot is at most a second old
    return event_id


def test_the_gateway_answers_rs256_joins_as_the_waitingroom(rs_stack: Stack, on_sale: int):
    settings = _settings(rs_stack)
    fan = f"rs-fan-{RUN_ID}"
    token = dev_token(rs_stack, fan, [])
    status, headers, ours = _join(rs_stack, on_sale, token)
    assert status == 200 and headers.get("X-Queue-Join") == GATEWAY, ours
    assert ours["status"] == "paused"
    # Asked again: the same place, answered from the Lua's memo of verified tokens.
    status, headers, again = _join(rs_stack, on_sale, token)
    assert headers.get("X-Queue-Join") == GATEWAY and again["position"] == ours["position"]
    # The waitingroom, asked directly, verifies the same token and agrees.
    direct = f"http://127.0.0.1:{rs_stack.waitingroom_ports[0]}"
    status, headers, theirs = _join(rs_stack, on_sale, token, base=direct)
    assert status == 200 and "X-Queue-Join" not in headers
    assert theirs["position"] == ours["position"]
    where, _, _ = read_ticket(settings, ours["queue_ticket"], fan, on_sale)
    assert where == "waiting"


def test_tokens_not_signed_by_the_platform_key_are_refused(rs_stack: Stack, on_sale: int):
    settings = _settings(rs_stack)
    exp = int(time.time()) + 300
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    own_kid = keys.platform_signer(settings).kid
    refused = {
        "unknown key": keys.Signer(stranger).sign({"sub": "rs-x", "exp": exp}),
        "our kid, a stranger's key": jwt.encode(
            {"sub": "rs-x", "exp": exp}, stranger, "RS256", headers={"kid": own_kid}
        ),
        "HS256 with the JWT secret": jwt.encode(
            {"sub": "rs-x", "exp": exp}, rs_stack.env["TICKETING_JWT_SECRET"], "HS256"
        ),
    }
    for name, token in refused.items():
        status, headers, body = _join(rs_stack, on_sale, token)
        # Not the gateway's to answer: the waitingroom's 401.
        assert (status, headers.get("X-Queue-Join")) == (401, None), (name, body)
        assert body["code"] == "invalid_token", name


def test_the_key_set_is_published_through_the_gateway(rs_stack: Stack):
    status, _, body = rs_stack.request("GET", "/.well-known/jwks.json")
    assert status == 200
    assert [k["kid"] for k in body["keys"]] == [keys.platform_signer(_settings(rs_stack)).kid]
