-- depends: 0002_booking
-- Best-available reads "the first free seats of this event in seat order". On the unique
-- (event_id, section, row, number) index that walks past every seat already taken, so it
-- slows as the sale goes on; this partial index holds only free seats.
CREATE INDEX tickets_free_seats ON tickets (event_id, section, "row", number)
    WHERE status = 'available';
