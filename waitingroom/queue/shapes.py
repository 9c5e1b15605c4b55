"""What the fans' queue routes take and answer, as the document shows it: the join's body,
the status every join, status and push carries, and the query parameters of the page and
the websocket (:mod:`waitingroom.queue.admin_shapes` has the operators',
:mod:`waitingroom.queue.fairness_shapes` the fair start's record)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from ticketing.api import Body, ProblemFields, Query, Shape, Text

# The default of a body's field that may be left out but never sent as null: typed Any so
# that the field keeps its type (null refused) yet defaults to None (not sent).
UNSENT: Any = None


def no_defaults(schema: dict[str, Any]) -> None:
    """A body model's schema without the UNSENT defaults: the fields are optional, not
    nullable."""
    for prop in schema["properties"].values():
        prop.pop("default", None)


class QueueJoinBody(Body):
    """Optional: a join may come with no body, or an empty object."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, json_schema_extra=no_defaults
    )

    queue_ticket: Annotated[
        Text,
        Field(
            min_length=1,
            description="The queue_ticket an earlier join or status returned: should the "
            "queue have lost its state, the place it records is restored (an admitted fan's: "
            "the session, until it would have ended).",
        ),
    ] = UNSENT
    altcha: Annotated[
        Text,
        Field(
            min_length=1,
            max_length=4096,
            description="A solved challenge of GET /queue/{event_id}/challenge (the ALTCHA "
            "widget's payload, base64): required while the event's challenge is on.",
        ),
    ] = UNSENT


class ChallengeData(Shape):
    max_tries: int = Field(
        description="The most tries it takes (the difficulty's bound): half on average."
    )


class ChallengeParameters(Shape):
    """ALTCHA proof of work v2: find the counter whose PBKDF2 key starts with keyPrefix."""

    algorithm: Literal["PBKDF2/SHA-256"]
    cost: int = Field(description="PBKDF2 iterations per try.")
    keyLength: int
    keyPrefix: str
    keySignature: str
    nonce: str
    salt: str
    expiresAt: int = Field(description="Unix time (s) after which it is refused.")
    data: ChallengeData


class QueueChallenge(Shape):
    """A proof-of-work challenge for this fan and this event, single use (the ALTCHA
    widget takes it as it is)."""

    parameters: ChallengeParameters
    signature: str


class ChallengeProblem(ProblemFields):
    """A join's 403: with ``challenge_required`` and ``challenge_failed``, a fresh
    challenge to solve."""

    model_config = ConfigDict(extra="allow", frozen=True, json_schema_extra=no_defaults)

    challenge: QueueChallenge = UNSENT


class QueueStatus(Shape):
    """Where a fan stands in an event's queue."""

    event_id: int
    status: Literal[
        "pre_queue", "waiting", "all_held", "presale_sold_out", "admitted", "paused", "sold_out"
    ] = Field(
        description="pre_queue: joined before on_sale_at, the order is drawn at on-sale; "
        "all_held: every remaining seat is in another fan's hold, the fan keeps the place and "
        "may still get in if holds expire or are released; presale_sold_out: the event's "
        "registered presale runs and every seat of its share is held or sold, so nobody is "
        "admitted: the fan keeps the place and gets in if holds of the share lapse, or once "
        "the general sale opens (general_sale_at); paused: an operator paused "
        "admission (the place is kept); sold_out: nothing is left to sell (nothing available, "
        "nothing held): admitted fans' sessions end too, and should seats come back the line "
        "moves again in order."
    )
    position: int | None = Field(
        description="1 = next to be admitted; 0 once admitted; null in the pre-queue (not "
        "drawn yet) and when sold out."
    )
    ahead: int | None = Field(description="Fans ahead (position - 1).")
    eta_seconds: int | None = Field(
        description="Estimated wait from the admission rate measured over the last minute "
        "(not the configured one); null while nothing was measured, paused, all_held, "
        "presale_sold_out or in the pre-queue."
    )
    queue_ticket: str = Field(
        description="Signed record of this place (or session, once admitted). Send it back "
        "on join: if the queue lost its state the place (the session) is restored."
    )
    on_sale_at: datetime
    waiting: int = Field(description="Fans in this queue (including the pre-queue).")
    admit_rate_per_minute: float = Field(
        description="Admissions per minute measured over the last minute."
    )
    admission_token: str | None = Field(
        default=None,
        description="Only when admitted: send as X-Admission-Token to /booking/reserve. "
        "Valid for this fan and event until admission_expires_at.",
    )
    admission_expires_at: datetime | None = Field(default=None, description="Only when admitted.")
    general_sale_at: datetime | None = Field(
        default=None,
        description="Only with presale_sold_out: when the general sale opens (the place "
        "is kept for it).",
    )


class SocketTicket(Shape):
    """A single-use ticket for opening the queue's websocket."""

    ticket: str = Field(description="Pass as ?ticket= to GET /queue/{event_id}/ws, once.")
    expires_in: int = Field(description="Seconds the ticket stays valid.")


class QueueSocketQuery(Query):
    ticket: str | None = Field(
        default=None,
        description="A single-use ticket from POST /queue/{event_id}/ws-ticket: how a browser "
        "opens the socket (it cannot set headers on a websocket) without putting its access "
        "token in a URL. A client that can set headers may send a bearer Authorization "
        "header instead.",
    )
    token: str | None = Field(
        default=None,
        description="The fan's JWT, accepted only in development (TICKETING_ENV=dev); "
        "elsewhere it answers 401: tokens stay out of URLs, use a ticket.",
    )


class QueuePageQuery(Query):
    user: str | None = Field(
        default=None,
        description="Read by the page's script, not the server: the development user whose "
        "token the page uses.",
    )
