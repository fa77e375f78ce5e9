"""A failed stream is reported by the error that caused it, not by Spark's wrapper text."""

from __future__ import annotations

from txpatterns.detect.runner import _first_line

WRAPPED = """[STREAM_FAILED] Query [id = 1, runId = 2] terminated with exception: An exception was \
raised by the Python Proxy. Return Message: Traceback (most recent call last):
  File "/x/runner.py", line 9, in process_batch
botocore.exceptions.EndpointConnectionError: Could not connect to the endpoint URL
  During handling of the above exception, another exception occurred:
txpatterns.errors.StoreError: cannot write s3://b/out/x.csv after 6 tries: Could not connect
\tat org.apache.spark.sql.execution.streaming.MicroBatchExecution.run(Unknown Source)
"""


def test_our_error_inside_a_spark_traceback_is_the_message() -> None:
    assert _first_line(Exception(WRAPPED)) == (
        "cannot write s3://b/out/x.csv after 6 tries: Could not connect"
    )


def test_otherwise_the_last_cause_or_the_first_line() -> None:
    foreign = WRAPPED.replace("txpatterns.errors.StoreError", "ValueErrorish")
    assert _first_line(Exception(foreign)).startswith(
        "botocore.exceptions.EndpointConnectionError: Could not connect"
    )
    assert _first_line(Exception("plain words\n\tat somewhere")) == "plain words"
