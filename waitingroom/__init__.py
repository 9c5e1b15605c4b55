"""The write front door, one service in two rooms: :mod:`waitingroom.queue` (the fair
queue, admission, live positions, operators' controls, its pages) and
:mod:`waitingroom.booking` (reserve, confirm, bookings and Stripe's webhooks, sent as
commands to the booking workers). Booking reaches the queue only through
:mod:`waitingroom.queue.port`; the queue never imports booking. :mod:`waitingroom.app`
serves both in one process, or booking alone (``--role booking``)."""
