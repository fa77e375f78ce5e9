"""The reference engine: docs/patterns.md in plain Python, written for clarity rather than speed.

It shares nothing with the Spark and PostgreSQL engine but the data contract and the rank
cut-off formula, so that agreement between the two means something.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from fractions import Fraction

from txpatterns.errors import HeaderError
from txpatterns.patterns import (
    ACTION_TYPES,
    CHILD,
    DEI_NEEDED,
    UPGRADE,
    Thresholds,
    rank_cutoff,
)
from txpatterns.schema import (
    WRONG_HEADER,
    Importance,
    Rejected,
    Transaction,
    numbered_lines,
    read_importance,
    read_transactions,
)
from txpatterns.store import LOCAL, ChunkRef, Store

Pair = tuple[str, str]

# Sums and products of valid amounts (at most 38 digits each) need far fewer digits than this;
# the traps turn any rounding into an error instead of a silently wrong comparison.
EXACT = Context(prec=200, traps=[Inexact, Rounded, InvalidOperation])


@dataclass(frozen=True, order=True)
class Detection:
    """A detection key with the index of the chunk after which it first held."""

    pattern_id: str
    customer: str
    merchant: str
    chunk_index: int

    @property
    def action_type(self) -> str:
        return ACTION_TYPES[self.pattern_id]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.pattern_id, self.customer, self.merchant)


@dataclass(frozen=True)
class ChunkStats:
    """How many rows of one chunk were applied and how many were rejected."""

    index: int
    valid: int
    rejected: int


@dataclass
class Replay:
    """The outcome of replaying a folder of chunks."""

    detections: list[Detection] = field(default_factory=list)
    chunks: list[ChunkStats] = field(default_factory=list)
    rejected: list[tuple[int, Rejected]] = field(default_factory=list)
    importance_rejected: list[Rejected] = field(default_factory=list)


def load_weights(rows: Iterable[Importance]) -> dict[Pair, Fraction]:
    """Return w(c, m), the exact mean weight of each (customer, merchant) pair."""
    sums: dict[Pair, Decimal] = defaultdict(Decimal)
    counts: dict[Pair, int] = defaultdict(int)
    for row in rows:
        pair = (row.source, row.target)
        sums[pair] = EXACT.add(sums[pair], row.weight)
        counts[pair] += 1
    return {pair: Fraction(sums[pair]) / counts[pair] for pair in sums}


class ReferenceEngine:
    """Cumulative state over applied chunks, evaluated in full after each chunk."""

    def __init__(self, weights: dict[Pair, Fraction], thresholds: Thresholds) -> None:
        self.weights = weights
        self.thresholds = thresholds
        self.merchant_txns: dict[str, int] = defaultdict(int)
        self.pair_txns: dict[Pair, int] = defaultdict(int)
        self.pair_amount: dict[Pair, Decimal] = defaultdict(Decimal)
        self.customers: dict[str, set[str]] = defaultdict(set)
        self.female: dict[str, set[str]] = defaultdict(set)
        self.male: dict[str, set[str]] = defaultdict(set)
        self.emitted: set[tuple[str, str, str]] = set()

    def apply(self, chunk_index: int, rows: Iterable[Transaction]) -> list[Detection]:
        """Add one chunk's valid rows to the state and return the keys first holding now."""
        for row in rows:
            pair = (row.customer, row.merchant)
            self.merchant_txns[row.merchant] += 1
            self.pair_txns[pair] += 1
            self.pair_amount[pair] = EXACT.add(self.pair_amount[pair], row.amount)
            self.customers[row.merchant].add(row.customer)
            if row.gender == "F":
                self.female[row.merchant].add(row.customer)
            elif row.gender == "M":
                self.male[row.merchant].add(row.customer)
        new = []
        for key in sorted(self.holding()):
            if key not in self.emitted:
                self.emitted.add(key)
                new.append(Detection(*key, chunk_index))
        return new

    def holding(self) -> set[tuple[str, str, str]]:
        """Every key whose condition holds on the current state."""
        return self.upgrade() | self.child() | self.dei_needed()

    def upgrade(self) -> set[tuple[str, str, str]]:
        t = self.thresholds
        keys = set()
        for merchant, customers in self.customers.items():
            if self.merchant_txns[merchant] <= t.upgrade_min_merchant_txns:
                continue
            counts = sorted((self.pair_txns[(c, merchant)] for c in customers), reverse=True)
            count_cutoff = counts[rank_cutoff(t.upgrade_top_pct, len(counts)) - 1]
            weighted = {
                c: self.weights[(c, merchant)] for c in customers if (c, merchant) in self.weights
            }
            if not weighted:
                continue
            ranked = sorted(weighted.values())
            weight_cutoff = ranked[rank_cutoff(t.upgrade_bottom_pct, len(ranked)) - 1]
            for customer, weight in weighted.items():
                if self.pair_txns[(customer, merchant)] >= count_cutoff and weight <= weight_cutoff:
                    keys.add((UPGRADE, customer, merchant))
        return keys

    def child(self) -> set[tuple[str, str, str]]:
        t = self.thresholds
        return {
            (CHILD, customer, merchant)
            for (customer, merchant), n in self.pair_txns.items()
            if n > t.child_min_txns
            and self.pair_amount[(customer, merchant)] < EXACT.multiply(t.child_max_avg_amount, n)
        }

    def dei_needed(self) -> set[tuple[str, str, str]]:
        t = self.thresholds
        return {
            (DEI_NEEDED, "", merchant)
            for merchant in self.customers
            if len(self.female[merchant]) > t.dei_min_female_customers
            and len(self.female[merchant]) < len(self.male[merchant])
        }


def read_weights(
    importance: str, store: Store = LOCAL
) -> tuple[dict[Pair, Fraction], list[Rejected]]:
    """Read an importance CSV into exact mean weights, with its invalid rows kept apart."""
    rows: list[Importance] = []
    rejected: list[Rejected] = []
    with store.open_text(importance) as f:
        for row in read_importance(f, importance):
            if isinstance(row, Rejected):
                rejected.append(row)
            else:
                rows.append(row)
    return load_weights(rows), rejected


def replay_folder(
    input: str,
    importance: str,
    thresholds: Thresholds,
    progress: Callable[[ChunkStats], None] | None = None,
    store: Store = LOCAL,
) -> Replay:
    """Replay every complete chunk under `input`, in index order, and return the detections."""
    return replay(store.list_chunks(input), importance, thresholds, progress, store)


def replay(
    chunks: Iterable[ChunkRef],
    importance: str,
    thresholds: Thresholds,
    progress: Callable[[ChunkStats], None] | None = None,
    store: Store = LOCAL,
) -> Replay:
    """Replay the given chunks in index order and return the detections."""
    weights, importance_rejected = read_weights(importance, store)
    engine = ReferenceEngine(weights, thresholds)
    result = Replay(importance_rejected=importance_rejected)
    for chunk in sorted(chunks, key=lambda c: c.index):
        valid: list[Transaction] = []
        rejected = 0
        for part in chunk.parts:
            rows: list[Transaction | Rejected]
            with store.open_text(part) as f:
                text = f.read()
            try:
                rows = list(read_transactions(io.StringIO(text, newline=""), part))
            except HeaderError:
                # A chunk file with the wrong header is rejected whole: every line of it.
                lines = numbered_lines(io.StringIO(text, newline=""))
                rows = [Rejected(n, None, WRONG_HEADER, line) for n, line in lines]
            for row in rows:
                if isinstance(row, Rejected):
                    result.rejected.append((chunk.index, row))
                    rejected += 1
                else:
                    valid.append(row)
        result.detections.extend(engine.apply(chunk.index, valid))
        result.chunks.append(ChunkStats(chunk.index, len(valid), rejected))
        if progress is not None:
            progress(result.chunks[-1])
    return result
