"""What the registered presale's routes take and answer, as the document shows it: the
operators' settings, the fans' view, the draw's public record, and the join's body with
its presale code."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field

from ticketing.api import Body, Shape, Text
from waitingroom.queue import shapes
from waitingroom.queue.fairness_shapes import QueueFairness
from waitingroom.queue.shapes import UNSENT, no_defaults

MAX_PRESALE_CODES = 1_000_000
MAX_PRESALE_SEATS = 10_000_000

PresaleState = Literal["scheduled", "registration_open", "registration_closed", "drawn", "over"]
STATE_DESCRIPTION = (
    "scheduled (registration not open yet), registration_open, registration_closed (to be "
    "drawn), drawn (codes issued; the presale sells until general_sale_at), over (the "
    "general sale is on)."
)


class QueueJoinBody(shapes.QueueJoinBody):
    """Optional: a join may come with no body, or an empty object."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, json_schema_extra=no_defaults
    )

    presale_code: Annotated[
        Text,
        Field(
            min_length=1,
            max_length=64,
            description="The fan's presale code (GET /queue/{event_id}/presale shows it once "
            "drawn; any case, dashes and spaces ignored): required from the event's on-sale "
            "until its presale's general_sale_at, and only this fan's own code is taken.",
        ),
    ] = UNSENT


class PresaleRegistrationBody(Body):
    """Optional: a registration may come with no body, or an empty object."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, json_schema_extra=no_defaults
    )

    altcha: Annotated[
        Text,
        Field(
            min_length=1,
            max_length=4096,
            description="A solved challenge of GET /queue/{event_id}/challenge: required "
            "while the event's challenge is on, as for a join.",
        ),
    ] = UNSENT


class JoinProblem(shapes.ChallengeProblem):
    """A join's 403: with ``challenge_required`` and ``challenge_failed``, a fresh
    challenge to solve; with ``presale_code_required`` and ``presale_code_invalid``, when
    the general sale opens and where the presale is described."""

    model_config = ConfigDict(extra="allow", frozen=True, json_schema_extra=no_defaults)

    general_sale_at: datetime = UNSENT
    presale: str = Field(default=UNSENT, description="Path of GET /queue/{event_id}/presale.")


class PresaleSettings(Body):
    """A presale's settings, all of them. Registration closes at or before the event's
    on_sale_at (the draw comes in between), and the presale runs from on_sale_at until
    general_sale_at, when the general sale follows in the same queue."""

    registration_opens_at: Annotated[AwareDatetime, Field(description="RFC 3339 with an offset.")]
    registration_closes_at: Annotated[
        AwareDatetime, Field(description="After registration_opens_at, not after on_sale_at.")
    ]
    general_sale_at: Annotated[
        AwareDatetime,
        Field(description="After the event's on_sale_at: until then only codes join."),
    ]
    codes: Annotated[
        int,
        Field(ge=1, le=MAX_PRESALE_CODES, description="Registrants drawn a presale code."),
    ]
    seats: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_PRESALE_SEATS,
            description="The presale's share of the event's seats: holds and sales stop "
            "there until general_sale_at (at most the seats the event has).",
        ),
    ]


class PresaleAdmin(Shape):
    """A presale as operators see it: its settings, where it stands and its figures."""

    event_id: int
    registration_opens_at: datetime
    registration_closes_at: datetime
    general_sale_at: datetime
    codes: int = Field(description="Registrants to be drawn a code.")
    seats: int = Field(description="The presale's share of the seats.")
    state: PresaleState = Field(description=STATE_DESCRIPTION)
    registrations: int
    codes_issued: int
    codes_redeemed: int = Field(description="Codes whose fan joined the presale queue.")
    seats_taken: int = Field(
        description="Seats held or sold in the event now (while the presale runs, at most seats)."
    )
    admission_held: bool = Field(
        description="The presale runs and every seat of its share is held or sold: the "
        "queue admits nobody (fans in line are told presale_sold_out) until holds lapse "
        "or the general sale opens."
    )
    commitment: str = Field(description="SHA-256 (hex) of the draw's seed, public at once.")
    committed_at: datetime
    seed: str | None = Field(description="Revealed by the draw.")
    drawn_at: datetime | None


class PresaleYou(Shape):
    """The caller in the presale."""

    registered: bool
    registered_at: datetime | None
    member: str = Field(
        description="The caller's member ref in the draw (HMAC-SHA256 of "
        "'<event_id>:<user_id>' under the event's member key, hex)."
    )
    drawn_position: int | None = Field(
        description="1 = drawn first; null before the draw or when not registered."
    )
    code: str | None = Field(
        description="The caller's presale code (XXXX-XXXX-XXXX) once drawn one; null otherwise."
    )
    redeemed: bool = Field(description="The code was used by a presale join.")


class PresalePublic(Shape):
    """An event's presale as fans see it."""

    event_id: int
    registration_opens_at: datetime
    registration_closes_at: datetime
    on_sale_at: datetime = Field(description="The presale's queue opens (the event's on-sale).")
    general_sale_at: datetime
    codes: int
    seats: int
    state: PresaleState = Field(description=STATE_DESCRIPTION)
    registrations: int
    commitment: str = Field(description="SHA-256 (hex) of the draw's seed.")
    draw: str = Field(description="Path of the draw's public record.")
    you: PresaleYou | None = Field(default=None, description="With a bearer token only.")


class PresaleRegistered(Shape):
    """The caller's registration."""

    event_id: int
    registered_at: datetime
    member: str = Field(description="The caller's member ref in the draw, hex.")
    registration_closes_at: datetime


class PresaleDraw(QueueFairness):
    """The record of a presale's draw: the pre-queue's record (the same algorithm, the same
    checks), of the registrants; the first ``codes`` of the order were issued codes."""

    codes: int = Field(description="The first this many of the order were issued a code.")
