"""The state store of one namespace: running statistics, ledger, detections, output files.

Everything the patterns need lives here, and every chunk is applied, evaluated and recorded
in one transaction, so that a crash leaves either all of a chunk or none of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

import psycopg

from txpatterns.patterns import CHILD, DEI_NEEDED, UPGRADE, Thresholds
from txpatterns.schema import Importance
from txpatterns.state.db import StateError, connect, migrate, use_namespace

Row = tuple[Any, ...]

STAGE_COLUMNS: Final = ("chunk", "merchant", "customer", "n", "amount", "has_f", "has_m")

_CREATE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS stage_in (
    chunk integer NOT NULL, merchant text NOT NULL, customer text NOT NULL,
    n bigint NOT NULL, amount numeric NOT NULL, has_f boolean NOT NULL, has_m boolean NOT NULL
);
CREATE TEMP TABLE IF NOT EXISTS stage (
    chunk integer NOT NULL, merchant text NOT NULL, customer text NOT NULL,
    n bigint NOT NULL, amount numeric NOT NULL, has_f boolean NOT NULL, has_m boolean NOT NULL,
    w numeric
);
CREATE INDEX IF NOT EXISTS stage_by_chunk_merchant ON stage (chunk, merchant);
CREATE TEMP TABLE IF NOT EXISTS stage_importance (
    merchant text NOT NULL, customer text NOT NULL, weight numeric NOT NULL
);
"""

# Each staged delta carries its pair's weight, looked up once per batch: the weight of a pair
# never changes, and only a new pair takes it.
_STAGE = """
INSERT INTO stage (chunk, merchant, customer, n, amount, has_f, has_m, w)
SELECT s.chunk, s.merchant, s.customer, s.n, s.amount, s.has_f, s.has_m, i.w
FROM stage_in s LEFT JOIN importance i ON i.merchant = s.merchant AND i.customer = s.customer
"""

# One statement applies a chunk's deltas and evaluates CHILD and DEI-NEEDED on the rows it
# changed. `pairs.change` records, in the row it updates, what this update changed (4: a new
# pair; 1: it became female; 2: male), so that the merchant counters need no second look at
# the pairs as they were. The pairs are reached through their primary key, one delta at a
# time, so a chunk costs the same however many pairs the state holds.
_APPLY = f"""
WITH up AS (
    INSERT INTO pairs AS t (merchant, customer, n, amount, has_f, has_m, w, change)
    SELECT merchant, customer, n, amount, has_f, has_m, w, 4 + has_f::int + 2 * has_m::int
    FROM stage WHERE chunk = %(chunk)s
    ON CONFLICT (merchant, customer) DO UPDATE SET
        n = t.n + excluded.n,
        amount = t.amount + excluded.amount,
        has_f = t.has_f OR excluded.has_f,
        has_m = t.has_m OR excluded.has_m,
        change = (excluded.has_f AND NOT t.has_f)::int + 2 * (excluded.has_m AND NOT t.has_m)::int
    RETURNING merchant, customer, n, amount, change, w IS NOT NULL AS weighted
), merchant_delta AS (
    INSERT INTO merchants AS t (merchant, n, customers, weighted, female, male)
    SELECT c.merchant, s.n, c.customers, c.weighted, c.female, c.male
    FROM (SELECT merchant,
                 count(*) FILTER (WHERE change >= 4) AS customers,
                 count(*) FILTER (WHERE change >= 4 AND weighted) AS weighted,
                 count(*) FILTER (WHERE change & 1 = 1) AS female,
                 count(*) FILTER (WHERE change & 2 = 2) AS male
          FROM up GROUP BY merchant) c
    JOIN (SELECT merchant, sum(n) AS n FROM stage WHERE chunk = %(chunk)s GROUP BY merchant) s
      USING (merchant)
    ON CONFLICT (merchant) DO UPDATE SET
        n = t.n + excluded.n,
        customers = t.customers + excluded.customers,
        weighted = t.weighted + excluded.weighted,
        female = t.female + excluded.female,
        male = t.male + excluded.male
    RETURNING merchant, female, male
), child AS (
    INSERT INTO detections (pattern_id, customer, merchant, chunk_index, y_start, figures)
    SELECT '{CHILD}', customer, merchant, %(chunk)s, %(y_start)s,
           jsonb_build_object('n', n, 'S', trim_scale(amount)::text,
                              'average', trim_scale(round(amount / n, 6))::text)
    FROM up
    WHERE n > %(child_min)s AND amount < %(child_max)s::numeric * n
    ORDER BY merchant, customer
    ON CONFLICT (pattern_id, customer, merchant) DO NOTHING
    RETURNING 1
), dei AS (
    INSERT INTO detections (pattern_id, customer, merchant, chunk_index, y_start, figures)
    SELECT '{DEI_NEEDED}', '', merchant, %(chunk)s, %(y_start)s,
           jsonb_build_object('F', female, 'M', male)
    FROM merchant_delta
    WHERE female > %(dei_min)s AND female < male
    ORDER BY merchant
    ON CONFLICT (pattern_id, customer, merchant) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM child) + (SELECT count(*) FROM dei)
"""

# k = max(1, ceil(p/q * size / 100)) in integers: ceil(a / b) = div(a + b - 1, b) for a >= 0.
_UPGRADE = f"""
WITH touched AS MATERIALIZED (
    SELECT m.merchant, m.n AS merchant_n, m.customers, m.weighted,
           greatest(1, div(%(top_num)s::numeric * m.customers + 100 * %(top_den)s::numeric - 1,
                           100 * %(top_den)s::numeric))::bigint AS k,
           greatest(1, div(%(bottom_num)s::numeric * m.weighted + 100 * %(bottom_den)s::numeric - 1,
                           100 * %(bottom_den)s::numeric))::bigint AS j
    FROM merchants m
    -- One index probe per merchant: the staging table has no statistics, and a semi-join
    -- planned without them can scan the chunk's deltas once per eligible merchant.
    WHERE EXISTS (SELECT FROM stage s WHERE s.chunk = %(chunk)s AND s.merchant = m.merchant)
      AND m.n > %(upgrade_min)s AND m.weighted > 0
), cut AS MATERIALIZED (
    SELECT t.*,
           (SELECT p.n FROM pairs p WHERE p.merchant = t.merchant
            ORDER BY p.n DESC OFFSET t.k - 1 LIMIT 1) AS n_cut,
           (SELECT p.w FROM pairs p WHERE p.merchant = t.merchant AND p.w IS NOT NULL
            ORDER BY p.w OFFSET t.j - 1 LIMIT 1) AS w_cut
    FROM touched t
)
INSERT INTO detections (pattern_id, customer, merchant, chunk_index, y_start, figures)
SELECT '{UPGRADE}', p.customer, p.merchant, %(chunk)s, %(y_start)s,
       jsonb_build_object(
           'N', c.merchant_n, 'n', p.n, 'k', c.k, 'customers', c.customers, 'n_cut', c.n_cut,
           'w', trim_scale(p.w)::text, 'j', c.j, 'weighted', c.weighted,
           'w_cut', trim_scale(c.w_cut)::text)
FROM cut c
CROSS JOIN LATERAL (
    SELECT * FROM pairs p
    WHERE p.merchant = c.merchant AND p.w <= c.w_cut AND p.n >= c.n_cut
    OFFSET 0  -- keeps this a per-merchant index scan, not a scan of every pair
) p
ORDER BY p.merchant, p.customer
ON CONFLICT (pattern_id, customer, merchant) DO NOTHING
"""


@dataclass(frozen=True, order=True)
class ChunkTotals:
    """What one chunk held: its path and its valid and invalid row counts."""

    index: int
    path: str
    valid: int
    invalid: int


@dataclass(frozen=True)
class OutputFile:
    """A detection output file recorded in the state (complete once it has a completion time)."""

    seq: int
    name: str
    created_at: datetime
    completed_at: datetime | None
    detections: int


def thresholds_record(thresholds: Thresholds) -> str:
    """The thresholds as the JSON text recorded in a namespace."""
    return json.dumps({k: str(v) for k, v in vars(thresholds).items()}, sort_keys=True)


def _parameters(thresholds: Thresholds) -> dict[str, object]:
    top, bottom = Fraction(thresholds.upgrade_top_pct), Fraction(thresholds.upgrade_bottom_pct)
    return {
        "upgrade_min": thresholds.upgrade_min_merchant_txns,
        "top_num": top.numerator,
        "top_den": top.denominator,
        "bottom_num": bottom.numerator,
        "bottom_den": bottom.denominator,
        "child_min": thresholds.child_min_txns,
        "child_max": thresholds.child_max_avg_amount,
        "dei_min": thresholds.dei_min_female_customers,
    }


class StateStore:
    """One namespace's state, on one connection owned by one detector."""

    def __init__(self, dsn: str, namespace: str) -> None:
        self.dsn = dsn
        self.namespace = namespace
        self.conn = connect(dsn)
        self._lock_conn: psycopg.Connection[Any] | None = None
        migrate(self.conn, namespace)
        use_namespace(self.conn, namespace)
        with self.conn.transaction():
            self.conn.execute(_CREATE_STAGE)

    def close(self) -> None:
        self.conn.close()
        if self._lock_conn is not None:
            self._lock_conn.close()

    # One writer per namespace -------------------------------------------------------------

    def acquire_writer_lock(self) -> bool:
        """Take the namespace's advisory lock for this process; False if another holds it."""
        self._lock_conn = connect(self.dsn, autocommit=True)
        row = self._lock_conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
            (f"txpatterns/{self.namespace}",),
        ).fetchone()
        return bool(row and row[0])

    # Run configuration ---------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        self.conn.commit()
        return None if row is None else str(row[0])

    def check_thresholds(self, thresholds: Thresholds) -> None:
        """Record the thresholds on first use; refuse different ones later."""
        record = thresholds_record(thresholds)
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('thresholds', %s) ON CONFLICT DO NOTHING",
                (record,),
            )
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'thresholds'").fetchone()
        if row is None or row[0] != record:
            raise StateError(
                f"namespace {self.namespace!r} was started with other thresholds "
                f"({row[0] if row else '?'}); detections depend on them, so use the same "
                "settings or a new --namespace"
            )

    def load_importance(self, rows: Iterable[Importance], source_digest: str) -> int:
        """Load w(c,m) once; refuse an importance file that differs from the one recorded.

        Returns the number of pairs loaded now (0 when the same file was loaded before).
        """
        recorded = self.meta("importance_digest")
        if recorded == source_digest:
            return 0
        if recorded is not None:
            raise StateError(
                f"namespace {self.namespace!r} was started with another importance file; "
                "use that file or a new --namespace"
            )
        with self.conn.transaction():
            self.conn.execute("TRUNCATE stage_importance")
            with self.conn.cursor().copy(
                "COPY stage_importance (merchant, customer, weight) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row((row.target, row.source, row.weight))
            # Rounded to 60 places: distinct means of weights with at most 18 decimals and
            # fewer than 10^12 rows each differ by more than 10^-42, so order and equality hold.
            cursor = self.conn.execute(
                """
                INSERT INTO importance (merchant, customer, w_sum, w_count, w)
                SELECT merchant, customer, sum(weight), count(*),
                       round(sum(weight)::numeric(1000, 60) / count(*), 60)
                FROM stage_importance GROUP BY merchant, customer
                """
            )
            loaded = cursor.rowcount
            self.conn.execute("TRUNCATE stage_importance")
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('importance_digest', %s)", (source_digest,)
            )
        return loaded

    # The ledger ---------------------------------------------------------------------------

    def applied_chunks(self) -> set[int]:
        rows = self.conn.execute("SELECT chunk_index FROM chunks").fetchall()
        self.conn.commit()
        return {int(r[0]) for r in rows}

    def next_chunk(self) -> int:
        """The first chunk index not in the ledger."""
        applied = self.applied_chunks()
        index = 0
        while index in applied:
            index += 1
        return index

    # Applying chunks ----------------------------------------------------------------------

    def stage(self, csv_text: Iterator[bytes]) -> None:
        """Replace the staged deltas with CSV rows of STAGE_COLUMNS (no header)."""
        with self.conn.transaction():
            self.conn.execute("TRUNCATE stage_in, stage")
            columns = ", ".join(STAGE_COLUMNS)
            with self.conn.cursor().copy(
                f"COPY stage_in ({columns}) FROM STDIN (FORMAT csv)"
            ) as copy:
                for block in csv_text:
                    copy.write(block)
            self.conn.execute(_STAGE)

    def apply_chunk(
        self,
        totals: ChunkTotals,
        thresholds: Thresholds,
        *,
        batch_id: int,
        y_start: datetime,
        spark_seconds: Decimal,
        published_at: datetime | None = None,
    ) -> int | None:
        """Apply a staged chunk, evaluate what it touched and record it, in one transaction.

        Returns the number of new detections, or None if the ledger already had the chunk.
        """
        parameters = {**_parameters(thresholds), "chunk": totals.index, "y_start": y_start}
        with self.conn.transaction():
            inserted = self.conn.execute(
                """
                INSERT INTO chunks (chunk_index, path, valid_rows, invalid_rows, published_at,
                                    batch_id, seconds)
                VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (chunk_index) DO NOTHING
                """,
                (
                    totals.index,
                    totals.path,
                    totals.valid,
                    totals.invalid,
                    published_at,
                    batch_id,
                    spark_seconds,
                ),
            ).rowcount
            if inserted == 0:
                return None
            row = self.conn.execute(_APPLY, parameters).fetchone()
            assert row is not None
            new = int(row[0]) + self.conn.execute(_UPGRADE, parameters).rowcount
            # The chunk's cost: its share of the batch's Spark time plus this transaction.
            self.conn.execute(
                "UPDATE chunks SET seconds = seconds + "
                "extract(epoch FROM clock_timestamp() - applied_at) WHERE chunk_index = %s",
                (totals.index,),
            )
        return new

    # Detections and output files -------------------------------------------------------------

    def detection_counts(self) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT pattern_id, count(*) FROM detections GROUP BY pattern_id"
        ).fetchall()
        self.conn.commit()
        return {str(r[0]): int(r[1]) for r in rows}

    def pending(self) -> tuple[int, datetime | None]:
        """How many detections wait for a file, and when the oldest of them was made."""
        row = self.conn.execute(
            "SELECT count(*), min(detected_at) FROM detections WHERE file_seq IS NULL"
        ).fetchone()
        self.conn.commit()
        assert row is not None
        return int(row[0]), row[1]

    def assign_file(self, limit: int, name_for: Any) -> OutputFile | None:
        """Record a new output file holding the oldest `limit` pending detections."""
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT coalesce(max(seq) + 1, 0), clock_timestamp() FROM output_files"
            ).fetchone()
            assert row is not None
            seq, now = int(row[0]), row[1]
            name = name_for(seq, now)
            self.conn.execute(
                "INSERT INTO output_files (seq, name, created_at, detections) "
                "VALUES (%s, %s, %s, 0)",
                (seq, name, now),
            )
            count = self.conn.execute(
                """
                UPDATE detections SET file_seq = %s WHERE id IN (
                    SELECT id FROM detections WHERE file_seq IS NULL ORDER BY id LIMIT %s)
                """,
                (seq, limit),
            ).rowcount
            if count == 0:
                raise psycopg.Rollback()
            self.conn.execute(
                "UPDATE output_files SET detections = %s WHERE seq = %s", (count, seq)
            )
            return OutputFile(seq, name, now, None, count)
        return None

    def incomplete_files(self) -> list[OutputFile]:
        rows = self.conn.execute(
            "SELECT seq, name, created_at, completed_at, detections FROM output_files "
            "WHERE completed_at IS NULL ORDER BY seq"
        ).fetchall()
        self.conn.commit()
        return [OutputFile(*r) for r in rows]

    def file_detections(self, seq: int) -> list[Row]:
        """(y_start, detected_at, pattern_id, customer, merchant) of a file's detections."""
        rows = self.conn.execute(
            "SELECT y_start, detected_at, pattern_id, customer, merchant FROM detections "
            "WHERE file_seq = %s ORDER BY id",
            (seq,),
        ).fetchall()
        self.conn.commit()
        return rows

    def complete_file(self, seq: int) -> None:
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE output_files SET completed_at = clock_timestamp() WHERE seq = %s", (seq,)
            )


def digest_blocks(blocks: Iterable[bytes]) -> str:
    """A SHA-256 of a file read in blocks, for recognising the same importance file again."""
    h = hashlib.sha256()
    for block in blocks:
        h.update(block)
    return h.hexdigest()


def explain(
    conn: psycopg.Connection[Any], pattern_id: str, customer: str, merchant: str
) -> dict[str, Any]:
    """The figures that made a detection true when it was made, or today's figures if never."""
    row = conn.execute(
        "SELECT chunk_index, detected_at, figures FROM detections "
        "WHERE pattern_id = %s AND customer = %s AND merchant = %s",
        (pattern_id, customer, merchant),
    ).fetchone()
    if row is not None:
        return {
            "detected": True,
            "chunk_index": row[0],
            "detected_at": row[1].isoformat(),
            "figures": row[2],
        }
    current: dict[str, Any] = {}
    m = conn.execute(
        "SELECT n, customers, weighted, female, male FROM merchants WHERE merchant = %s",
        (merchant,),
    ).fetchone()
    if m is not None:
        current.update(N=m[0], customers=m[1], weighted=m[2], F=m[3], M=m[4])
    if pattern_id != DEI_NEEDED:
        p = conn.execute(
            "SELECT n, trim_scale(amount)::text, trim_scale(w)::text FROM pairs "
            "WHERE merchant = %s AND customer = %s",
            (merchant, customer),
        ).fetchone()
        if p is not None:
            current.update(n=p[0], S=p[1], w=p[2])
    return {"detected": False, "current": current}


def status(conn: psycopg.Connection[Any], namespace: str) -> dict[str, Any]:
    """The namespace's figures for `txpatterns status` (keys documented in docs/operations.md)."""
    lock_key = f"txpatterns/{namespace}"
    free = conn.execute(
        "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (lock_key,)
    ).fetchone()
    if free and free[0]:
        conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (lock_key,))
    chunks = conn.execute(
        "SELECT count(*), coalesce(sum(valid_rows), 0), coalesce(sum(invalid_rows), 0), "
        "max(chunk_index), max(applied_at) FROM chunks"
    ).fetchone()
    assert chunks is not None
    seconds = [
        float(r[0])
        for r in conn.execute(
            "SELECT seconds FROM chunks ORDER BY chunk_index DESC LIMIT 100"
        ).fetchall()
    ]
    ordered = sorted(seconds)

    def percentile(p: float) -> float | None:
        if not ordered:
            return None
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    detections = {
        str(r[0]): int(r[1])
        for r in conn.execute("SELECT pattern_id, count(*) FROM detections GROUP BY 1").fetchall()
    }
    files = conn.execute(
        "SELECT count(*) FILTER (WHERE completed_at IS NOT NULL), "
        "count(*) FILTER (WHERE completed_at IS NULL) FROM output_files"
    ).fetchone()
    pending = conn.execute("SELECT count(*) FROM detections WHERE file_seq IS NULL").fetchone()
    conn.commit()
    assert files is not None and pending is not None
    return {
        "namespace": namespace,
        "detector_running": not (free and free[0]),
        "chunks_applied": int(chunks[0]),
        "last_chunk": chunks[3],
        "last_applied_at": chunks[4].isoformat() if chunks[4] else None,
        "rows_valid": int(chunks[1]),
        "rows_invalid": int(chunks[2]),
        "detections": {p: detections.get(p, 0) for p in (UPGRADE, CHILD, DEI_NEEDED)},
        "output_files_complete": int(files[0]),
        "output_files_incomplete": int(files[1]),
        "detections_pending": int(pending[0]),
        "chunk_seconds": {
            "last": seconds[0] if seconds else None,
            "p50": percentile(0.5),
            "p95": percentile(0.95),
        },
    }
