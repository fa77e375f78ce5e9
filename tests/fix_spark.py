"""One local SparkSession for the whole test session, bound to 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from txpatterns.detect.spark import session

    spark = session("local[2]")
    yield spark
    spark.stop()
