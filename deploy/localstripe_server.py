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
import gc
import logging
import os
import pickle
import random
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

from ticketing.config import Settings

log = logging.getLogger(__name__)

JITTER = 0.2  # the simulated latency is uniform in [1 - JITTER, 1 + JITTER] times the setting
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITER_SHARE = 10  # the next snapshot waits at least this many times the last one's duration
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


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a reader (or a restart after a kill at any moment)
    sees the old snapshot or the new one, never a part of one."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


class Snapshots:
    """The store's state file: loaded at start, written when the store changed."""

    def __init__(self, path: Path, store: IndexedStore, interval: float) -> None:
        self.path = path
        self.store = store
        self.interval = interval
        self.saved = store.changes
        self.writes = 0  # snapshots written by this process and its writers
        self.failing = False

    def load(self) -> None:
        """Fill the store from the state file. Nothing here stops a start: a missing file
        is an empty store; an unreadable one is moved aside, with a warning."""
        for stale in self.path.parent.glob(self.path.name + ".*.tmp"):  # a kill mid-write
            with contextlib.suppress(OSError):
                stale.unlink()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            log.info("no localstripe state at %s: starting empty", self.path)
            return
        except OSError as exc:  # a directory, no permission: left where it is
            log.warning("localstripe state %s cannot be read (%s): starting empty", self.path, exc)
            return
        try:
            objects = pickle.loads(data)  # noqa: S301 - the state file this process wrote
            if not isinstance(objects, dict) or not all(isinstance(k, str) for k in objects):
                raise ValueError(f"a {type(objects).__name__}, not localstripe's store")
        except Exception as exc:  # truncated, empty, garbage, or from another version
            aside = self.path.with_name(
                f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
            )
            try:
                os.replace(self.path, aside)
            except OSError as move_error:
                aside = Path(f"(not moved: {move_error})")
            log.warning(
                "localstripe state %s is unreadable (%s: %s); moved to %s, starting empty",
                self.path,
                type(exc).__name__,
                exc,
                aside,
            )
            return
        self.store.replace(objects)
        self.saved = self.store.changes
        gc.freeze()  # see run()
        log.info("localstripe state loaded from %s: %d objects", self.path, len(objects))

    def _write(self) -> None:
        write_atomically(self.path, pickle.dumps(dict(self.store), pickle.HIGHEST_PROTOCOL))

    def _written(self, changes: int, error: str | None) -> None:
        if error is not None:
            if not self.failing:
                log.warning("localstripe state not written to %s: %s (retrying)", self.path, error)
            self.failing = True
            return
        if self.failing:
            log.info("localstripe state written to %s again", self.path)
        self.failing = False
        self.saved = changes
        self.writes += 1

    def _fork_writer(self) -> int:
        """A child process that writes the store as it is now and exits. Pickling 5,000
        PaymentIntents takes about 0.2 s of CPU; in a child (memory shared copy-on-write,
        frozen at the fork) the event loop goes on serving meanwhile."""
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:  # the child: no event loop, no signal handlers of the parent's
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            self._write()
            code = 0
        except OSError as exc:  # told once, as the parent warns once (disk full...)
            if not self.failing:
                print(f"localstripe state writer: {exc}", file=sys.stderr, flush=True)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)

    async def run(self) -> None:
        """Every ``interval``, if the store changed, write it from a child process; one at
        a time, and always reaped before the final snapshot (which must come last)."""
        took = 0.0
        while True:
            # A big store takes long to pickle (0.2 s of CPU at 5,000 PaymentIntents, more
            # with each): waiting ten times as long between writes keeps the writers under a
            # tenth of a core, whatever the store's size.
            await asyncio.sleep(max(self.interval, WRITER_SHARE * took))
            if self.store.changes == self.saved:
                continue
            started = time.monotonic()
            changes = self.store.changes
            # Objects alive now (the store, mostly) leave the collector's generations: a full
            # collection would otherwise walk the whole store, pausing every request longer
            # as it grows (p99 240 ms at 10,000 PaymentIntents; 90 ms with this). The writer
            # forked next also copies fewer pages (the collector writes to what it walks).
            gc.freeze()
            pid = self._fork_writer()
            exited = asyncio.Event()
            pidfd = os.pidfd_open(pid)  # readable once the writer has exited
            loop = asyncio.get_running_loop()
            loop.add_reader(pidfd, exited.set)
            try:
                await exited.wait()
            finally:  # also when cancelled at shutdown: the writer finishes first
                loop.remove_reader(pidfd)
                os.close(pidfd)
                code = self._reap(pid)
                self._written(changes, None if code == 0 else f"writer exited with {code}")
                took = time.monotonic() - started

    @staticmethod
    def _reap(pid: int) -> int:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    def final(self) -> None:
        """At shutdown, in this process: the last changes, if any, written."""
        if self.store.changes == self.saved:
            return
        changes = self.store.changes
        try:
            self._write()
        except OSError as exc:
            self._written(changes, str(exc))
            return
        self._written(changes, None)
        log.info("localstripe state saved to %s: %d objects", self.path, len(self.store))


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
