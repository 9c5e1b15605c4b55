"""The write front door: dev tokens today; the queue, admission and booking routes next."""
