"""Typesense client objects without the client library's deprecation noise.

typesense 2.x eagerly builds helpers that are deprecated on Typesense v30+ (AnalyticsV1 in
the client, Overrides and Synonyms in every collection) and warns each time, although we
never use them. We suppress exactly those warnings, only around those constructors.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typesense

from ticketing.config import Settings
from ticketing.search_index import make_client

_V30_DEPRECATION = r".* is deprecated on v30\+"


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_V30_DEPRECATION, category=DeprecationWarning)
        yield


def new_client(settings: Settings) -> typesense.AsyncClient:
    with _quiet():
        return make_client(settings)


def collection(client: typesense.AsyncClient, name: str) -> Any:
    """``client.collections[name]`` (an AsyncCollection), built quietly."""
    with _quiet():
        return client.collections[name]
