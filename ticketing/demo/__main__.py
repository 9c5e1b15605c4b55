"""python -m ticketing.demo [--events 10000] [--seed 42] [--reset]

Loads venues in real cities, performers, a year of events and every ticket into the
database at TICKETING_DATABASE_URL. Does nothing when events exist, unless --reset.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from ticketing.config import Settings
from ticketing.demo.load import load_demo


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ticketing.demo", description=__doc__)
    parser.add_argument("--events", type=_positive, default=10_000, help="events to create")
    parser.add_argument("--seed", type=int, default=42, help="same seed, same catalog")
    parser.add_argument(
        "--reset",
        action="store_true",
        help="empty venues, performers, events, tickets (and their holds, bookings, "
        "payments) and the outbox first",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url = Settings.from_env().database_url
    counts = asyncio.run(load_demo(url, args.events, args.seed, reset=args.reset))
    if counts.skipped:
        print("events already exist; skipping the demo catalog (use --reset to reload it)")
        return 0
    print(
        f"loaded {counts.events:,} events ({counts.queue_enabled} with a waiting room), "
        f"{counts.tickets:,} tickets, {counts.venues:,} venues in {counts.cities} cities and "
        f"{counts.performers:,} performers in {counts.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
