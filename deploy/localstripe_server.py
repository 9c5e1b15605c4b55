"""Run localstripe (the fake Stripe API on PyPI) as ``make run``, the tests and the benches
need it: state kept in memory and snapshotted, a simulated provider latency, lists that
read one type of object instead of the whole store.

    python -m deploy.localstripe_server [--port N] [--state PATH] [--from-scratch]

localstripe as shipped pickles its whole store to /tmp/localstripe.pickle on every write
(several times per PaymentIntent, so each costs more as the store grows) and dies at start
on a file a kill left truncated. This module serves localstripe's own aiohttp app and
changes only its edges:

- the store counts changes instead of dumping itself, and localstripe's save middleware is
  removed; a snapshot of the store is written atomically (temporary file in the same
  directory, fsync, rename) by a forked child every ``--snapshot-seconds`` (2; longer for
  a store that takes long to pickle) when something changed, and at SIGTERM/SIGINT, to
  TICKETING_LOCALSTRIPE_STATE. At start that file is loaded; a missing one means an empty
  store, an unreadable one is moved aside (``.corrupt-<time>``) with a warning and the
  store starts empty.
- every /v1/ call answers after TICKETING_STRIPE_LATENCY_MS (+-20%), slept on the event
  loop, so calls in flight wait side by side as they would on a real provider.
- objects are indexed by type: localstripe lists by scanning every key of the store, and
  exporting a PaymentIntent lists its charge's refunds (three times), so without the index
  each create and confirm scanned the whole store several times. Lists come newest first,
  as Stripe's do (localstripe's came oldest first).
- the objects alive at each snapshot are frozen out of the garbage collector's walks
  (``gc.freeze``), so its pauses do not grow with the store.
- no access log unless ``--access-log``: a line per request is noise at on-sale rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

from deploy.localstripe_snapshots import Snapshots
from ticketing.config import Settings

log = logging.getLogger(__name__)

JITTER = 0.2  # the simulated latency is uniform in [1 - JITTER, 1 + JITTER] times the setting
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _kind(key: str) -> str:
    return key.partition(":")[0]


class IndexedStore(resources.Store):  # type: ignore[misc]  # localstripe ships no types
    """localstripe's store (a dict of ``"<object>:<id>"`` keys), with its per-write dump
    turned into a change count and its objects also kept by type. ``install`` gives
    localstripe's one store instance this class, so every module holding it sees it."""

    by_type: dict[str, dict[str, Any]]
    changes: int

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self.by_type.setdefault(_kind(key), {})[key] = value
        self.changes += 1

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self, key)
        self.by_type.get(_kind(key), {}).pop(key, None)
        self.changes += 1

    def clear(self) -> None:  # DELETE /_config/data
        dict.clear(self)
        self.by_type.clear()
        self.changes += 1

    def dump_to_disk(self) -> None:  # never write per request; the snapshots do it
        self.changes += 1

    def replace(self, objects: dict[str, Any]) -> None:
        dict.clear(self)
        dict.update(self, objects)
        self.by_type = {}
        for key, value in objects.items():
            self.by_type.setdefault(_kind(key), {})[key] = value


def _list_of_type(
    cls: type[Any], /, url: str | None, limit: Any = None, starting_after: Any = None, **kwargs: Any
) -> Any:
    """StripeObject._api_list_all (which every type's list calls) from the type's index,
    newest first."""
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs))
    page = resources.List(url, limit=limit, starting_after=starting_after)
    page._list = list(reversed(resources.store.by_type.get(cls.object, {}).values()))
    return page


def install() -> IndexedStore:
    """Make localstripe's module-level store an IndexedStore and its lists read the index
    (idempotent). Returns the store."""
    store = resources.store
    if not isinstance(store, IndexedStore):
        objects = dict(store)
        store.__class__ = IndexedStore
        store.changes = 0
        store.replace(objects)
        resources.StripeObject._api_list_all = classmethod(_list_of_type)
    installed: IndexedStore = store  # localstripe's store, its class now ours
    return installed


def provider_latency(latency_ms: int) -> Any:
    """Answer every /v1/ call about ``latency_ms`` (+-JITTER) after localstripe did it:
    the provider acted, its answer is on its way."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/v1/"):
            return await handler(request)
        delay = latency_ms / 1000 * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - jitter
        try:
            response = await handler(request)
        except web.HTTPException:
            await asyncio.sleep(delay)
            raise
        await asyncio.sleep(delay)
        return response

    return middleware


def count_changes(store: IndexedStore) -> Any:
    """A write request may change objects in place (confirm, cancel, update) without
    touching the store's keys: count it as a change, so the next snapshot has it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            if request.method not in SAFE_METHODS:
                store.changes += 1

    return middleware


def create_app(store: IndexedStore, latency_ms: int) -> web.Application:
    """localstripe's app with our middlewares around it and its save middleware gone."""
    app: web.Application = server.app
    if server.save_store_middleware in app.middlewares:
        app.middlewares.remove(server.save_store_middleware)
        app.middlewares.insert(0, count_changes(store))
        if latency_ms > 0:
            app.middlewares.insert(0, provider_latency(latency_ms))
    return app


async def serve(args: argparse.Namespace, settings: Settings) -> None:
    store = install()
    state = Path(args.state or settings.localstripe_state)
    snapshots: Snapshots | None = Snapshots(state, store, args.snapshot_seconds)
    try:
        state.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # serve anyway: a fake provider without memory beats none
        log.warning("cannot create %s (%s): localstripe state will not be kept", state.parent, exc)
        snapshots = None
    if snapshots is not None and not args.from_scratch:
        snapshots.load()
    app = create_app(store, settings.stripe_latency_ms)
    access_log = logging.getLogger("aiohttp.access") if args.access_log else None
    runner = web.AppRunner(app, access_log=access_log, shutdown_timeout=5)
    await runner.setup()
    port = args.port or settings.localstripe_port
    await web.TCPSite(runner, settings.host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    snapshotting = asyncio.create_task(snapshots.run()) if snapshots else None
    log.info(
        "localstripe on http://%s:%d, state in %s, latency %d ms",
        settings.host,
        port,
        state if snapshots else "memory only",
        settings.stripe_latency_ms,
    )
    try:
        await stop.wait()
    finally:
        if snapshotting is not None:
            snapshotting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await snapshotting
        await runner.cleanup()
        if snapshots is not None:
            snapshots.final()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="default: TICKETING_LOCALSTRIPE_PORT")
    parser.add_argument("--state", help="default: TICKETING_LOCALSTRIPE_STATE")
    parser.add_argument(
        "--from-scratch",
        action="store_true",
        help="ignore the state file at start (later snapshots replace it)",
    )
    parser.add_argument(
        "--snapshot-seconds",
        type=float,
        default=2.0,
        help="how often the state is written when it changed (default 2)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args, settings))
    else:
        uvloop.run(serve(args, settings))


if __name__ == "__main__":
    main()
