"""python -m booking_worker [--stages commands|payments|commands,payments]

Settings from TICKETING_* environment variables; ``--stages`` overrides
TICKETING_BOOKING_STAGES (what this process runs, both stages by default)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys

from prometheus_client import start_http_server

from booking_worker.worker import BookingWorker
from ticketing.config import ConfigError, Settings, booking_stages
from ticketing.web import create_pg_pool, use_uvloop

log = logging.getLogger("booking_worker")


async def _run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pool = await create_pg_pool(settings)
    try:
        await BookingWorker(settings, pool).run(stop)
    finally:
        await pool.close()
    log.info("booking worker stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m booking_worker")
    parser.add_argument(
        "--stages",
        help="commands, payments or both, comma-separated (default: TICKETING_BOOKING_STAGES)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    # The SDK logs two INFO lines per Stripe call: at an on-sale, a share of the event loop
    # that reserves wait on. Its warnings and errors still show; failures are ours to log.
    logging.getLogger("stripe").setLevel(logging.WARNING)
    settings = Settings.from_env()
    if args.stages is not None:
        try:
            stages = booking_stages(args.stages, "--stages")
        except ConfigError as exc:
            parser.error(str(exc))
        settings = dataclasses.replace(settings, booking_stages=",".join(stages))
    log.info("booking worker starting, stages: %s", ",".join(settings.booking_stage_names))
    if settings.booking_worker_metrics_port:
        start_http_server(settings.booking_worker_metrics_port, settings.host)
    use_uvloop()
    asyncio.run(_run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
