"""A fan in line while a registered presale's share is all held or sold: told
presale_sold_out with when the general sale opens (to the record's ms), keeping the place;
a sell-out says more and wins, and every seat held says less and gives way."""

from datetime import UTC, datetime, timedelta

from ticketing.config import Settings
from ticketing.domain.queue import QueueConfig
from waitingroom.queue.events import QueueEvent
from waitingroom.queue.status import status_body
from waitingroom.queue.store import Figures, Placement

SETTINGS = Settings(admission_secret="a" * 40, queue_ticket_secret="q" * 40)
EVENT = QueueEvent(7, "Presale night", datetime(2026, 12, 6, 12, tzinfo=UTC), None)
IN_LINE = Placement("waiting", 1_700_000_000_000_000, 4, 0, "1", 0, True)
GENERAL_SALE = datetime(2026, 12, 30, 12, 20, 0, 123_000, tzinfo=UTC)
GENERAL_SALE_MS = (GENERAL_SALE - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def figures(**fields: object) -> Figures:
    config = QueueConfig(600, 100, False, 600, "manual")
    base = Figures(config, 5, 0, 1, 10, {}, True, False, None, 60.0, 60.0)
    return Figures(**{**{f: getattr(base, f) for f in base.__slots__}, **fields})  # type: ignore[arg-type]


def told(**fields: object) -> dict[str, object]:
    return status_body(SETTINGS, EVENT, "ann", IN_LINE, figures(**fields), "ticket")


def test_a_taken_share_is_told_with_the_general_sale_and_the_place_kept() -> None:
    body = told(presale_held=True, general_sale_ms=GENERAL_SALE_MS, all_held=True)
    assert (body["status"], body["position"], body["ahead"]) == ("presale_sold_out", 5, 4)
    assert body["eta_seconds"] is None
    assert body["general_sale_at"] == "2026-12-30T12:20:00.123000Z"


def test_a_sell_out_wins_and_no_presale_tells_no_general_sale() -> None:
    body = told(presale_held=True, general_sale_ms=GENERAL_SALE_MS, sold_out=True)
    assert (body["status"], body["position"]) == ("sold_out", None)
    assert "general_sale_at" not in body
    assert told(all_held=True)["status"] == "all_held"
    assert "general_sale_at" not in told()
