"""The verified-token memo must never outlive a token's expiry or remember a bad token."""

from __future__ import annotations

import time

import jwt
import pytest

from ticketing.auth import TokenVerifier
from ticketing.config import Settings
from ticketing.problems import Problem


def token(secret: str, exp: float, sub: str = "ann") -> str:
    return jwt.encode({"sub": sub, "exp": int(exp)}, secret, algorithm="HS256")


def test_a_remembered_token_is_verified_again_once_expired(monkeypatch) -> None:
    settings = Settings.from_env({"TICKETING_ENV": "test", "TICKETING_JWT_SECRET": "s" * 32})
    verifier = TokenVerifier(settings)
    now = time.time()
    fresh = token(settings.jwt_secret, now + 30)
    calls = []
    real = verifier._verify
    monkeypatch.setattr(verifier, "_verify", lambda t: calls.append(t) or real(t))
    assert verifier.verify(fresh).user_id == "ann"
    assert verifier.verify(fresh).user_id == "ann"
    assert len(calls) == 1  # the second came from the memo
    # Past exp + leeway the memo does not answer: the token is checked in full again
    # (and PyJWT, on its own clock, decides).
    monkeypatch.setattr(time, "time", lambda: now + 30 + 6)
    verifier.verify(fresh)
    assert len(calls) == 2


def test_bad_tokens_are_not_remembered() -> None:
    settings = Settings.from_env({"TICKETING_ENV": "test", "TICKETING_JWT_SECRET": "s" * 32})
    verifier = TokenVerifier(settings)
    forged = token("another-secret-of-32-characters!", time.time() + 30)
    for _ in range(2):
        with pytest.raises(Problem) as refused:
            verifier.verify(forged)
        assert refused.value.code == "invalid_token"
    assert not verifier._verified


@pytest.mark.parametrize("raw", ["\udcff\udcfe", "é.é.é", "eyJ\x00.a.b"])
def test_a_token_that_is_not_ascii_is_401_not_a_crash(raw: str) -> None:
    # aiohttp hands header bytes that are not UTF-8 on as surrogates; PyJWT would raise
    # UnicodeEncodeError on them (a 500 on every route, fuzz finding F8).
    settings = Settings.from_env({"TICKETING_ENV": "test", "TICKETING_JWT_SECRET": "s" * 32})
    with pytest.raises(Problem) as refused:
        TokenVerifier(settings).verify(raw)
    assert (refused.value.status, refused.value.code) == (401, "invalid_token")
