"""A waitingroom process takes every open file its hard limit allows, so fans are not
refused at the soft limit's thousand-odd websockets. Run in a child process: the limit is
the process's own and the test runner's must stay as it is."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (256, int(sys.argv[1])))
{call}
print(*resource.getrlimit(resource.RLIMIT_NOFILE))
"""


def limits_after(call: str, hard: int) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(call=call), str(hard)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


@pytest.fixture
def hard() -> int:
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if limit == resource.RLIM_INFINITY or limit <= 256:
        pytest.skip(f"hard limit {limit}: nothing to raise to")
    return min(limit, 65_536)


def test_the_soft_limit_is_raised_to_the_hard_one(hard: int) -> None:
    call = "from waitingroom.open_files import raise_open_files_limit; raise_open_files_limit()"
    assert limits_after(call, hard) == (hard, hard)


def test_without_it_the_soft_limit_stays(hard: int) -> None:
    # The control: the child's own setting holds unless the service raises it.
    assert limits_after("pass", hard) == (256, hard)
