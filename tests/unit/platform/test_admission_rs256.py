"""Admission tokens under RS256 (waitingroom/queue/admission.py): signed with the platform's
key by the waitingroom, verified by a front door that holds the public keys alone."""

from __future__ import annotations

import dataclasses
import time

import jwt
import pytest

from ticketing import keys
from ticketing.config import Settings
from ticketing.problems import Problem
from waitingroom.queue.admission import admission_for_session, issue_admission, verify_admission


def _settings(tmp_path) -> Settings:
    keys.init(tmp_path)
    return Settings.from_env(
        {
            "TICKETING_ENV": "test",
            "TICKETING_JWT_ALGORITHM": "RS256",
            "TICKETING_JWT_PUBLIC_KEY": str(tmp_path / keys.PUBLIC),
            "TICKETING_JWT_PRIVATE_KEY_FILE": str(tmp_path / keys.SIGNING),
        }
    )


def _refused(settings: Settings, token: str, user: str = "ann", event: int = 7) -> str:
    with pytest.raises(Problem) as answer:
        verify_admission(settings, token, user, event)
    assert answer.value.status == 403 and answer.value.code == "admission_invalid"
    return answer.value.detail


def test_rs256_admissions_verify_with_the_public_keys_alone(tmp_path):
    waitingroom = _settings(tmp_path)
    front_door = dataclasses.replace(waitingroom, jwt_private_key_file="")
    token = issue_admission(waitingroom, "ann", 7, 60)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"] == keys.platform_signer(waitingroom).kid
    verify_admission(front_door, token, "ann", 7)
    assert "someone else" in _refused(front_door, token, user="bob")
    assert "another event" in _refused(front_door, token, event=8)
    assert "expired" in _refused(front_door, issue_admission(waitingroom, "ann", 7, -60))
    # An HS256 admission with the admission secret is not one of ours under RS256.
    hs = issue_admission(dataclasses.replace(waitingroom, jwt_algorithm="HS256"), "ann", 7, 60)
    assert jwt.get_unverified_header(hs)["alg"] == "HS256"
    assert "not valid" in _refused(front_door, hs)


def test_a_session_token_is_the_same_every_time_and_follows_the_key(tmp_path):
    waitingroom = _settings(tmp_path)
    expires = int(time.time()) + 120
    first = admission_for_session(waitingroom, "ann", 7, expires)
    assert admission_for_session(waitingroom, "ann", 7, expires) == first
    verify_admission(waitingroom, first, "ann", 7)
    keys.rotate(tmp_path)
    rolled = _settings(tmp_path)
    second = admission_for_session(rolled, "ann", 7, expires)
    assert second != first  # signed by the new key, not remembered from the old one
    verify_admission(rolled, first, "ann", 7)  # the old key still verifies mid-rollover
    verify_admission(rolled, second, "ann", 7)
    keys.retire(tmp_path)
    assert "not valid" in _refused(_settings(tmp_path), first)
