"""Connections, namespaces and versioned schema migrations."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any, Final

import psycopg
from psycopg import sql

from txpatterns.errors import TxpError
from txpatterns.settings import mask_dsn

NAMESPACE: Final = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class StateError(TxpError):
    """The PostgreSQL state cannot be reached or does not fit this run."""


def schema_name(namespace: str) -> str:
    """The PostgreSQL schema that holds a namespace's tables."""
    if not NAMESPACE.match(namespace):
        raise StateError(
            f"namespace {namespace!r}: use 1-40 lower-case letters, digits or '_', "
            "starting with a letter"
        )
    return f"txp_{namespace}"


def connect(dsn: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """Open a connection, turning failures into a StateError that shows no password."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=15)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StateError(f"cannot connect to PostgreSQL at {mask_dsn(dsn)}: {reason}") from None


def migrations() -> list[tuple[int, str, str]]:
    """The migration files shipped with the package: (version, name, SQL), in order."""
    found = []
    for entry in resources.files("txpatterns.state").joinpath("migrations").iterdir():
        match = re.match(r"^([0-9]{4})_.*\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: psycopg.Connection[Any], namespace: str) -> list[str]:
    """Create the namespace's schema if needed and apply the migrations it lacks."""
    schema = sql.Identifier(schema_name(namespace))
    applied_now = []
    with conn.transaction():
        # Two processes starting at once must not both apply the same migration.
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 1))", (str(schema),))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(schema)
        )
        done = {
            row[0]
            for row in conn.execute(
                sql.SQL("SELECT version FROM {}.schema_migrations").format(schema)
            )
        }
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
        for version, name, text in migrations():
            if version in done:
                continue
            conn.execute(text.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            applied_now.append(name)
    return applied_now


def use_namespace(conn: psycopg.Connection[Any], namespace: str) -> None:
    """Point the connection's unqualified table names at the namespace's schema."""
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema_name(namespace))))
    conn.commit()


def drop_namespace(dsn: str, namespace: str) -> None:
    """Delete a namespace's schema and everything in it."""
    with connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema_name(namespace))
            )
        )
