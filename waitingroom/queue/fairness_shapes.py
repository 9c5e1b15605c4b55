"""The fair start's public record as ``GET /queue/{event_id}/fairness`` answers it, and the
paging it takes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from ticketing.api import Query, Shape

PAGE_MAX = 1_000
OFFSET_MAX = 2**31 - 1


class QueueFairnessQuery(Query):
    offset: Annotated[
        int,
        Field(
            ge=0,
            le=OFFSET_MAX,
            description="Drawn members to skip (order and members pages start there).",
        ),
    ] = 0
    limit: Annotated[int, Field(ge=1, le=PAGE_MAX, description="Page size.")] = PAGE_MAX


class QueueSupersededCommitment(Shape):
    """A commitment whose seed was lost with the queue before the draw."""

    epoch: int
    commitment: str
    committed_at: datetime
    superseded_at: datetime


class QueueFairnessMember(Shape):
    """The caller in the draw."""

    member: str = Field(
        description="The caller's member in the record: HMAC-SHA256 of '<event_id>:<user_id>' "
        "under the event's member key, which is never published (so nobody can test a "
        "guessed user id), hex."
    )
    drawn_position: int | None = Field(
        description="1 = drawn first; null before the draw or when the caller is not in it."
    )


class QueueFairness(Shape):
    """The record of an event's pre-queue draw."""

    event_id: int
    on_sale_at: datetime
    algorithm: str = Field(description="How to recompute everything below.")
    state: Literal["none", "committed", "drawn"]
    epoch: int | None = Field(description="1, or more if the room had to commit to a new seed.")
    commitment: str | None = Field(description="SHA-256 (hex) of the seed.")
    committed_at: datetime | None
    superseded: list[QueueSupersededCommitment] = Field(
        description="Earlier commitments whose seed was lost with the queue before the draw "
        "(never revealed), oldest first."
    )
    seed: str | None = Field(description="Revealed at on-sale (hex).")
    revealed_at: datetime | None
    total: int | None = Field(description="Members drawn (the whole order).")
    order_sha256: str | None = Field(
        description="SHA-256 (hex) of the whole order's members joined by '\\n'."
    )
    offset: int
    limit: int
    order: list[str] | None = Field(
        description="Drawn positions offset+1 .. offset+limit, first drawn first."
    )
    members: list[str] | None = Field(description="The same page of the members sorted ascending.")
    next: str | None = Field(description="Path of the next page; null on the last.")
    verified: bool | None = Field(
        description="Checked by the server over the whole order: the seed matches the "
        "commitment, the order is sorted by the seed, total and order_sha256 match."
    )
    you: QueueFairnessMember | None = Field(default=None, description="With a bearer token only.")
