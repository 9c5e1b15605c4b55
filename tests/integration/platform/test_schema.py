"""Migrations run up and down on a real database, and the schema refuses what must never
happen whatever a service does."""

from __future__ import annotations

import secrets
import uuid

import asyncpg
import pytest

from tests.servers import PG_BASE
from ticketing.db import migrate


def test_migrations_go_up_down_and_up_again():
    url = f"{PG_BASE}/tk_migr_{secrets.token_hex(4)}"
    migrate.create_database(url)
    try:
        assert migrate.upgrade(url) >= 1
        assert migrate.upgrade(url) == 0  # idempotent
        assert all(applied for _, applied in migrate.status(url))
        applied = len(migrate.status(url))
        assert migrate.downgrade(url, steps=applied) == applied
        assert not any(applied for _, applied in migrate.status(url))
        assert migrate.upgrade(url) == applied
    finally:
        migrate.drop_database(url)


@pytest.fixture
async def conn(database_url):
    connection = await asyncpg.connect(database_url)
    tx = connection.transaction()
    await tx.start()
    yield connection
    await tx.rollback()
    await connection.close()


async def _event(conn) -> int:
    venue = await conn.fetchval(
        "INSERT INTO venues (name, city, lat, lon, seat_map, capacity) "
        "VALUES ('Hall', 'Oslo', 59.9, 10.7, '{}', 10) RETURNING id"
    )
    performer = await conn.fetchval("INSERT INTO performers (name) VALUES ('Band') RETURNING id")
    return await conn.fetchval(
        "INSERT INTO events (name, starts_at, venue_id, performer_id, currency) "
        "VALUES ('Show', now() + interval '1 day', $1, $2, 'NOK') RETURNING id",
        venue,
        performer,
    )


async def _hold(conn, event_id: int) -> uuid.UUID:
    hold = uuid.uuid4()
    await conn.execute(
        "INSERT INTO holds (id, event_id, user_id, status, amount_cents, currency, expires_at) "
        "VALUES ($1, $2, 'u', 'held', 100, 'NOK', now() + interval '10 minutes')",
        hold,
        event_id,
    )
    return hold


async def _booking(conn, event_id: int, hold: uuid.UUID) -> uuid.UUID:
    booking = uuid.uuid4()
    await conn.execute(
        "INSERT INTO bookings (id, hold_id, event_id, user_id, status, amount_cents, currency) "
        "VALUES ($1, $2, $3, 'u', 'confirmed', 100, 'NOK')",
        booking,
        hold,
        event_id,
    )
    return booking


async def _ticket(conn, event_id: int, **cols) -> int:
    return await conn.fetchval(
        'INSERT INTO tickets (event_id, section, "row", number, price_cents, status, hold_id, '
        "booking_id) VALUES ($1, 'A', 'A', $2, 100, $3, $4, $5) RETURNING id",
        event_id,
        cols.get("number", 1),
        cols.get("status", "available"),
        cols.get("hold_id"),
        cols.get("booking_id"),
    )


async def test_a_booked_ticket_must_name_its_booking(conn):
    event = await _event(conn)
    hold = await _hold(conn, event)
    with pytest.raises(asyncpg.CheckViolationError):
        await _ticket(conn, event, status="booked", hold_id=hold)


async def test_the_valid_states_are_accepted(conn):
    event = await _event(conn)
    hold = await _hold(conn, event)
    booking = await _booking(conn, event, hold)
    await _ticket(conn, event, number=1)
    await _ticket(conn, event, number=2, status="reserved", hold_id=hold)
    await _ticket(conn, event, number=3, status="booked", hold_id=hold, booking_id=booking)


async def test_available_and_reserved_tickets_are_consistent(conn):
    event = await _event(conn)
    hold = await _hold(conn, event)
    with pytest.raises(asyncpg.CheckViolationError):
        await _ticket(conn, event, status="available", hold_id=hold)


async def test_reserved_needs_a_hold(conn):
    event = await _event(conn)
    with pytest.raises(asyncpg.CheckViolationError):
        await _ticket(conn, event, status="reserved")


async def test_a_ticket_cannot_point_at_another_events_booking(conn):
    event, other = await _event(conn), await _event(conn)
    hold = await _hold(conn, other)
    booking = await _booking(conn, other, hold)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await _ticket(conn, event, status="booked", booking_id=booking)


async def test_one_hold_makes_at_most_one_booking(conn):
    event = await _event(conn)
    hold = await _hold(conn, event)
    await _booking(conn, event, hold)
    with pytest.raises(asyncpg.UniqueViolationError):
        await _booking(conn, event, hold)


async def test_a_seat_exists_once_per_event(conn):
    event = await _event(conn)
    await _ticket(conn, event, number=7)
    with pytest.raises(asyncpg.UniqueViolationError):
        await _ticket(conn, event, number=7)


async def _committed_draw(conn) -> int:
    event = await _event(conn)
    await conn.execute(
        "INSERT INTO queue_draws (event_id, commitment, committed_at) VALUES ($1, $2, now())",
        event,
        "a" * 64,
    )
    return event


async def test_a_recorded_draw_is_final(conn):
    event = await _committed_draw(conn)
    await conn.execute(
        "INSERT INTO queue_draw_members (event_id, position, member_ref, member_rank)"
        " VALUES ($1, 1, $2, 1)",
        event,
        "b" * 64,
    )
    # before the reveal the commitment may still be replaced (a new epoch)
    await conn.execute("UPDATE queue_draws SET epoch = 2 WHERE event_id = $1", event)
    await conn.execute(
        "UPDATE queue_draws SET seed = $2, revealed_at = now(), total = 1, order_sha256 = $3"
        " WHERE event_id = $1",
        event,
        "c" * 64,
        "d" * 64,
    )
    for statement, args in (
        ("UPDATE queue_draws SET seed = $2 WHERE event_id = $1", ("e" * 64,)),
        ("UPDATE queue_draw_members SET position = 2 WHERE event_id = $1", ()),
        (
            "INSERT INTO queue_draw_members (event_id, position, member_ref, member_rank)"
            " VALUES ($1, 2, $2, 2)",
            ("f" * 64,),
        ),
    ):
        with pytest.raises(asyncpg.CheckViolationError):
            async with conn.transaction():  # a savepoint: the test's transaction goes on
                await conn.execute(statement, event, *args)


async def test_a_draw_reveals_its_seed_its_order_and_digest_together(conn):
    event = await _committed_draw(conn)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "UPDATE queue_draws SET seed = $2, revealed_at = now() WHERE event_id = $1",
            event,
            "c" * 64,
        )
