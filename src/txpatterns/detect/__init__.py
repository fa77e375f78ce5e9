"""Mechanism Y: the streaming detector (Spark source, batch processing, output writer)."""
