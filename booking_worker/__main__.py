"""python -m booking_worker  (settings from TICKETING_* environment variables)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from prometheus_client import start_http_server

from booking_worker.worker import BookingWorker
from ticketing.config import Settings
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


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    settings = Settings.from_env()
    if settings.booking_worker_metrics_port:
        start_http_server(settings.booking_worker_metrics_port, settings.host)
    use_uvloop()
    asyncio.run(_run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
