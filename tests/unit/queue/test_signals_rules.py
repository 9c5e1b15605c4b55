"""One person, one place's rules: the block an address counts in, what is kept of a device
cookie, a flagged fan's difficulty and the rule as read from the event's config."""

from __future__ import annotations

import pytest

from ticketing.domain.challenge import MAX_DIFFICULTY
from waitingroom.queue.signals_rules import (
    DEFAULT_THRESHOLD,
    ClusterRule,
    address_block,
    device_key,
    harder_difficulty,
    new_device_id,
)


@pytest.mark.parametrize(
    ("address", "block"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("203.0.114.1", "203.0.114.0/24"),
        ("::ffff:203.0.113.9", "203.0.113.0/24"),  # IPv4-mapped: the IPv4 block
        ("2001:db8:1:ffff::9", "2001:db8:1::/48"),
        ("2001:db8:2::1", "2001:db8:2::/48"),
        ("unknown", None),
        ("", None),
    ],
)
def test_address_blocks(address: str, block: str | None) -> None:
    assert address_block(address) == block


def test_only_a_device_cookie_of_ours_is_kept_and_only_as_a_hash() -> None:
    device = new_device_id()
    kept = device_key(device)
    assert kept is not None and device not in kept and kept == device_key(device)
    assert device_key(new_device_id()) != kept
    for other in (None, "", "x" * 32, device.upper(), device + "0"):
        assert device_key(other) is None, other


def test_a_flagged_fans_challenge_is_two_steps_harder_from_at_least_the_recommended() -> None:
    assert [harder_difficulty(d) for d in (0, 1, 3, 4, 9, 10)] == [5, 5, 5, 6, 10, 10]
    assert harder_difficulty(MAX_DIFFICULTY) == MAX_DIFFICULTY


def test_the_rule_as_read_from_the_config_copy() -> None:
    assert ClusterRule.from_config(None, None) == ClusterRule("off", DEFAULT_THRESHOLD)
    assert ClusterRule.from_config("back_of_line", "2") == ClusterRule("back_of_line", 2)
    assert ClusterRule.from_config("ban", "x") == ClusterRule("off", DEFAULT_THRESHOLD)
    assert not ClusterRule().on and ClusterRule("harder_challenge").on
