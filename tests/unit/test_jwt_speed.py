"""The hot path's JWT shortcuts change nothing PyJWT decides."""

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jwt.api_jws import PyJWS
from jwt.exceptions import DecodeError

from ticketing.jwt_speed import HS256Signer, strict_segment

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
