ALTER TABLE tickets DROP CONSTRAINT IF EXISTS tickets_seat_unique;
ALTER TABLE tickets ADD CONSTRAINT tickets_event_id_section_row_number_key
    UNIQUE (event_id, section, "row", number);
DROP INDEX IF EXISTS tickets_free_seats;
