"""The platform's RS256 keys (ticketing/keys.py): key ids, the published set, the key
directory `make run` keeps, and a rollover as the verifier sees it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ticketing import keys
from ticketing.auth import TokenVerifier, issue_dev_token
from ticketing.config import Settings
from ticketing.problems import Problem
from ticketing.settings_schema import ConfigError

# RFC 7638 section 3.1: this key's thumbprint is NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs.
RFC_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qvz"
    "qY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZ"
    "u0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)


def _uint(b64: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)), "big")


def test_the_kid_is_the_rfc_7638_thumbprint():
    key = rsa.RSAPublicNumbers(_uint("AQAB"), _uint(RFC_N)).public_key()
    assert keys.kid_of(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def _pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _settings(directory: Path) -> Settings:
    return Settings.from_env(
        {
            "TICKETING_ENV": "test",
            "TICKETING_JWT_ALGORITHM": "RS256",
            "TICKETING_JWT_PUBLIC_KEY": str(directory / keys.PUBLIC),
            "TICKETING_JWT_PRIVATE_KEY_FILE": str(directory / keys.SIGNING),
        }
    )


def test_the_published_set_is_the_ring_and_reads_back(tmp_path):
    assert keys.init(tmp_path) is True
    assert keys.init(tmp_path) is False  # the second start keeps the pair
    assert (tmp_path / keys.SIGNING).stat().st_mode & 0o077 == 0
    settings = _settings(tmp_path)
    (published,) = keys.jwks(settings)["keys"]
    assert published["kty"] == "RSA" and published["alg"] == "RS256"
    assert published["use"] == "sig"
    signer = keys.platform_signer(settings)
    assert published["kid"] == signer.kid
    # What a client of the set does with it (PyJWT's own JWK reader) verifies our tokens.
    token = signer.sign({"sub": "ann", "exp": int(time.time()) + 60})
    assert jwt.get_unverified_header(token)["kid"] == signer.kid
    claims = jwt.decode(token, jwt.PyJWK(published).key, algorithms=["RS256"])
    assert claims["sub"] == "ann"
    hs = Settings.from_env({"TICKETING_ENV": "test"})
    assert keys.jwks(hs) == {"keys": []} and keys.public_pems(hs) == {}


def test_the_ring_refuses_what_is_not_an_rsa_public_key():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused
    with pytest.raises(ConfigError, match="2048"):
        keys.public_keys(_pem(small))
    with pytest.raises(ConfigError, match="no PEM"):
        keys.public_keys("not a key")
    assert keys.public_keys("") == {}


def test_a_signing_key_outside_the_ring_is_refused(tmp_path):
    keys.init(tmp_path)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings = Settings.from_env(
        {
            "TICKETING_ENV": "test",
            "TICKETING_JWT_ALGORITHM": "RS256",
            "TICKETING_JWT_PUBLIC_KEY": _pem(other),
            "TICKETING_JWT_PRIVATE_KEY_FILE": str(tmp_path / keys.SIGNING),
        }
    )
    with pytest.raises(ConfigError, match="not in TICKETING_JWT_PUBLIC_KEY"):
        keys.platform_signer(settings)
    with pytest.raises(ConfigError, match="PRIVATE_KEY_FILE"):
        keys.platform_signer(
            Settings.from_env({**_env(settings), "TICKETING_JWT_PRIVATE_KEY_FILE": ""})
        )


def _env(settings: Settings) -> dict[str, str]:
    return {**settings.to_env(), "TICKETING_ENV": "test"}


def _user(verifier: TokenVerifier, token: str) -> str:
    return verifier.verify(token).user_id


def test_a_rollover_verifies_both_keys_then_refuses_the_retired_one(tmp_path):
    keys.init(tmp_path)
    before = _settings(tmp_path)
    old_token = issue_dev_token(before, "ann", [])["access_token"]
    assert _user(TokenVerifier(before), old_token) == "ann"

    keys.rotate(tmp_path)
    during = _settings(tmp_path)
    assert len(keys.jwks(during)["keys"]) == 2
    new_token = issue_dev_token(during, "bob", ["admin"])["access_token"]
    assert keys.platform_signer(during).kid != keys.platform_signer(before).kid
    verifier = TokenVerifier(during)
    assert _user(verifier, old_token) == "ann" and _user(verifier, new_token) == "bob"
    assert verifier.verify(new_token).is_admin

    keys.retire(tmp_path)
    after = TokenVerifier(_settings(tmp_path))
    assert _user(after, new_token) == "bob"
    with pytest.raises(Problem) as refused:
        after.verify(old_token)
    assert refused.value.status == 401 and refused.value.code == "invalid_token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _confused(claims: dict[str, object], public_pem: str, kid: str) -> str:
    """HS256 keyed with our public key's PEM: the algorithm-confusion attack (PyJWT will
    not write it, so it is written here)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    signing_input = f"{head}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.digest(public_pem.encode(), signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{_b64(mac)}"


def _rs256(header: dict[str, object], claims: dict[str, object], key: rsa.RSAPrivateKey) -> str:
    """A correctly signed RS256 JWS of any header (PyJWT refuses to write odd ones)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def test_rs256_refuses_unknown_keys_hs256_and_none(tmp_path):
    keys.init(tmp_path)
    settings = _settings(tmp_path)
    verifier = TokenVerifier(settings)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    exp = int(time.time()) + 60
    own_kid = keys.platform_signer(settings).kid
    own = serialization.load_pem_private_key((tmp_path / keys.SIGNING).read_bytes(), None)
    assert isinstance(own, rsa.RSAPrivateKey)
    refused = [
        keys.Signer(stranger).sign({"sub": "x", "exp": exp}),
        jwt.encode({"sub": "x", "exp": exp}, stranger, "RS256", headers={"kid": own_kid}),
        jwt.encode({"sub": "x", "exp": exp}, settings.jwt_secret, "HS256"),
        _confused({"sub": "x", "exp": exp}, (tmp_path / keys.PUBLIC).read_text(), own_kid),
        jwt.encode({"sub": "x", "exp": exp}, None, "none", headers={"kid": own_kid}),
        _rs256({"alg": "RS256", "kid": 7}, {"sub": "x", "exp": exp}, own),
        keys.platform_signer(settings).sign({"sub": "x"}),  # no exp
    ]
    for token in refused:
        with pytest.raises(Problem) as answer:
            verifier.verify(token)
        assert answer.value.status == 401, token
    # A token naming no key is read with the only key there is (a single-key provider).
    bare = jwt.encode({"sub": "ann", "exp": exp}, own, "RS256")
    assert _user(verifier, bare) == "ann"


def test_the_key_directory_command(tmp_path, capsys):
    assert keys.main(["init", str(tmp_path / "k")]) == 0
    assert "created" in capsys.readouterr().err
    assert keys.main(["rotate", str(tmp_path / "k")]) == 0
    assert (tmp_path / "k" / keys.PREVIOUS).exists()
    assert keys.main(["retire", str(tmp_path / "k")]) == 0
    assert not (tmp_path / "k" / keys.PREVIOUS).exists()
    assert keys.main(["wipe", str(tmp_path)]) == 2
