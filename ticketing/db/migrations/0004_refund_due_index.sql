-- depends: 0003_free_seat_index
-- Every booking worker's sweeper asks, once a second, for payments that are owed a refund
-- (succeeded after their seats were gone). Without an index that was a scan of every
-- payment ever made, per worker, per second; this one holds only the few that are due.
CREATE INDEX payments_refund_due ON payments (created_at)
    WHERE status = 'succeeded' AND failure_code IS NOT NULL;
