"""The booking commands' signature: HMAC-SHA256 of the exact body, checked in constant
time, whatever type the header arrives as; any change to the body or the secret fails."""

from __future__ import annotations

import hashlib
import hmac
import time

from ticketing.messages import command_signature, signed_by

SECRET = "a-command-secret-of-this-deployment"
BODY = b'{"type":"booking.reserve","v":1,"user_id":"fan-1","admitted":true}'


def test_the_signature_is_a_plain_hmac_of_the_body() -> None:
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert command_signature(SECRET, BODY) == expected
    assert signed_by(SECRET, BODY, expected)
    assert signed_by(SECRET, BODY, expected.encode())  # a header may arrive as bytes


def test_anything_else_is_not_signed() -> None:
    good = command_signature(SECRET, BODY)
    assert not signed_by(SECRET, BODY.replace(b"fan-1", b"fan-2"), good)
    assert not signed_by("another-secret", BODY, good)
    assert not signed_by(SECRET, BODY, command_signature("another-secret", BODY))
    for header in (None, "", 42, good.upper(), good[:-1], good + "0", b"\xff" * 64, "é" * 64):
        assert not signed_by(SECRET, BODY, header), header


def test_signing_and_checking_cost_microseconds() -> None:
    # The reserve path runs some thousands a second: each pays one sign and one check.
    body = BODY * 8
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        assert signed_by(SECRET, body, command_signature(SECRET, body))
    per_message = (time.perf_counter() - started) / rounds
    assert per_message < 50e-6, f"{per_message * 1e6:.1f} us a message"
