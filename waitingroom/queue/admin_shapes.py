"""What the operators' queue routes take and answer: the settings a PATCH may change, with
the bounds an operator may set them to (declared here only: the model refuses the rest),
a queue's figures, the console's list and the charts' series."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from ticketing.api import Body, Query, Shape
from ticketing.domain.challenge import MAX_DIFFICULTY
from waitingroom.queue.shapes import UNSENT, no_defaults
from waitingroom.queue.signals_rules import DEFAULT_THRESHOLD, MAX_THRESHOLD, ClusterRuleName

# What an operator may set: wide bounds, but a typo cannot make a queue unusable.
MAX_ADMIT_PER_MINUTE = 1_000_000
MAX_ACTIVE_LIMIT = 10_000_000
MAX_SESSION_SECONDS = 24 * 3600
MAX_ADMISSION_MARGIN_PERCENT = 1000

# The settings as every reply shows them; a PATCH's bounds are QueuePatch's own (the
# defaults come from the service's settings, which an operator's bounds do not limit).
AdmitPerMinute = Annotated[
    int, Field(description="Admissions per minute (in auto mode, the ceiling).")
]
MaxActive = Annotated[int, Field(description="Most admitted sessions at once.")]
SessionSeconds = Annotated[int, Field(description="Length of an admission session.")]
ClaimSeconds = Annotated[
    int,
    Field(
        description="Claim window: an admitted fan who holds no seats this long after "
        "admission loses the admission to the next fan."
    ),
]
AdmissionMarginPercent = Annotated[
    int,
    Field(
        description="Fans admitted but not yet holding, times the seats a fan takes on "
        "average (measured), stay within the seats left plus this share."
    ),
]
ChallengeDifficulty = Annotated[
    int,
    Field(
        description="Proof of work a join carries (an ALTCHA challenge): 0 turns it off; 1 to "
        f"{MAX_DIFFICULTY}, each step doubling the work (3: at most 5,000 PBKDF2 tries, under "
        "2 s in a browser)."
    ),
]
ChallengeAuto = Annotated[
    bool,
    Field(
        description="The automatic mode: the difficulty goes up a step every 10 s while joins "
        "or failed solutions per second spike, and back down to challenge_difficulty when calm."
    ),
]
ClusterRule = Annotated[
    ClusterRuleName,
    Field(
        description="One person, one place: what happens to fans whose accounts look like one "
        "actor's (an address block or a device with more than cluster_threshold accounts, a "
        "card paid with by more than one account; GET /admin/queues/{event_id}/clusters). "
        "off: only recorded and shown; harder_challenge: their join carries a challenge two "
        "steps harder than the door's (at least difficulty 5), whether or not the door is "
        "on; back_of_line: their place is moved behind everyone in line, once, and their "
        'status says moved: "cluster". While it is on, the gateway hands every join of the '
        "event to the waitingroom."
    ),
]
ClusterThreshold = Annotated[
    int,
    Field(
        description="K: an address block (IPv4 /24, IPv6 /48) or a device with more than K "
        f"accounts is a cluster (default {DEFAULT_THRESHOLD})."
    ),
]
Paused = Annotated[bool, Field(description="No one is admitted; fans keep their places.")]
Mode = Annotated[
    Literal["manual", "auto"],
    Field(
        description="manual: admit_per_minute is the rate; auto: the rate is steered (up to "
        "admit_per_minute) from the booking backlog, reserve latency and remaining seats."
    ),
]


class QueuePatch(Body):
    """The settings to change; any of them, none required. Fields not sent keep their value
    (their UNSENT default is never read), so two operators changing different fields both
    win."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, json_schema_extra=no_defaults
    )

    admit_per_minute: Annotated[AdmitPerMinute, Field(ge=0, le=MAX_ADMIT_PER_MINUTE)] = UNSENT
    max_active: Annotated[MaxActive, Field(ge=0, le=MAX_ACTIVE_LIMIT)] = UNSENT
    paused: Paused = UNSENT
    session_seconds: Annotated[SessionSeconds, Field(ge=1, le=MAX_SESSION_SECONDS)] = UNSENT
    mode: Mode = UNSENT
    claim_seconds: Annotated[ClaimSeconds, Field(ge=1, le=MAX_SESSION_SECONDS)] = UNSENT
    admission_margin_percent: Annotated[
        AdmissionMarginPercent, Field(ge=0, le=MAX_ADMISSION_MARGIN_PERCENT)
    ] = UNSENT
    challenge_difficulty: Annotated[ChallengeDifficulty, Field(ge=0, le=MAX_DIFFICULTY)] = UNSENT
    challenge_auto: ChallengeAuto = UNSENT
    cluster_rule: ClusterRule = UNSENT
    cluster_threshold: Annotated[ClusterThreshold, Field(ge=1, le=MAX_THRESHOLD)] = UNSENT

    def changes(self) -> dict[str, Any]:
        """The fields sent, as QueueConfig's."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class QueueInventory(Shape):
    available: int
    reserved: int
    booked: int
    total: int


class QueueFigures(Shape):
    """A queue's settings and its figures now."""

    event_id: int
    admit_per_minute: AdmitPerMinute
    max_active: MaxActive
    paused: Paused
    session_seconds: SessionSeconds
    mode: Mode
    claim_seconds: ClaimSeconds
    admission_margin_percent: AdmissionMarginPercent
    challenge_difficulty: ChallengeDifficulty
    challenge_auto: ChallengeAuto
    cluster_rule: ClusterRule
    cluster_threshold: ClusterThreshold
    effective_challenge_difficulty: int = Field(
        description="The difficulty in force: challenge_difficulty, or the automatic mode's "
        "level while it is higher."
    )
    waiting: int
    active: int
    admitted_total: int
    name: str
    on_sale_at: datetime
    pre_queue: int = Field(description="Fans in the pre-queue, until the draw.")
    drawn: bool = Field(description="The pre-queue was drawn (on sale).")
    sold_out: bool
    all_held: bool = Field(
        description="Every seat left is in a hold: nobody is admitted meanwhile."
    )
    unclaimed: int = Field(description="Admitted fans holding no seats yet.")
    seats_per_fan: float | None = Field(
        description="Seats a fan took on average in this event's holds (null until one was "
        "made; admission assumes 2 until then)."
    )
    effective_admit_per_minute: float = Field(
        description="The rate admitters work to (auto mode's own, capped)."
    )
    measured_admit_per_minute: float
    inventory: QueueInventory | None = Field(description="Null until the first count.")


class QueueBookingHealth(Shape):
    """What auto mode last measured of the booking path (null: not measured)."""

    backlog: int | None = Field(description="Commands waiting in the booking queues.")
    reserve_latency_ms: float | None = Field(
        description="Average reserve time at the front door, lately."
    )
    at: float = Field(description="When it was measured (Unix time, s).")


class QueueList(Shape):
    """Every queue-enabled event with its queue figures."""

    items: list[QueueFigures]
    booking_health: QueueBookingHealth | None = Field(
        description="What auto mode last measured; null when nothing did in the last 10 s."
    )


class QueueSample(Shape):
    """One second of a queue."""

    at_ms: int = Field(description="When it was taken (Unix time, ms).")
    waiting: int
    pre_queue: int
    active: int = Field(description="Admitted sessions running.")
    admitted_total: int
    effective_admit_per_minute: float = Field(
        description="The admission rate in force (auto mode's own, capped)."
    )
    measured_admit_per_minute: float = Field(
        description="Admissions per minute made over the last minute."
    )
    available: int = Field(description="Seats left to sell.")
    reserved: int = Field(description="Seats in fans' holds.")
    booked: int = Field(description="Seats sold.")
    seats_held_total: int = Field(
        description="Seats held by 201 reserves so far (the count admission uses: every "
        "hold adds its seats as it is made)."
    )
    unclaimed: int = Field(description="Admitted fans holding no seats yet.")
    seats_held_per_second: float | None = Field(
        description="Seats held per second over the last 5 s (gross: holds that ended "
        "meanwhile still count); null without an earlier sample."
    )
    seats_sold_per_second: float | None = Field(
        description="Seats booked per second over the last 5 s (from booked; 0 when refunds "
        "outweigh sales); null without an earlier sample."
    )


class QueueSeries(Shape):
    """A queue's last 15 minutes."""

    event_id: int
    window_seconds: int = Field(description="How far back the samples go (900).")
    samples: list[QueueSample] = Field(
        description="Oldest first, about one a second (taken right after the once-a-second "
        "inventory count); a gap means nobody counted then."
    )


class QueueSeriesQuery(Query):
    since_ms: Annotated[
        int,
        Field(
            ge=0,
            le=2**53,
            description="Only the samples taken after this time (Unix ms): what is new since "
            "the last call.",
        ),
    ] = 0


class QueueCluster(Shape):
    """Accounts that look like one actor's."""

    kind: Literal["address_block", "device", "card"]
    key: str = Field(
        description="The address block (203.0.113.0/24, 2001:db8:1::/48), a hash of the "
        "device cookie (the cookie itself is never kept), or Stripe's card fingerprint."
    )
    accounts: int = Field(description="Accounts that joined from it (paid with it: card).")
    sample: list[str] = Field(description="Up to 20 of those accounts (user ids).")


class QueueClusters(Shape):
    """An event's clusters: address blocks and devices with more than cluster_threshold
    accounts (the 100 largest of each), cards paid with by more than one account."""

    event_id: int
    cluster_rule: ClusterRule
    cluster_threshold: ClusterThreshold
    moved: int = Field(description="Fans moved to the back of the line in this event so far.")
    clusters: list[QueueCluster]
    cards_unavailable: bool = Field(
        description="The cards' record (PostgreSQL) could not be read: no card clusters "
        "are listed this time."
    )
