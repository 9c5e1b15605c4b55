"""The platform's own RS256 keys: the ring that verifies its tokens, the key that signs them.

Every service verifies with public keys only (``TICKETING_JWT_PUBLIC_KEY``: one PEM block,
or two while keys roll over); the waitingroom alone signs (dev tokens, admission tokens),
with ``TICKETING_JWT_PRIVATE_KEY_FILE``. A token names its key by ``kid``, the RFC 7638
thumbprint of the public key, so a key's id needs no bookkeeping and every process derives
the same one. ``/.well-known/jwks.json`` publishes the ring.

Rolling a key over without downtime (``python -m ticketing.keys``, as ``make run`` does):

1. ``rotate DIR``: a new signing key; ``DIR/public.pem`` holds the new and the old public
   key. Restart the verifiers, then the waitingroom: tokens of either key verify meanwhile.
2. ``retire DIR``, once the old key's tokens have expired (the longest token lifetime):
   ``DIR/public.pem`` holds the current key alone; restart again. The old key's tokens are
   refused from then on.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import sys
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ticketing.config import Settings
from ticketing.settings_schema import ConfigError

ALGORITHM = "RS256"
MIN_BITS = 2048
_PEM_BLOCK = re.compile(
    r"-----BEGIN PUBLIC KEY-----\s.*?-----END PUBLIC KEY-----", re.DOTALL | re.ASCII
)


def _b64_uint(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def kid_of(key: rsa.RSAPublicKey) -> str:
    """The key's RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    numbers = key.public_numbers()
    canonical = orjson.dumps({"e": _b64_uint(numbers.e), "kty": "RSA", "n": _b64_uint(numbers.n)})
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def jwk_of(key: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = key.public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": ALGORITHM,
        "kid": kid_of(key),
        "n": _b64_uint(numbers.n),
        "e": _b64_uint(numbers.e),
    }


@functools.cache
def public_keys(pem_text: str) -> dict[str, rsa.RSAPublicKey]:
    """Every RSA public key in ``pem_text`` (PEM blocks, in order), by kid."""
    ring: dict[str, rsa.RSAPublicKey] = {}
    for block in _PEM_BLOCK.findall(pem_text):
        key = serialization.load_pem_public_key(block.encode())
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_BITS:
            raise ConfigError(f"TICKETING_JWT_PUBLIC_KEY: RSA keys of {MIN_BITS} bits or more")
        ring[kid_of(key)] = key
    if pem_text.strip() and not ring:
        raise ConfigError("TICKETING_JWT_PUBLIC_KEY holds no PEM public key")
    return ring


def platform_signs_rs256(settings: Settings) -> bool:
    """Whether the platform's own tokens are RS256 (else HS256 with its secrets)."""
    return settings.jwt_algorithm == ALGORITHM and bool(settings.jwt_public_key)


def jwks(settings: Settings) -> dict[str, Any]:
    """The JWK set of the keys that verify the platform's tokens (empty under HS256)."""
    if not platform_signs_rs256(settings):
        return {"keys": []}
    return {"keys": [jwk_of(key) for key in public_keys(settings.jwt_public_key).values()]}


def public_pems(settings: Settings) -> dict[str, str]:
    """The verifying keys as PEM (SubjectPublicKeyInfo) by kid: what the gateway holds."""
    if not platform_signs_rs256(settings):
        return {}
    return {
        kid: key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        for kid, key in public_keys(settings.jwt_public_key).items()
    }


class Signer:
    """Signs claims as RS256 JWTs naming the key by ``kid``."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        self.kid = kid_of(key.public_key())
        self._headers = {"kid": self.kid}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers=self._headers)


@functools.cache
def _signer_from(path: str, public_pem: str) -> Signer:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"TICKETING_JWT_PRIVATE_KEY_FILE: cannot read a key from {path}") from exc
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_BITS:
        raise ConfigError(f"TICKETING_JWT_PRIVATE_KEY_FILE: an RSA key of {MIN_BITS} bits or more")
    signer = Signer(key)
    # A token nobody could verify is refused here, at the first signature, not by every fan.
    if signer.kid not in public_keys(public_pem):
        raise ConfigError(
            "TICKETING_JWT_PRIVATE_KEY_FILE: its public key is not in TICKETING_JWT_PUBLIC_KEY"
        )
    return signer


def platform_signer(settings: Settings) -> Signer:
    """The waitingroom's signing key (loaded once per file)."""
    if not settings.jwt_private_key_file:
        raise ConfigError("RS256 signing needs TICKETING_JWT_PRIVATE_KEY_FILE")
    return _signer_from(settings.jwt_private_key_file, settings.jwt_public_key)


# --- the key directory of `make run` (python -m ticketing.keys init|rotate|retire DIR) -----

SIGNING, PUBLIC, PREVIOUS = "signing.pem", "public.pem", "previous-public.pem"


def _new_key(directory: Path) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = directory / (SIGNING + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    tmp.replace(directory / SIGNING)
    return key


def _public_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _current(directory: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((directory / SIGNING).read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{directory / SIGNING} is not an RSA key")
    return key


def _write_public(directory: Path, *pems: str) -> None:
    tmp = directory / (PUBLIC + ".tmp")
    tmp.write_text("".join(pems), encoding="ascii")
    tmp.replace(directory / PUBLIC)


def init(directory: Path) -> bool:
    """A key pair in ``directory`` unless one is there already; True when created."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (directory / SIGNING).exists():
        if not (directory / PUBLIC).exists():
            _write_public(directory, _public_pem(_current(directory).public_key()))
        return False
    _write_public(directory, _public_pem(_new_key(directory).public_key()))
    return True


def rotate(directory: Path) -> None:
    """A new signing key; the old public key stays in the ring until :func:`retire`."""
    old = _public_pem(_current(directory).public_key())
    (directory / PREVIOUS).write_text(old, encoding="ascii")
    new = _public_pem(_new_key(directory).public_key())
    _write_public(directory, new, old)


def retire(directory: Path) -> None:
    """The previous key leaves the ring: its tokens are refused from the next start on."""
    _write_public(directory, _public_pem(_current(directory).public_key()))
    (directory / PREVIOUS).unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    actions = {"init": init, "rotate": rotate, "retire": retire}
    if len(argv) != 2 or argv[0] not in actions:
        print("usage: python -m ticketing.keys init|rotate|retire DIR", file=sys.stderr)
        return 2
    result = actions[argv[0]](Path(argv[1]))
    if argv[0] == "init" and result:
        print(f"keys: created a signing key in {argv[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
