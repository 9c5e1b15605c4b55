"""The state file of deploy/localstripe_server.py: the store loaded from it at start and
snapshotted to it, atomically, from a forked child when it changed (see that module's
docstring for why)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import pickle
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploy.localstripe_server import IndexedStore

log = logging.getLogger("deploy.localstripe_server")

WRITER_SHARE = 10  # the next snapshot waits at least this many times the last one's duration


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
