"""The waiting room: a fair queue per event in Redis (the fair start's draw on record in
PostgreSQL), the admitter and the once-a-second controller, live positions over
websockets, the operators' controls and the two pages. What the booking front door may
ask of it is :mod:`waitingroom.queue.port`, and nothing else."""
