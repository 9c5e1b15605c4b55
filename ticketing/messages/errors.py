"""The one error of every wire schema."""

from __future__ import annotations


class MessageError(ValueError):
    """A message that does not match its schema; it goes to the dead-letter queue."""
