"""Prometheus metrics of the booking worker, served on booking_worker_metrics_port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SERVICE = "booking_worker"

OUTCOMES = Counter(
    "booking_command_outcomes_total",
    "Booking commands answered, by command type and outcome (reply code or 'ok').",
    ["command", "outcome"],
)
LATENCY = Histogram(
    "booking_command_latency_seconds",
    "From the front door sending a command to the worker publishing its reply.",
    ["command"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SIZE = Histogram(
    "booking_batch_size", "Commands applied in one transaction.", buckets=(1, 2, 4, 8, 16, 32, 64)
)
HOLDS_EXPIRED = Counter("booking_holds_expired_total", "Holds released because they expired.")
REPLAYED = Counter(
    "booking_commands_replayed_total", "Commands answered from a stored reply (idempotency)."
)
DEAD_LETTERED = Counter(
    "booking_commands_dead_lettered_total", "Commands parked in the dead-letter queue.", ["kind"]
)
QUEUE_DEPTH = Gauge(
    "booking_queue_depth", "Messages waiting in the command queues (sampled).", ["queue"]
)
QUEUE_WAIT = Histogram(
    "booking_command_queue_wait_seconds",
    "Consumer lag: from the front door sending a command to a worker taking it.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PAYMENTS = Counter(
    "booking_payments_total",
    "Card charges asked of Stripe, by result: succeeded, declined or error (no answer).",
    ["result"],
)
REFUNDS = Counter(
    "booking_refunds_total",
    "Payments refunded, by why (seats_taken: a late payment; duplicate_charge).",
    ["reason"],
)
CONFIRMS = Counter(
    "booking_confirm_outcomes_total",
    "CONFIRM commands answered, by outcome: confirmed, or the problem code.",
    ["outcome"],
)
STRIPE_EVENTS = Counter(
    "booking_stripe_events_total",
    "Stripe webhook events, by type and result: applied or duplicate (a replay).",
    ["type", "result"],
)
PRUNED = Counter(
    "booking_processed_commands_pruned_total",
    "Stored command replies deleted once older than TICKETING_IDEMPOTENCY_RETENTION_HOURS.",
)
STAGES = Gauge(
    "booking_worker_stage",
    "1 for each stage this process runs: commands (partition queues), payments.",
    ["stage"],
)
