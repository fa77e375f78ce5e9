"""Exact, verifiable detection of behavioural patterns in streams of payment transactions."""

__version__ = "0.1.0"
