"""python -m search_sync run | reindex  (settings from TICKETING_* environment variables)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from search_sync.worker import BootstrapFailed, run_reindex, run_worker
from ticketing.config import Settings
from ticketing.web import use_uvloop

log = logging.getLogger("search_sync")


async def _run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_worker(settings, stop)


async def _reindex(settings: Settings) -> None:
    result = await run_reindex(settings)
    print(
        f"reindexed {result.indexed} events into {result.collection} "
        f"(replayed {result.replayed} changes, dropped {result.dropped or 'nothing'}) "
        f"in {result.seconds:.1f}s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search_sync", description=__doc__)
    parser.add_argument("command", choices=["run", "reindex"])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per Typesense request would drown the lines that matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = Settings.from_env()
    use_uvloop()
    try:
        asyncio.run(_run(settings) if args.command == "run" else _reindex(settings))
    except BootstrapFailed as exc:
        log.error("search_sync giving up: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
