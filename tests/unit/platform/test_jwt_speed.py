"""The hot path's JWT shortcuts change nothing PyJWT decides."""

import datetime
from unittest import mock

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jwt.api_jws import PyJWS
from jwt.exceptions import DecodeError

from ticketing.jwt_speed import HS256FastPath, HS256Signer, strict_segment

# Mostly base64url characters, with the junk and padding the check exists to refuse.
SEGMENTS = st.binary(max_size=12) | st.text(alphabet="AQgwxyz019-_=+/!. \n\x00é", max_size=12).map(
    lambda s: s.encode()
)


def outcome(check, segment: bytes):
    try:
        return check(segment, "payload")
    except DecodeError:
        return DecodeError


@given(SEGMENTS)
def test_the_segment_check_refuses_exactly_what_pyjwt_refuses(segment):
    assert outcome(strict_segment, segment) == outcome(PyJWS._decode_base64url_segment, segment)


@pytest.mark.parametrize("segment", [b"!!!!", b"QQ===", b"QR", b"Q", b"QQ=", b"QQ\n"])
def test_junk_and_non_canonical_segments_are_refused(segment):
    with pytest.raises(DecodeError):
        strict_segment(segment, "payload")


@given(
    st.fixed_dictionaries(
        {"sub": st.text(min_size=1)},
        optional={"event_id": st.integers(-(2**63), 2**63 - 1), "where": st.text()},
    )
)
def test_pyjwt_reads_what_the_signer_writes(claims):
    token = HS256Signer("k" * 32).sign(claims)
    assert (
        jwt.decode(token, "k" * 32, algorithms=["HS256"], options={"verify_exp": False}) == claims
    )
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "other" * 8, algorithms=["HS256"])


KEY = "s" * 32
NOW = 1_900_000_000  # in 2030: every token of the draw is judged at this time
TIMES = st.one_of(
    st.none(),
    st.integers(NOW - 100, NOW + 100),
    st.floats(NOW - 100, NOW + 100),
    st.booleans(),
    st.text(max_size=3),
)
CLAIMS = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.one_of(st.text(max_size=5), st.integers(0, 2**62), st.none()),
        "roles": st.lists(st.text(max_size=3), max_size=2),
        "iat": TIMES,
        "nbf": TIMES,
        "exp": TIMES,
        "aud": st.text(max_size=3),
        "jti": st.integers(0, 2**62),
    },
)


# Close to what the platform mints, so that many draws are valid and the fast path's
# acceptance is tested as hard as its refusals.
PLAUSIBLE = st.fixed_dictionaries(
    {"sub": st.text(max_size=5), "exp": st.integers(NOW - 100, NOW + 100)},
    optional={
        "roles": st.lists(st.text(max_size=3), max_size=2),
        "iat": st.integers(NOW - 100, NOW + 100),
        "nbf": st.integers(NOW - 100, NOW + 100),
    },
)


@st.composite
def tokens(draw):
    claims = {k: v for k, v in draw(PLAUSIBLE | CLAIMS).items() if v is not None}
    how = draw(st.sampled_from(["ours", "pyjwt", "other-key", "tampered", "header", "junk"]))
    if how == "ours":
        return HS256Signer(KEY).sign(claims)
    if how == "pyjwt":
        return jwt.encode(claims, KEY, algorithm="HS256")
    if how == "other-key":
        return HS256Signer("t" * 32).sign(claims)
    if how == "tampered":
        token = HS256Signer(KEY).sign(claims)
        at = draw(st.integers(0, len(token) - 1))
        return token[:at] + draw(st.sampled_from("A_-.=x")) + token[at + 1 :]
    if how == "header":
        return jwt.encode(claims, KEY, algorithm="HS256", headers={"kid": "1"})
    return draw(st.text(max_size=40))


@given(tokens())
def test_the_fast_path_accepts_only_what_pyjwt_accepts_and_reads_it_alike(token):
    fast = HS256FastPath(KEY, leeway=5).read(token, NOW)
    try:
        with mock.patch("jwt.api_jwt.datetime", FrozenDatetime):  # PyJWT's clock at NOW
            expected = jwt.decode(
                token,
                KEY,
                algorithms=["HS256"],
                options={"require": ["sub", "exp"]},
                leeway=5,
            )
    except jwt.InvalidTokenError:
        assert fast is None
        return
    if fast is not None:
        assert fast == expected


class FrozenDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.fromtimestamp(NOW, tz)


def test_the_frozen_clock_is_the_one_pyjwt_reads():
    token = jwt.encode({"sub": "a", "exp": NOW - 60}, KEY, algorithm="HS256")
    jwt.decode(token, KEY, algorithms=["HS256"])  # not expired today
    with (
        mock.patch("jwt.api_jwt.datetime", FrozenDatetime),
        pytest.raises(jwt.ExpiredSignatureError),
    ):
        jwt.decode(token, KEY, algorithms=["HS256"])


def test_the_fast_path_takes_the_tokens_the_platform_mints():
    token = HS256Signer(KEY).sign({"sub": "ann", "roles": ["admin"], "iat": NOW, "exp": NOW + 60})
    assert HS256FastPath(KEY, 5).read(token, NOW) == {
        "sub": "ann",
        "roles": ["admin"],
        "iat": NOW,
        "exp": NOW + 60,
    }
    assert HS256FastPath(KEY, 5).read(token, NOW + 66) is None  # expired: PyJWT says why
