"""Requests drawn from the gateway's OpenAPI document (schemas.py: JSON Schema to hypothesis
strategies, valid and invalid; operations.py: whole requests of one operation), for the fuzz
tests against the running stack (tests/e2e/test_fuzz_*.py)."""
