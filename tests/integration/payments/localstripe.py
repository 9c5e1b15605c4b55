"""A real localstripe server, and a network to it that a test can break.

localstripe runs as make run runs it (deploy/localstripe_server.py), with its state file in a
directory of its own and no simulated latency; one server serves the whole run, and tests
tell their PaymentIntents apart by the hold id in the metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[3]


class LocalStripe:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._state_dir: tempfile.TemporaryDirectory[str] | None = None

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url + "/v1/payment_intents", timeout=0.5)
        except urllib.error.HTTPError:
            return True  # 401 without a key: it is up
        except OSError:
            return False
        return True

    def start(self) -> None:
        self._state_dir = tempfile.TemporaryDirectory(prefix="localstripe-")
        env = {
            # A test's own server with the test keys: not prod, whatever the shell says.
            **os.environ,
            "TICKETING_ENV": "test",
            "TICKETING_LOCALSTRIPE_STATE": str(Path(self._state_dir.name) / "state.pickle"),
            "TICKETING_STRIPE_LATENCY_MS": "0",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deploy.localstripe_server",
                "--port",
                str(self.port),
                "--from-scratch",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, 30, "localstripe to answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
        if self._state_dir is not None:
            self._state_dir.cleanup()
            self._state_dir = None

    def register_webhook(self, name: str, url: str, secret: str) -> None:
        body = json.dumps({"url": url, "secret": secret}).encode()
        request = urllib.request.Request(
            f"{self.url}/_config/webhooks/{name}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=5).close()

    def _intents(self) -> list[dict]:
        request = urllib.request.Request(
            self.url + "/v1/payment_intents?limit=100",
            headers={"Authorization": "Bearer sk_test_x"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            return json.loads(resp.read())["data"]

    def intents_for_hold(self, hold_id: uuid.UUID | str) -> list[dict]:
        return [pi for pi in self._intents() if pi["metadata"].get("hold_id") == str(hold_id)]

    def intent_for_attempt(self, attempt_id: uuid.UUID | str) -> dict:
        """The PaymentIntent of one payment attempt, as Stripe shows it (and sends it in
        its events)."""
        [intent] = [
            pi for pi in self._intents() if pi["metadata"].get("attempt_id") == str(attempt_id)
        ]
        return intent


class StripeLink:
    """The network between a booking worker and localstripe, as a test wants it: a TCP hop
    that forwards (``up``), refuses connections like a stopped server (``down``), accepts
    and never answers like a network that swallows packets (``silent``), or passes the
    request on and holds Stripe's answer back for ``delay`` seconds (``late``: Stripe
    acted, the caller stopped listening first). localstripe itself keeps running, so what
    it charged during an outage can still be counted."""

    MODES = ("up", "down", "silent", "late")

    def __init__(self, upstream: LocalStripe) -> None:
        self.upstream_port = upstream.port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode = "down"
        self.delay = 0.0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def set(self, mode: str, delay: float = 0.0) -> None:
        """Switch the network; connections already open are cut, as by a real outage."""
        assert mode in self.MODES, mode
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if mode == "down" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif mode != "down" and self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.mode, self.delay = mode, delay

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if self.mode == "silent":
                while await reader.read(65536):  # swallowed until the caller gives up
                    pass
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            try:
                pumps = {
                    asyncio.create_task(_pump(reader, up_writer, 0.0)),
                    asyncio.create_task(_pump(up_reader, writer, self.delay)),
                }
                try:
                    await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for pump in pumps:
                        pump.cancel()
                    await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                up_writer.close()
                with contextlib.suppress(OSError):
                    await up_writer.wait_closed()
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    with contextlib.suppress(OSError):
        while chunk := await reader.read(65536):
            if delay:
                await asyncio.sleep(delay)
            writer.write(chunk)
            await writer.drain()


AUTH = {"Authorization": "Bearer sk_test_emulator"}


class Emulator(LocalStripe):
    """The launcher on a state file and with settings a test chooses; its log kept."""

    def __init__(
        self,
        state: Path,
        logs: Path,
        *,
        latency_ms: int = 0,
        snapshot_seconds: float = 60.0,
        from_scratch: bool = False,
    ) -> None:
        super().__init__()
        self.state = state
        self.latency_ms = latency_ms
        self.snapshot_seconds = snapshot_seconds
        self.from_scratch = from_scratch
        self.log = logs / f"localstripe-{self.port}.log"

    def start(self) -> None:
        env = {
            **os.environ,
            "TICKETING_ENV": "test",
            "TICKETING_LOCALSTRIPE_STATE": str(self.state),
            "TICKETING_STRIPE_LATENCY_MS": str(self.latency_ms),
        }
        argv = [
            sys.executable,
            "-m",
            "deploy.localstripe_server",
            "--port",
            str(self.port),
            "--snapshot-seconds",
            str(self.snapshot_seconds),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv + ["--from-scratch"] * self.from_scratch,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self.answers, 30, "the localstripe launcher to answer")

    def kill(self) -> None:
        """Gone without its shutdown snapshot, as by SIGKILL or a power cut."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        process = self.process
        super().stop()
        assert process is None or process.returncode == 0, self.log.read_text()

    def call(self, method: str, path: str, **params: str) -> tuple[int, dict]:
        data = urllib.parse.urlencode(params).encode() if method == "POST" else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=AUTH)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, {}

    def pay(self, attempt: str) -> dict:
        status, intent = self.call(
            "POST",
            "/v1/payment_intents",
            amount="2500",
            currency="eur",
            payment_method="pm_card_visa",
            confirm="true",
            **{"metadata[attempt_id]": attempt},
        )
        assert status == 200, intent
        return intent


class Emulators(list[Emulator]):
    """Emulators a test starts, logging into its temporary directory."""

    def __init__(self, logs: Path) -> None:
        super().__init__()
        self.logs = logs

    def launch(self, state: Path, **options: Any) -> Emulator:
        emulator = Emulator(state, self.logs, **options)
        self.append(emulator)
        emulator.start()
        return emulator
