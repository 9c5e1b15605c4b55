"""A realistic demo catalog: ``python -m ticketing.demo [--events N] [--seed S] [--reset]``."""

from ticketing.demo.load import DemoCounts, load_demo

__all__ = ["DemoCounts", "load_demo"]
