"""What deploy/render_nginx.py hands the gateway's queue join (deploy/lua/queue_join.lua):
the waitingroom's own script, keys and limits, and a Lua literal that says exactly that."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

from deploy.gateway import command, gateway_env
from deploy.render_nginx import lua_table, queue_join_options, system_resolver, write
from tests.support import free_port, wait_until
from ticketing.config import Settings
from waitingroom.queue import scripts as queue_scripts


def test_the_options_are_the_waitingroom_settings():
    settings = dataclasses.replace(
        Settings(),
        redis_url="redis://cache.internal:6380/3",
        redis_prefix="tk-a:",
        queue_user_rate_per_minute=60,
        queue_ip_rate_per_minute=600,
    )
    options = queue_join_options(settings)
    assert (options["redis_mode"], options["redis_nodes"], options["redis_db"]) == (
        "single",
        [["cache.internal", 6380]],
        3,
    )
    assert options["key_prefix"] == "tk-a:q:{" and options["events_key"] == "tk-a:queue:events"
    # The same script the waitingroom registers (redis-py runs it by this SHA too).
    assert options["place_sha"] == hashlib.sha1(queue_scripts.PLACE.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA1
    # GCRA interval and tolerance in ms, as QueueStore passes them to PLACE.
    assert options["user_limit"] == [1000.0, 10000.0]
    assert options["ip_limit"] == [100.0, 10000.0]
    assert options["max_id"] == 2**53 - 1  # larger ids go to the waitingroom


def test_the_secrets_go_in_the_environment_never_the_config():
    settings = dataclasses.replace(
        Settings(),
        jwt_secret="s" * 40,
        queue_ticket_secret="t" * 40,
        redis_url="redis://:p%40ss@127.0.0.1:6379/0",
    )
    rendered = lua_table(queue_join_options(settings))
    assert "s" * 40 not in rendered and "t" * 40 not in rendered and "p@ss" not in rendered
    env = gateway_env(settings, {"PATH": "/bin"})
    assert env["TICKETING_JWT_SECRET"] == "s" * 40
    assert env["TICKETING_QUEUE_TICKET_SECRET"] == "t" * 40
    assert env["TICKETING_GATEWAY_REDIS_PASSWORD"] == "p@ss"
    # RS256 tokens are the waitingroom's to verify: without the key the gateway passes all.
    rs = dataclasses.replace(settings, jwt_algorithm="RS256")
    assert "TICKETING_JWT_SECRET" not in gateway_env(rs, {"TICKETING_JWT_SECRET": "x"})


def test_lua_literals():
    assert lua_table({"a": [1, 2.5, True], "b": 'say "hi" \\ bye'}) == (
        '{a = {1, 2.5, true}, b = "say \\"hi\\" \\\\ bye"}'
    )
    with pytest.raises(ValueError, match="not printable ASCII"):
        lua_table("line\nbreak")
    with pytest.raises(TypeError):
        lua_table(None)


def _run(conf, prefix, log) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command(conf, prefix),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=gateway_env(Settings(), {**os.environ, "TICKETING_ENV": "test"}),
        )


def test_nginx_starts_with_the_rendered_literal(tmp_path):
    """nginx runs init_by_lua as it starts (nginx -t does not): the literal is read, the
    module configured, and its metrics listener answers. A prefix with a quote and a
    backslash comes out escaped; a literal Lua cannot read stops the start."""
    settings = dataclasses.replace(
        Settings(),
        redis_prefix='odd"pre\\fix:',
        gateway_port=free_port(),
        gateway_metrics_port=free_port(),
    )
    conf, prefix = tmp_path / "nginx.conf", tmp_path / "nginx"
    write(settings, conf, prefix)
    log = tmp_path / "nginx.log"
    gateway = _run(conf, prefix, log)
    try:
        url = f"http://127.0.0.1:{settings.gateway_metrics_port}/metrics"

        def answers() -> bool:
            assert gateway.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return b"# TYPE ticketing_gateway_queue_joins_total counter" in resp.read()
            except OSError:
                return False

        wait_until(answers, 20, "the gateway's metrics listener")
    finally:
        gateway.send_signal(signal.SIGQUIT)
        gateway.wait(timeout=10)

    conf.write_text(conf.read_text().replace("key_prefix = ", "key_prefix = = "))
    broken = _run(conf, prefix, log)
    try:
        broken.wait(timeout=20)
    finally:
        broken.kill()
    assert broken.returncode != 0 and "init_by_lua" in log.read_text(), log.read_text()


@pytest.mark.parametrize(("switch", "reason"), [("on", "token"), ("off", "disabled")])
def test_the_switch_sends_every_join_to_the_waitingroom(tmp_path, switch, reason):
    """TICKETING_GATEWAY_QUEUE_JOIN=off: the Lua answers nothing, every join is passed on
    (here to a waitingroom port nobody listens on: the gateway's 502)."""
    settings = dataclasses.replace(
        Settings(),
        gateway_queue_join=switch,
        gateway_port=free_port(),
        gateway_metrics_port=free_port(),
        waitingroom_port=free_port(),
        waitingroom_processes=1,
    )
    conf, prefix = tmp_path / "nginx.conf", tmp_path / "nginx"
    write(settings, conf, prefix)
    log = tmp_path / "nginx.log"
    gateway = _run(conf, prefix, log)
    metrics = f"http://127.0.0.1:{settings.gateway_metrics_port}/metrics"
    try:
        wait_until(lambda: _get(metrics) is not None, 20, "the gateway")
        request = urllib.request.Request(
            f"http://127.0.0.1:{settings.gateway_port}/queue/1/join",
            method="POST",
            headers={"Authorization": "Bearer not-ours"},
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=5)
        answer.value.close()
        assert answer.value.code == 502
        text = _get(metrics)
        assert f'ticketing_gateway_queue_join_fallbacks_total{{reason="{reason}"}} 1' in text
    finally:
        gateway.send_signal(signal.SIGQUIT)
        gateway.wait(timeout=10)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return None


def test_the_resolver_is_this_hosts_first_nameserver(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example\nnameserver 10.1.2.3\nnameserver 10.9.9.9\n")
    assert system_resolver(conf) == "10.1.2.3"
    conf.write_text("nameserver fd00::53\n")
    assert system_resolver(conf) == "[fd00::53]"
    assert system_resolver(tmp_path / "absent") == "127.0.0.1"
