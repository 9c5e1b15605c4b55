"""A registered presale on record in PostgreSQL (migration 0008): its settings, the fans
who registered, the draw and the codes it issued.

The draw is the pre-queue's (:mod:`waitingroom.queue.draw_record`, kept by the same
:class:`FairnessRecord` in tables of its own): the seed is committed to when the presale is
made, and at the draw the registrants' member refs are ordered by HMAC-SHA256 under it
(:func:`ticketing.domain.queue.draw_order`); the first ``codes`` of the order are issued a
code each. The seed stays in the presale's row, secret, until the draw reveals it.

Registrations and the draw share the draw lock: a registration holds it shared, the draw
alone, so none that began before the window closed is left out of a draw under way.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ticketing.domain.queue import commitment, draw_order, member_key, member_ref
from ticketing.problems import Problem, backend_unavailable
from ticketing.validation import rfc3339
from waitingroom.queue.draw_record import DrawBusy, DrawRecord, FairnessRecord

PRESALE_DRAW = "presale_draw"
# Codes a fan types: 12 characters of Crockford's base32 (no I, L, O, U), 60 bits.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
_LOCK_TRIES = 100  # 5 s of 50 ms waits for a draw or a change under way
_SHARED_LOCK = (
    "SELECT pg_advisory_xact_lock_shared("
    f"hashtextextended('{PRESALE_DRAW}:' || $1::bigint::text, 0))"
)
_GET = """SELECT event_id, registration_opens_at, registration_closes_at, general_sale_at,
       codes, seats, seed FROM presales WHERE event_id = $1"""


@dataclass(frozen=True, slots=True)
class Presale:
    event_id: int
    registration_opens_at: datetime
    registration_closes_at: datetime
    general_sale_at: datetime
    codes: int
    seats: int
    seed: str  # secret until the draw reveals it

    @property
    def general_sale_ms(self) -> int:
        return int(self.general_sale_at.timestamp() * 1000)

    def settings_json(self) -> dict[str, Any]:
        return {
            "registration_opens_at": rfc3339(self.registration_opens_at),
            "registration_closes_at": rfc3339(self.registration_closes_at),
            "general_sale_at": rfc3339(self.general_sale_at),
            "codes": self.codes,
            "seats": self.seats,
        }


@dataclass(frozen=True, slots=True)
class Registration:
    registered_at: datetime
    code: str | None
    redeemed_at: datetime | None


@dataclass(frozen=True, slots=True)
class PresaleCounts:
    registrations: int
    codes_issued: int
    codes_redeemed: int


def normalize_code(code: str) -> str:
    """A code as typed (any case, dashes or spaces between groups) as it is kept."""
    return "".join(code.split()).replace("-", "").upper()


def shown_code(code: str) -> str:
    """A code as a fan reads it: XXXX-XXXX-XXXX."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def state_of(presale: Presale, record: DrawRecord | None, now: datetime) -> str:
    """Where the presale stands: registration not open yet, open, closed (to be drawn),
    drawn (codes issued; the presale sells until general_sale_at), or over."""
    if record is not None and record.drawn:
        return "drawn" if now < presale.general_sale_at else "over"
    if now < presale.registration_opens_at:
        return "scheduled"
    if now < presale.registration_closes_at:
        return "registration_open"
    return "registration_closed"


class PresaleRecord:
    def __init__(self, pool: asyncpg.Pool, ticket_secret: str) -> None:
        self.pool = pool
        self.secret = ticket_secret
        self.draws = FairnessRecord(pool, PRESALE_DRAW)

    def member(self, event_id: int, user_id: str) -> str:
        """The fan's member ref: the pre-queue's (the same key, the same message)."""
        return member_ref(member_key(self.secret, event_id), event_id, user_id)

    # --- reads ----------------------------------------------------------------------------

    async def get(self, event_id: int, conn: asyncpg.Connection | None = None) -> Presale | None:
        row = await (conn or self.pool).fetchrow(_GET, event_id)
        return None if row is None else Presale(**dict(row))

    async def registration(self, event_id: int, user_id: str) -> Registration | None:
        row = await self.pool.fetchrow(
            """SELECT registered_at, code, redeemed_at FROM presale_registrations
               WHERE event_id = $1 AND user_id = $2""",
            event_id,
            user_id,
        )
        return None if row is None else Registration(**dict(row))

    async def code_holder(self, event_id: int, code: str) -> str | None:
        """The fan a code of this presale was issued to, or None."""
        user: str | None = await self.pool.fetchval(
            "SELECT user_id FROM presale_registrations WHERE event_id = $1 AND code = $2",
            event_id,
            code,
        )
        return user

    async def counts(self, event_id: int) -> PresaleCounts:
        row = await self.pool.fetchrow(
            """SELECT count(*) AS registrations, count(code) AS codes_issued,
                      count(redeemed_at) AS codes_redeemed
               FROM presale_registrations WHERE event_id = $1""",
            event_id,
        )
        if row is None:  # an aggregate without GROUP BY: always a row
            raise RuntimeError(f"event {event_id}: the count returned no row")
        return PresaleCounts(row["registrations"], row["codes_issued"], row["codes_redeemed"])

    async def now(self) -> datetime:
        now: datetime = await self.pool.fetchval("SELECT clock_timestamp()")
        return now

    # --- writes ---------------------------------------------------------------------------

    async def save(
        self, event_id: int, fields: dict[str, Any], by: str
    ) -> tuple[Presale, bool, DrawRecord]:
        """Make the presale (committing to its seed at once) or change it while it is not
        drawn; (presale, made, its draw record). A drawn one is ``409 presale_drawn``."""
        for _ in range(_LOCK_TRIES):
            try:
                async with self.draws.locked(event_id) as conn:
                    record = await self.draws.get(event_id, conn)
                    if record is not None and record.drawn:
                        raise Problem(
                            409,
                            "presale_drawn",
                            "This presale is drawn and its codes issued: it stays as drawn.",
                        )
                    made = await self.get(event_id, conn) is None
                    if made:
                        seed = secrets.token_hex(32)
                        await conn.execute(
                            """INSERT INTO presales (event_id, registration_opens_at,
                                 registration_closes_at, general_sale_at, codes, seats, seed,
                                 updated_by)
                               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                            event_id,
                            *_fields(fields),
                            seed,
                            by,
                        )
                        committed_at = await conn.fetchval("SELECT clock_timestamp()")
                        await self.draws.commit(conn, event_id, commitment(seed), committed_at)
                    else:
                        await conn.execute(
                            """UPDATE presales SET registration_opens_at = $2,
                                 registration_closes_at = $3, general_sale_at = $4, codes = $5,
                                 seats = $6, updated_by = $7, updated_at = now()
                               WHERE event_id = $1""",
                            event_id,
                            *_fields(fields),
                            by,
                        )
                    presale = await self.get(event_id, conn)
                    record = await self.draws.get(event_id, conn)
                    if presale is None or record is None:
                        raise RuntimeError(f"event {event_id}: the presale just saved is gone")
                    return presale, made, record
            except DrawBusy:
                await asyncio.sleep(0.05)
        raise backend_unavailable("The presale is being drawn or changed; retry shortly.")

    async def window_refusal(self, presale: Presale) -> Problem | None:
        """Why a registration would be refused now (read only: asked before the door, so
        a refused one uses no challenge); :meth:`register` checks again as it registers."""
        now = await self.now()
        if now < presale.registration_opens_at:
            return _not_open(presale.registration_opens_at)
        if now >= presale.registration_closes_at:
            return _closed(presale.registration_closes_at)
        return None

    async def register(self, event_id: int, user_id: str) -> tuple[Registration, bool]:
        """The fan's registration, made now if the window is open; (it, made). Registering
        again answers the same registration, whenever."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_SHARED_LOCK, event_id)
            row = await conn.fetchrow(
                """SELECT p.registration_opens_at, p.registration_closes_at,
                          clock_timestamp() AS now,
                          EXISTS (SELECT 1 FROM presale_draws d
                                  WHERE d.event_id = p.event_id AND d.seed IS NOT NULL) AS drawn
                   FROM presales p WHERE p.event_id = $1""",
                event_id,
            )
            if row is None:
                raise no_presale()
            made = False
            if not await _registered(conn, event_id, user_id):
                if row["now"] < row["registration_opens_at"]:
                    raise _not_open(row["registration_opens_at"])
                if row["now"] >= row["registration_closes_at"] or row["drawn"]:
                    raise _closed(row["registration_closes_at"])
                made = (
                    await conn.fetchval(
                        """INSERT INTO presale_registrations
                             (event_id, user_id, member_ref, registered_at)
                           VALUES ($1, $2, $3, clock_timestamp())
                           ON CONFLICT (event_id, user_id) DO NOTHING RETURNING true""",
                        event_id,
                        user_id,
                        self.member(event_id, user_id),
                    )
                    is not None
                )
            registration = await _registered(conn, event_id, user_id)
            if registration is None:
                raise RuntimeError(f"event {event_id}: the registration just made is gone")
            return registration, made

    async def draw(self, event_id: int) -> DrawRecord:
        """Draw the registrants once the window closed, and issue the first ``codes`` of
        the order a code each; the draw on record if it was drawn already."""
        for _ in range(_LOCK_TRIES):
            try:
                async with self.draws.locked(event_id) as conn:
                    return await self._draw(conn, event_id)
            except DrawBusy:
                await asyncio.sleep(0.05)
        raise backend_unavailable("The presale is being drawn or changed; retry shortly.")

    async def _draw(self, conn: asyncpg.Connection, event_id: int) -> DrawRecord:
        presale = await self.get(event_id, conn)
        record = await self.draws.get(event_id, conn)
        if presale is None or record is None:
            raise no_presale()
        if record.drawn:
            return record
        now: datetime = await conn.fetchval("SELECT clock_timestamp()")
        if now < presale.registration_closes_at:
            raise Problem(
                409,
                "registration_open",
                "Registration is still open: the presale is drawn once it closes.",
                registration_closes_at=rfc3339(presale.registration_closes_at),
            )
        refs = [
            row["member_ref"]
            for row in await conn.fetch(
                "SELECT member_ref FROM presale_registrations WHERE event_id = $1", event_id
            )
        ]
        order = draw_order(presale.seed, refs)
        fair = {
            "commitment": record.commitment,
            "committed_at": record.committed_at,
            "seed": presale.seed,
            "revealed_at": now,
        }
        saved = await self.draws.save_draw(conn, event_id, fair, order)
        winners = order[: presale.codes]
        codes: set[str] = set()
        while len(codes) < len(winners):
            codes.add(_new_code())
        await conn.execute(
            """UPDATE presale_registrations r SET code = w.code, code_issued_at = $4
               FROM unnest($2::text[], $3::text[]) AS w(ref, code)
               WHERE r.event_id = $1 AND r.member_ref = w.ref""",
            event_id,
            winners,
            list(codes),
            now,
        )
        return saved

    async def redeem(self, event_id: int, user_id: str) -> bool:
        """The fan's code used by their first presale join; True the first time."""
        done = await self.pool.fetchval(
            """UPDATE presale_registrations SET redeemed_at = clock_timestamp()
               WHERE event_id = $1 AND user_id = $2 AND code IS NOT NULL
                 AND redeemed_at IS NULL
               RETURNING true""",
            event_id,
            user_id,
        )
        return done is not None


def _not_open(opens_at: datetime) -> Problem:
    return Problem(
        409,
        "registration_not_open",
        "Registration for this presale has not opened yet.",
        registration_opens_at=rfc3339(opens_at),
    )


def _closed(closes_at: datetime) -> Problem:
    return Problem(
        409,
        "registration_closed",
        "Registration for this presale has closed.",
        registration_closes_at=rfc3339(closes_at),
    )


def no_presale() -> Problem:
    return Problem(404, "presale_not_found", "This event has no registered presale.")


def _fields(fields: dict[str, Any]) -> list[Any]:
    return [
        fields[name]
        for name in (
            "registration_opens_at",
            "registration_closes_at",
            "general_sale_at",
            "codes",
            "seats",
        )
    ]


async def _registered(conn: Any, event_id: int, user_id: str) -> Registration | None:
    row = await conn.fetchrow(
        """SELECT registered_at, code, redeemed_at FROM presale_registrations
           WHERE event_id = $1 AND user_id = $2""",
        event_id,
        user_id,
    )
    return None if row is None else Registration(**dict(row))
