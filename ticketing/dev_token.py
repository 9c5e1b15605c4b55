"""``POST /auth/dev-token``: any user and roles, for development. The service registers
:data:`DEV_TOKEN_API` only when ``TICKETING_ENV=dev``."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field

from ticketing.api import Api, Body, Ok, Problems, Shape, Text
from ticketing.api.common import BAD_REQUEST, RATE_LIMITED, TOO_LARGE
from ticketing.auth import issue_dev_token
from ticketing.web import SETTINGS_KEY

DEV_TOKEN_API = Api()


class DevTokenBody(Body):
    """Who the token is for."""

    user_id: Annotated[Text, Field(min_length=1, max_length=128)]
    roles: Annotated[
        list[Annotated[Text, Field(min_length=1, max_length=64)]], Field(max_length=16)
    ] = Field(default_factory=list)


class AccessToken(Shape):
    """A bearer token."""

    access_token: str
    token_type: str
    expires_in: int


@DEV_TOKEN_API.post(
    "/auth/dev-token",
    summary="A development access token for any user and roles (TICKETING_ENV=dev only)",
    body=DevTokenBody,
    replies=[
        Ok(200, "The token", shape=AccessToken),
        BAD_REQUEST,
        # Outside dev the route is not there: the router's own 404.
        Problems(404, "the route exists only when TICKETING_ENV=dev", codes=("not_found",)),
        TOO_LARGE,
        RATE_LIMITED,
    ],
)
async def dev_token(request: web.Request, body: DevTokenBody) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    return web.json_response(issue_dev_token(settings, body.user_id, list(body.roles)))
