DROP INDEX IF EXISTS tickets_free_seats;
