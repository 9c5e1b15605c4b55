"""Queue tickets: signed with their own key, bound to one fan and one event."""

import dataclasses

import jwt
import pytest

from ticketing.config import Settings
from ticketing.problems import Problem
from waitingroom.queue.ticket import admitted_key, issue_ticket, read_queue_ticket, read_ticket

SETTINGS = Settings(queue_ticket_secret="q" * 40, admission_secret="s" * 40)


def test_a_ticket_gives_back_where_its_fan_stood():
    ticket = issue_ticket(SETTINGS, 5, "alice", "waiting", 1_700_000_000_000_123, "e1")
    assert read_ticket(SETTINGS, ticket, "alice", 5) == ("waiting", 1_700_000_000_000_123, "e1")
    drawn = issue_ticket(SETTINGS, 5, "alice", "waiting", -3, "e1")
    assert read_ticket(SETTINGS, drawn, "alice", 5) == ("waiting", -3, "e1")


def test_only_places_in_line_are_restorable():
    admitted = issue_ticket(SETTINGS, 5, "alice", "admitted", 1_700_000_000_000, "e1")
    assert read_ticket(SETTINGS, admitted, "alice", 5) is None


@pytest.mark.parametrize(("who", "event"), [("bob", 5), ("alice", 6)])
def test_someone_elses_ticket_is_refused(who, event):
    ticket = issue_ticket(SETTINGS, 5, "alice", "waiting", 10, "e1")
    with pytest.raises(Problem) as caught:
        read_ticket(SETTINGS, ticket, who, event)
    assert (caught.value.status, caught.value.code) == (403, "queue_ticket_invalid")


def test_forged_or_foreign_tickets_are_invalid_input():
    other_key = dataclasses.replace(SETTINGS, queue_ticket_secret="x" * 40)
    forged = issue_ticket(other_key, 5, "alice", "waiting", 1, "e1")
    # our key but not a ticket's claims (say, an admission token) is no ticket either
    admission_like = jwt.encode({"sub": "alice", "event_id": 5, "exp": 2**40}, "q" * 40)
    for token in (forged, admission_like, "nope", 42, ""):
        with pytest.raises(Problem) as caught:
            read_ticket(SETTINGS, token, "alice", 5)
        assert (caught.value.status, caught.value.code) == (400, "validation_error")


def test_an_admitted_ticket_is_signed_with_a_key_the_gateway_never_gets():
    """A place in line is signed with the queue-ticket secret, which the gateway holds (it
    answers joins); an admitted fan's session with a key derived from the admission secret,
    which it does not: a taken gateway cannot sign a session back."""
    admitted = issue_ticket(SETTINGS, 5, "alice", "admitted", 1_700_000_000_000, "e1")
    waiting = issue_ticket(SETTINGS, 5, "alice", "waiting", 10, "e1")
    line_key = SETTINGS.queue_ticket_secret
    jwt.decode(waiting, line_key, algorithms=["HS256"])  # the gateway reads its own kind
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(admitted, line_key, algorithms=["HS256"])
    for key in (line_key, SETTINGS.admission_secret):
        assert admitted_key(SETTINGS) != key
    other_admission = dataclasses.replace(SETTINGS, admission_secret="a" * 40)
    assert admitted_key(other_admission) != admitted_key(SETTINGS)
    assert read_queue_ticket(SETTINGS, admitted, "alice", 5) == (
        "admitted",
        1_700_000_000_000,
        "e1",
    )


def test_each_key_signs_its_own_kind_only():
    claims = jwt.decode(
        issue_ticket(SETTINGS, 5, "alice", "waiting", 10, "e1"),
        SETTINGS.queue_ticket_secret,
        algorithms=["HS256"],
    )
    # what a taken gateway could sign: a session under the line key
    forged_session = jwt.encode(
        {**claims, "where": "admitted", "place": 2**41}, SETTINGS.queue_ticket_secret
    )
    # and a place in line under the sessions' key is no ticket of ours either
    line_under_session_key = jwt.encode(claims, admitted_key(SETTINGS))
    for token in (forged_session, line_under_session_key):
        with pytest.raises(Problem) as caught:
            read_queue_ticket(SETTINGS, token, "alice", 5)
        assert (caught.value.status, caught.value.code) == (400, "validation_error")
    # control: the same claims under their own key are read
    assert read_queue_ticket(
        SETTINGS, jwt.encode(claims, SETTINGS.queue_ticket_secret), "alice", 5
    ) == ("waiting", 10, "e1")
