DROP INDEX IF EXISTS payments_refund_due;
