"""The OpenAPI contract every test reply is held to: checker.py judges, capture.py hooks."""
