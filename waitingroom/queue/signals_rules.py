"""One person, one place, as rules with no I/O: which signals a join leaves (the client's
address block, the device cookie), what the operators' rule may be, and how much harder a
flagged fan's challenge is.

Signals that many accounts are one actor: accounts joining from one address block (IPv4
/24, IPv6 /48: one household, office or small farm of machines), from one device (the
queue page's cookie, random and first-party), or paying with one card (Stripe's card
fingerprint at confirm). An address block or a device with more than ``cluster_threshold``
accounts, or a card paid with by more than one account, is a *cluster*, and its accounts
are *flagged*. What the operators' ``cluster_rule`` does with them:

- ``off``: nothing but recording and showing them (``GET /admin/queues/{id}/clusters``);
- ``harder_challenge``: their join carries a harder proof of work (:func:`harder_difficulty`);
- ``back_of_line``: their place is moved behind everyone in line at that moment, once,
  and their status says so (``"moved": "cluster"``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from ticketing.domain.challenge import MAX_DIFFICULTY, RECOMMENDED_DIFFICULTY

ClusterRuleName = Literal["off", "harder_challenge", "back_of_line"]
RULES: tuple[ClusterRuleName, ...] = ("off", "harder_challenge", "back_of_line")
# An address block or device with more than this many accounts is a cluster, until an
# operator sets another. A household shares a device or an address; five accounts on one
# is past what a household needs. Carrier-grade NAT puts many strangers behind one
# address: operators raise it for an audience that sits behind one.
DEFAULT_THRESHOLD = 5
MAX_THRESHOLD = 1_000_000
# A flagged fan's challenge is this many steps above the door's (each doubles the work),
# from at least the recommended level: 4x a fan's work at the default difficulty.
HARDER_STEPS = 2

# The device cookie: set by the waitingroom on the queue page's join (HttpOnly: the page
# never reads it), random, first-party. Only the value's hash is kept.
DEVICE_COOKIE = "tq_device"
DEVICE_COOKIE_MAX_AGE = 400 * 24 * 3600  # browsers cap a cookie's life at 400 days
_DEVICE_ID = re.compile(r"[0-9a-f]{32}")


def address_block(address: str) -> str | None:
    """The block an address is counted in (IPv4 /24, IPv6 /48; an IPv4-mapped IPv6
    address as its IPv4); None for anything that is not an address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def new_device_id() -> str:
    return secrets.token_hex(16)


def device_key(cookie: str | None) -> str | None:
    """What is kept of a device cookie: a hash of the value (the value itself would let
    anyone who reads Redis pose as that device), or None for no cookie or one we did not
    set (any other shape)."""
    if cookie is None or not _DEVICE_ID.fullmatch(cookie):
        return None
    return hashlib.sha256(cookie.encode()).hexdigest()[:24]


def harder_difficulty(door: int) -> int:
    """A flagged fan's difficulty under ``harder_challenge``, the door's being ``door``."""
    return min(MAX_DIFFICULTY, max(door, RECOMMENDED_DIFFICULTY) + HARDER_STEPS)


@dataclass(frozen=True, slots=True)
class ClusterRule:
    """An event's rule, as the operators set it (``PATCH /admin/queues/{id}``)."""

    rule: ClusterRuleName = "off"
    threshold: int = DEFAULT_THRESHOLD

    @classmethod
    def from_config(cls, rule: str | None, threshold: str | int | None) -> ClusterRule:
        """From the event's config hash (absent: the defaults; an unknown rule, which no
        PATCH can set, reads as off)."""
        name: ClusterRuleName = "off"
        for known in RULES:
            if known == rule:
                name = known
        try:
            k = int(threshold) if threshold is not None else DEFAULT_THRESHOLD
        except ValueError:
            k = DEFAULT_THRESHOLD
        return cls(name, max(1, k))

    @property
    def on(self) -> bool:
        return self.rule != "off"

    def to_json(self) -> dict[str, str | int]:
        return {"cluster_rule": self.rule, "cluster_threshold": self.threshold}
