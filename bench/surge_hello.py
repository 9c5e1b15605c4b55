"""The surge benchmark's baseline: a hello-world aiohttp process, run the way the
waitingroom runs (``web.run_app`` on uvloop, no access log), behind the same gateway.

    python bench/surge_hello.py PORT
"""

from __future__ import annotations

import sys

from aiohttp import web

from ticketing.web import use_uvloop

HELLO_PATH = "/bench/hello"


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


def main() -> None:
    use_uvloop()  # as the waitingroom runs (ticketing.web.run_app)
    app = web.Application()
    app.router.add_get(HELLO_PATH, hello)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
