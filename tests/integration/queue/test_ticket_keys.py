"""Issue 12: the gateway holds the key of places in line (it answers joins with their
tickets), never the one of admitted fans' tickets, which give a session back after a Redis
loss and with it admission tokens. What a taken gateway could sign, an "admitted" ticket
under the line key, restores nothing; the fan's real ticket does (the control)."""

from __future__ import annotations

import jwt

from tests.integration.queue.support import (
    admitted_fan,
    get_queue,
    join,
    lose_the_queue,
    patch_queue,
)


async def test_a_session_ticket_signed_with_the_gateways_key_gets_no_session(
    qclient, queue_settings, pool
) -> None:
    event, admitted = await admitted_fan(qclient, queue_settings, pool, "forger")
    real = admitted["queue_ticket"]
    claims = jwt.decode(real, options={"verify_signature": False})
    assert claims["where"] == "admitted"
    forged = jwt.encode(claims, queue_settings.queue_ticket_secret, algorithm="HS256")
    await lose_the_queue(qclient, event)
    await patch_queue(qclient, queue_settings, event, paused=True)  # nobody admitted meanwhile

    status, problem = await join(qclient, queue_settings, "forger", event, {"queue_ticket": forged})
    assert (status, problem["code"]) == (400, "validation_error"), problem
    assert "queue_ticket" in problem["detail"]
    figures = await get_queue(qclient, queue_settings, event)
    assert (figures["active"], figures["waiting"]) == (0, 0)  # changed nothing

    # The control: the same claims under the sessions' own key give the session back.
    status, back = await join(qclient, queue_settings, "forger", event, {"queue_ticket": real})
    assert status == 200, back
    assert back["status"] == "admitted" and back["admission_token"], back
    assert (await get_queue(qclient, queue_settings, event))["active"] == 1
