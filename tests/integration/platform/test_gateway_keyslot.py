"""(Not a unit test: it runs nginx and redis-server, and make check runs no servers.)

The gateway's slot of a key (deploy/lua/redis_slots.lua) is Redis Cluster's: the Lua,
run by the gateway's own nginx, against CLUSTER KEYSLOT of a real cluster-enabled
redis-server, for the queue's keys and for thousands of keys chosen to trip a hash tag
rule (braces empty, unclosed, nested, repeated; any byte)."""

from __future__ import annotations

import random
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
import redis

from deploy.render_nginx import LUA_DIR
from tests.support import free_port, wait_until

NGINX_CONF = """
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_buffer_size 1m;
    client_max_body_size 1m;
    lua_package_path "{lua_dir}/?.lua;;";
    server {{
        listen 127.0.0.1:{port};
        # keys in hex, one a line after a "k" (an empty key is a line too); slots out
        location = /slots {{
            content_by_lua_block {{
                local keyslot = require("redis_slots").keyslot
                ngx.req.read_body()
                local out = {{}}
                for hex in (ngx.req.get_body_data() or ""):gmatch("k(%x*)") do
                    local key = hex:gsub("..", function(h) return string.char(tonumber(h, 16)) end)
                    out[#out + 1] = keyslot(key)
                end
                ngx.print(table.concat(out, "\\n"))
            }}
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def lua_keyslot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    root, port = tmp_path_factory.mktemp("keyslot-nginx"), free_port()
    (root / "logs").mkdir()
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(lua_dir=LUA_DIR, port=port))
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(root), "-e", "stderr"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def slots(keys: list[bytes]) -> list[int]:
        body = "\n".join("k" + key.hex() for key in keys).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/slots", body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            return [int(line) for line in resp.read().decode().split("\n")]

    def answers() -> bool:
        assert proc.poll() is None, "nginx exited"
        try:
            return slots([b"a"]) == [15495]
        except OSError:
            return False

    try:
        wait_until(answers, 10, "nginx to answer")
        yield slots
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    """A lone cluster-enabled redis-server: CLUSTER KEYSLOT needs no slots of its own."""
    root, port = tmp_path_factory.mktemp("keyslot-redis"), free_port()
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
            *("--cluster-enabled", "yes", "--cluster-config-file", str(root / "nodes.conf")),
            *("--save", "", "--appendonly", "no", "--dir", str(root)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis("127.0.0.1", port, socket_timeout=5)

    def answers() -> bool:
        assert proc.poll() is None, "redis-server exited"
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers, 10, "redis-server to answer")
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def _keys() -> list[bytes]:
    rng = random.Random(13)
    pieces = [b"{", b"}", b"{}", b"}{", b"q:", b"tk:", b"{7}", b"\x00", b"\xff", b"\xe2\x82\xac"]
    keys = [
        b"",
        b"123456789",  # CRC16/XMODEM's check value 0x31C3
        b"{",
        b"}",
        b"{}",
        b"{}x",
        b"x{}{y}",
        b"{{a}}",
        b"a{b{c}d}",
        b"{user1000}.following",
        b"foo{}{bar}",
        b"foo{{bar}}zap",
        b"foo{bar}{zap}",
        *(f"tk:q:{{{event_id}}}:waiting".encode() for event_id in (1, 7, 42, 2**53 - 1)),
        b"tk:queue:events",
    ]
    for _ in range(3000):
        parts = []
        for _ in range(rng.randrange(1, 8)):
            if rng.random() < 0.4:
                parts.append(rng.choice(pieces))
            else:
                parts.append(rng.randbytes(rng.randrange(0, 12)))
        keys.append(b"".join(parts))
    return keys


def test_the_lua_slot_is_cluster_keyslot(lua_keyslot, cluster_node: redis.Redis) -> None:
    keys = _keys()
    pipe = cluster_node.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("CLUSTER", "KEYSLOT", key)
    expected = pipe.execute()
    got = lua_keyslot(keys)
    wrong = [
        (key, lua, want) for key, lua, want in zip(keys, got, expected, strict=True) if lua != want
    ]
    assert not wrong, f"{len(wrong)} of {len(keys)} differ, e.g. {wrong[:5]}"
    assert got[1] == 0x31C3 % 16384
    # The queue's keys of one event share a slot; different events spread.
    queue = {got[keys.index(f"tk:q:{{{e}}}:waiting".encode())] for e in (1, 7, 42)}
    assert len(queue) == 3
