"""booking_worker: consumes booking commands from RabbitMQ; every seat change happens here,
inside Postgres transactions."""
