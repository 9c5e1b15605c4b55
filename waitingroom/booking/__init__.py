"""The booking front door: reserve, release, confirm, ticket and booking reads, and
Stripe's webhooks, each sent as a command to a booking worker over RabbitMQ and answered
with the worker's reply. It reaches the queue only through :mod:`waitingroom.queue.port`."""
