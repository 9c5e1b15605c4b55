"""Admission tokens name the queue epoch they were issued in, and an admitted fan's queue
ticket reads back as a session to restore: what a reserve or a join needs to give back a
session Redis lost (issue 12)."""

import time

import jwt
import pytest

from ticketing.config import Settings
from ticketing.problems import Problem
from waitingroom.queue.admission import (
    Admission,
    admission_for_session,
    issue_admission,
    verify_admission,
)
from waitingroom.queue.status import admitted_fields
from waitingroom.queue.ticket import issue_ticket, read_queue_ticket, read_ticket

SETTINGS = Settings(admission_secret="a" * 40, queue_ticket_secret="q" * 40)


def test_a_session_token_names_its_epoch_and_is_the_same_every_time():
    expires = int(time.time()) + 600
    token = admission_for_session(SETTINGS, "ann", 7, expires, "1700000000000001")
    assert admission_for_session(SETTINGS, "ann", 7, expires, "1700000000000001") == token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {"sub": "ann", "event_id": 7, "exp": expires, "epoch": "1700000000000001"}
    assert verify_admission(SETTINGS, token, "ann", 7) == Admission(expires, "1700000000000001")
    # another epoch, another token for the same session
    assert admission_for_session(SETTINGS, "ann", 7, expires, "1700000000000002") != token


def test_a_token_without_an_epoch_restores_nothing():
    expires = int(time.time()) + 600
    old = admission_for_session(SETTINGS, "ann", 7, expires)
    assert "epoch" not in jwt.decode(old, options={"verify_signature": False})
    assert verify_admission(SETTINGS, old, "ann", 7) == Admission(expires, None)
    assert (
        verify_admission(SETTINGS, issue_admission(SETTINGS, "ann", 7, 60), "ann", 7).epoch is None
    )
    assert verify_admission(SETTINGS, issue_admission(SETTINGS, "ann", 7, 60, "e9"), "ann", 7) == (
        Admission(pytest.approx(int(time.time()) + 60, abs=2), "e9")
    )


@pytest.mark.parametrize("epoch", ["", 12, ["e1"]])
def test_a_token_with_a_malformed_epoch_is_not_valid(epoch):
    claims = {"sub": "ann", "event_id": 7, "exp": int(time.time()) + 60, "epoch": epoch}
    token = jwt.encode(claims, SETTINGS.admission_secret, algorithm="HS256")
    with pytest.raises(Problem) as caught:
        verify_admission(SETTINGS, token, "ann", 7)
    assert (caught.value.status, caught.value.code) == (403, "admission_invalid")


def test_status_answers_carry_the_placements_epoch():
    expiry_ms = (int(time.time()) + 600) * 1000 + 123
    fields = admitted_fields(SETTINGS, 7, "ann", expiry_ms, "e1")
    admission = verify_admission(SETTINGS, fields["admission_token"], "ann", 7)
    assert admission == Admission(expiry_ms // 1000, "e1")


def test_an_admitted_fans_ticket_reads_as_a_session_to_restore_not_a_place():
    ends_ms = 1_700_000_600_000
    admitted = issue_ticket(SETTINGS, 5, "alice", "admitted", ends_ms, "e1")
    assert read_queue_ticket(SETTINGS, admitted, "alice", 5) == ("admitted", ends_ms, "e1")
    assert read_ticket(SETTINGS, admitted, "alice", 5) is None  # no place in line
    waiting = issue_ticket(SETTINGS, 5, "alice", "waiting", 10, "e1")
    assert read_queue_ticket(SETTINGS, waiting, "alice", 5) == ("waiting", 10, "e1")
    sold_out = issue_ticket(SETTINGS, 5, "alice", "sold_out", 10, "e1")
    assert read_queue_ticket(SETTINGS, sold_out, "alice", 5) is None
