"""The registered presale's pure parts: codes as fans type and read them, where a presale
stands, and the 403 a join may get (the door's and the presale's codes in one reply)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from waitingroom.queue.challenge_routes import JOIN_FORBIDDEN
from waitingroom.queue.draw_record import DrawRecord
from waitingroom.queue.presale_gate import JOIN_REFUSED
from waitingroom.queue.presale_record import (
    CODE_ALPHABET,
    CODE_LENGTH,
    Presale,
    _new_code,
    normalize_code,
    shown_code,
    state_of,
)

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
PRESALE = Presale(1, T0, T0 + timedelta(hours=1), T0 + timedelta(hours=3), 2, 10, "ab" * 32)


def record(drawn: bool) -> DrawRecord:
    seed = "ab" * 32 if drawn else None
    return DrawRecord(1, 1, "cd" * 32, T0, seed, T0 if drawn else None, 0 if drawn else None, None)


def test_codes_are_read_and_typed_as_one() -> None:
    codes = {_new_code() for _ in range(200)}
    assert len(codes) == 200  # 60 random bits each
    for code in codes:
        assert re.fullmatch(f"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}", code)
        shown = shown_code(code)
        assert re.fullmatch(r"\w{4}-\w{4}-\w{4}", shown)
        for typed in (shown, shown.lower(), shown.replace("-", " "), f" {code.lower()} "):
            assert normalize_code(typed) == code
    assert not set("ILOU") & set(CODE_ALPHABET)  # none a fan could misread


def test_where_a_presale_stands() -> None:
    undrawn, drawn = record(False), record(True)
    assert state_of(PRESALE, undrawn, T0 - timedelta(seconds=1)) == "scheduled"
    assert state_of(PRESALE, undrawn, T0) == "registration_open"
    assert state_of(PRESALE, undrawn, T0 + timedelta(hours=1)) == "registration_closed"
    assert state_of(PRESALE, drawn, T0 + timedelta(hours=2)) == "drawn"
    assert state_of(PRESALE, drawn, T0 + timedelta(hours=3)) == "over"
    # Not drawn by the general sale: still to be drawn, never "over" with no codes issued.
    assert state_of(PRESALE, undrawn, T0 + timedelta(hours=4)) == "registration_closed"


def test_a_joins_403_documents_the_doors_codes_and_the_presales() -> None:
    assert set(JOIN_FORBIDDEN.codes) < set(JOIN_REFUSED.codes)
    assert {"presale_code_required", "presale_code_invalid"} <= set(JOIN_REFUSED.codes)
