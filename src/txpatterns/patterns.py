"""The three patterns: identifiers, thresholds, presets and the exact rank cut-offs.

docs/patterns.md is the specification; this module holds the pieces every engine shares
(names, thresholds, and the integer arithmetic for k and j).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from decimal import Decimal
from fractions import Fraction
from typing import Final

UPGRADE: Final = "PatId1"
CHILD: Final = "PatId2"
DEI_NEEDED: Final = "PatId3"

ACTION_TYPES: Final[dict[str, str]] = {
    UPGRADE: "UPGRADE",
    CHILD: "CHILD",
    DEI_NEEDED: "DEI-NEEDED",
}
PATTERN_IDS: Final = tuple(ACTION_TYPES)


@dataclass(frozen=True)
class Thresholds:
    """The figures the three pattern conditions compare against."""

    upgrade_min_merchant_txns: int
    upgrade_top_pct: Decimal
    upgrade_bottom_pct: Decimal
    child_min_txns: int
    child_max_avg_amount: Decimal
    dei_min_female_customers: int

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise ValueError(f"{f.name} must not be negative, got {value}")
        for name in ("upgrade_top_pct", "upgrade_bottom_pct"):
            if getattr(self, name) > 100:
                raise ValueError(f"{name} must be at most 100, got {getattr(self, name)}")


PRESETS: Final[dict[str, Thresholds]] = {
    "banksim": Thresholds(
        upgrade_min_merchant_txns=50_000,
        upgrade_top_pct=Decimal(10),
        upgrade_bottom_pct=Decimal(10),
        child_min_txns=80,
        child_max_avg_amount=Decimal(23),
        dei_min_female_customers=100,
    ),
    "seed": Thresholds(
        upgrade_min_merchant_txns=500,
        upgrade_top_pct=Decimal(10),
        upgrade_bottom_pct=Decimal(10),
        child_min_txns=2,
        child_max_avg_amount=Decimal(800),
        dei_min_female_customers=10,
    ),
}
DEFAULT_PRESET: Final = "banksim"


def rank_cutoff(pct: Decimal, size: int) -> int:
    """Return max(1, ceil(pct * size / 100)) computed exactly, with no binary floats."""
    return max(1, math.ceil(Fraction(pct) * size / 100))
