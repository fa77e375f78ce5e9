"""The reference engine against tiny datasets whose answers were worked out by hand.

Every expectation carries its arithmetic in a comment. Thresholds are custom and small unless a
test is about a preset; `th()` switches every pattern off, each test switches on what it needs.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from chunks import imp, tx, write_chunks, write_importance
from txpatterns.patterns import (
    ACTION_TYPES,
    CHILD,
    DEI_NEEDED,
    PRESETS,
    UPGRADE,
    Thresholds,
    rank_cutoff,
)
from txpatterns.reference import (
    ChunkStats,
    ReferenceEngine,
    Replay,
    load_weights,
    replay_folder,
)
from txpatterns.schema import Importance, Rejected, Transaction

NEVER = 10**9
SEED = PRESETS["seed"]

Found = tuple[str, str, str, int]


def th(
    *,
    upgrade_min: int = NEVER,
    top: str = "10",
    bottom: str = "10",
    child_min: int = NEVER,
    child_avg: str = "0",
    dei_min: int = NEVER,
) -> Thresholds:
    """Thresholds with every pattern off unless a figure is given."""
    return Thresholds(
        upgrade_min_merchant_txns=upgrade_min,
        upgrade_top_pct=Decimal(top),
        upgrade_bottom_pct=Decimal(bottom),
        child_min_txns=child_min,
        child_max_avg_amount=Decimal(child_avg),
        dei_min_female_customers=dei_min,
    )


def run(
    tmp_path: Path,
    chunks: list[list[str]] | dict[int, list[str]],
    thresholds: Thresholds,
    importance: list[str] | None = None,
    complete: bool | list[bool] = True,
) -> Replay:
    root = write_chunks(tmp_path / "input", chunks, complete=complete)
    weights = write_importance(tmp_path / "importance.csv", importance or [])
    return replay_folder(str(root), str(weights), thresholds)


def found(replay: Replay, pattern: str | None = None) -> list[Found]:
    """The detections as sorted (pattern, customer, merchant, chunk) tuples; duplicates kept."""
    return sorted(
        (d.pattern_id, d.customer, d.merchant, d.chunk_index)
        for d in replay.detections
        if pattern is None or d.pattern_id == pattern
    )


def many(customer: str, merchant: str, count: int, **kw: str) -> list[str]:
    return [tx(customer, merchant, **kw) for _ in range(count)]


def names(count: int) -> list[str]:
    return [f"C{i:02d}" for i in range(1, count + 1)]


# --- names and presets ---------------------------------------------------------------------


def test_pattern_ids_action_types_and_presets() -> None:
    assert (UPGRADE, CHILD, DEI_NEEDED) == ("PatId1", "PatId2", "PatId3")
    assert ACTION_TYPES == {UPGRADE: "UPGRADE", CHILD: "CHILD", DEI_NEEDED: "DEI-NEEDED"}
    assert PRESETS["seed"] == Thresholds(500, Decimal(10), Decimal(10), 2, Decimal(800), 10)
    assert PRESETS["banksim"] == Thresholds(50000, Decimal(10), Decimal(10), 80, Decimal(23), 100)


# --- rank_cutoff ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pct", "size", "expected"),
    [
        ("10", 11, 2),  # 10*11/100 = 1.1 -> 2
        ("10", 10, 1),  # 10*10/100 = 1 exactly -> 1
        ("10", 9, 1),  # 0.9 -> 1
        ("10", 1, 1),  # 0.1 -> 1
        ("10", 0, 1),  # 0 -> max(1, 0) = 1
        ("0", 50, 1),  # 0 -> 1
        ("100", 7, 7),  # 7
        ("100", 1, 1),
        ("70", 10, 7),  # 7 exactly
        ("0.7", 1000, 7),  # 0.7*1000/100 = 7 exactly
        ("0.07", 10000, 7),  # 7 exactly; in floats 0.07*10000/100 = 7.000000000000001
        ("28", 25, 7),  # 7 exactly; in floats 0.28*25 = 7.000000000000001
        ("12.5", 8, 1),  # 1 exactly
        ("12.5", 9, 2),  # 1.125 -> 2
        ("10.01", 10, 2),  # 1.001 -> 2
        ("50", 3, 2),  # 1.5 -> 2
        ("99.99", 10000, 9999),  # 9999 exactly
        ("33.333333333333333333", 3, 1),  # 0.99999999999999999999 -> 1
        ("33.333333333333333334", 3, 2),  # 1.00000000000000000002 -> 2
    ],
)
def test_rank_cutoff(pct: str, size: int, expected: int) -> None:
    assert rank_cutoff(Decimal(pct), size) == expected


# --- UPGRADE -------------------------------------------------------------------------------


def test_upgrade_ties_at_count_cutoff_are_all_included(tmp_path: Path) -> None:
    # M1: A 3 txns, B 3, C 1; |customers| = 3 -> k = max(1, ceil(10*3/100 = 0.3)) = 1.
    # 1st largest of {3, 3, 1} = 3 -> A and B (tie) pass, C (1 < 3) does not.
    # bottom 100: j = ceil(100*3/100) = 3 -> 3rd smallest weight of {1, 1, 1} = 1 -> all pass.
    chunk = [*many("A", "M1", 3), *many("B", "M1", 3), tx("C", "M1")]
    weights = [imp("A", "M1", "1"), imp("B", "M1", "1"), imp("C", "M1", "1")]
    replay = run(tmp_path, [chunk], th(upgrade_min=0, bottom="100"), weights)
    assert found(replay) == [(UPGRADE, "A", "M1", 0), (UPGRADE, "B", "M1", 0)]


def test_upgrade_ties_at_weight_cutoff_are_all_included(tmp_path: Path) -> None:
    # M1: A, B, C, D one txn each; top 100 -> k = 4 -> 4th largest of {1,1,1,1} = 1 -> all pass.
    # weights A 1, B 1, C 2, D 5; j = max(1, ceil(10*4/100 = 0.4)) = 1 -> smallest = 1 -> A, B.
    chunk = [tx("A", "M1"), tx("B", "M1"), tx("C", "M1"), tx("D", "M1")]
    weights = [imp("A", "M1", "1"), imp("B", "M1", "1"), imp("C", "M1", "2"), imp("D", "M1", "5")]
    replay = run(tmp_path, [chunk], th(upgrade_min=0, top="100"), weights)
    assert found(replay) == [(UPGRADE, "A", "M1", 0), (UPGRADE, "B", "M1", 0)]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (11, ["C01", "C02"]),  # k = ceil(10*11/100 = 1.1) = 2 -> 2nd largest of {3,2,1,...} = 2
        (10, ["C01"]),  # k = ceil(10*10/100 = 1) = 1 -> largest = 3
    ],
)
def test_upgrade_k_rounds_up(tmp_path: Path, size: int, expected: list[str]) -> None:
    # C01 3 txns, C02 2 txns, the others 1; all weights 1, bottom 100 -> weight always passes.
    customers = names(size)
    chunk = [*many("C01", "M1", 3), *many("C02", "M1", 2)]
    chunk += [tx(c, "M1") for c in customers[2:]]
    weights = [imp(c, "M1", "1") for c in customers]
    replay = run(tmp_path, [chunk], th(upgrade_min=0, bottom="100"), weights)
    assert found(replay) == [(UPGRADE, c, "M1", 0) for c in expected]


@pytest.mark.parametrize(
    ("top", "size"),
    [
        ("70", 10),  # k = 70*10/100 = 7 exactly
        ("28", 25),  # k = 28*25/100 = 7 exactly (0.28*25 in floats is 7.000000000000001 -> 8)
    ],
)
def test_upgrade_k_is_computed_exactly(tmp_path: Path, top: str, size: int) -> None:
    # C01..C07 2 txns, the rest 1 txn: 7th largest = 2 -> C01..C07; k = 8 would give 1 -> all.
    customers = names(size)
    chunk = [row for c in customers[:7] for row in many(c, "M1", 2)]
    chunk += [tx(c, "M1") for c in customers[7:]]
    weights = [imp(c, "M1", "1") for c in customers]
    replay = run(tmp_path, [chunk], th(upgrade_min=0, top=top, bottom="100"), weights)
    assert found(replay) == [(UPGRADE, c, "M1", 0) for c in customers[:7]]


def test_upgrade_j_rounds_up(tmp_path: Path) -> None:
    # 11 customers, 1 txn each, top 100 -> all pass the count test.
    # weights C01=1, C02=2, ..., C11=11; j = ceil(10*11/100 = 1.1) = 2 -> 2nd smallest = 2.
    customers = names(11)
    chunk = [tx(c, "M1") for c in customers]
    weights = [imp(c, "M1", str(i)) for i, c in enumerate(customers, start=1)]
    replay = run(tmp_path, [chunk], th(upgrade_min=0, top="100"), weights)
    assert found(replay) == [(UPGRADE, "C01", "M1", 0), (UPGRADE, "C02", "M1", 0)]


def test_upgrade_j_counts_only_customers_with_a_weight(tmp_path: Path) -> None:
    # 11 customers at M1, but C11 has no importance row: the weighted set has 10 members,
    # j = ceil(10*10/100 = 1) = 1 -> smallest = 1 -> C01 only (j over 11 would be 2 -> C01, C02).
    # C11 is never detected: no weight.
    customers = names(11)
    chunk = [tx(c, "M1") for c in customers]
    weights = [imp(c, "M1", str(i)) for i, c in enumerate(customers[:10], start=1)]
    replay = run(tmp_path, [chunk], th(upgrade_min=0, top="100"), weights)
    assert found(replay) == [(UPGRADE, "C01", "M1", 0)]


def test_upgrade_ignores_weights_of_customers_not_at_the_merchant(tmp_path: Path) -> None:
    # M1: A (weight 5) and B (no importance row), 1 txn each; top 100 -> both pass the count.
    # Z has weight 1 at M1 but no transaction there, so the weighted set of M1 is {A: 5}:
    # j = 1 -> cut-off 5 -> A. (Counting Z would make the cut-off 1 and drop A.)
    # B has no weight -> never. M2: Z's transaction, but no weight at M2 -> nothing.
    chunk = [tx("A", "M1"), tx("B", "M1"), tx("Z", "M2")]
    weights = [imp("A", "M1", "5"), imp("Z", "M1", "1"), imp("B", "M2", "0")]
    replay = run(tmp_path, [chunk], th(upgrade_min=0, top="100", bottom="100"), weights)
    assert found(replay) == [(UPGRADE, "A", "M1", 0)]


def test_upgrade_needs_at_least_one_weight(tmp_path: Path) -> None:
    # No importance row for M1 at all: w is undefined for everyone -> no UPGRADE.
    chunk = [*many("A", "M1", 5), tx("B", "M1")]
    replay = run(tmp_path, [chunk], th(upgrade_min=0, top="100", bottom="100"), [])
    assert found(replay) == []


def test_upgrade_uses_the_mean_of_several_importance_rows(tmp_path: Path) -> None:
    # M1: A, B, C one txn each; top 100. w(A) = (1 + 5) / 2 = 3, w(B) = 4, w(C) = 3.
    # j = max(1, ceil(10*3/100)) = 1 -> smallest of {3, 4, 3} = 3 -> A and C.
    # (first weight 1 -> A only; last 5 or sum 6 -> C only)
    chunk = [tx("A", "M1"), tx("B", "M1"), tx("C", "M1")]
    weights = [imp("A", "M1", "1"), imp("B", "M1", "4"), imp("C", "M1", "3"), imp("A", "M1", "5")]
    replay = run(tmp_path, [chunk], th(upgrade_min=0, top="100"), weights)
    assert found(replay) == [(UPGRADE, "A", "M1", 0), (UPGRADE, "C", "M1", 0)]


def test_upgrade_mean_is_an_exact_rational(tmp_path: Path) -> None:
    # M1: w(A) = (1 + 2)/2 = 3/2, w(B) = 1.5, w(C) = 1.6; j = 1 -> 3/2 -> A and B (exact tie).
    # M2: w(A) = (0 + 0 + 1)/3 = 1/3 = 0.333...(repeating), w(B) = 0.333333333333333334 > 1/3
    #     -> j = 1 -> 1/3 -> A only (a float or 18-digit mean would tie with B).
    chunk = [tx(c, m) for m in ("M1", "M2") for c in ("A", "B", "C")]
    weights = [
        imp("A", "M1", "1"),
        imp("A", "M1", "2"),
        imp("B", "M1", "1.5"),
        imp("C", "M1", "1.6"),
        imp("A", "M2", "0"),
        imp("A", "M2", "0"),
        imp("A", "M2", "1"),
        imp("B", "M2", "0.333333333333333334"),
    ]
    replay = run(tmp_path, [chunk], th(upgrade_min=0, top="100"), weights)
    assert found(replay) == [
        (UPGRADE, "A", "M1", 0),
        (UPGRADE, "A", "M2", 0),
        (UPGRADE, "B", "M1", 0),
    ]


def test_load_weights_means_are_exact() -> None:
    rows = [
        Importance("A", "M1", Decimal("1")),
        Importance("A", "M1", Decimal("2")),  # (1 + 2) / 2 = 3/2
        Importance("A", "M2", Decimal("0")),
        Importance("A", "M2", Decimal("0")),
        Importance("A", "M2", Decimal("1")),  # 1/3
        Importance("B", "M1", Decimal("-0.5")),  # -1/2
        Importance("B", "M2", Decimal("0.1")),
        Importance("B", "M2", Decimal("0.2")),  # 0.3 / 2 = 3/20
    ]
    assert load_weights(rows) == {
        ("A", "M1"): Fraction(3, 2),
        ("A", "M2"): Fraction(1, 3),
        ("B", "M1"): Fraction(-1, 2),
        ("B", "M2"): Fraction(3, 20),
    }


def test_upgrade_weights_are_exact_at_full_precision(tmp_path: Path) -> None:
    # Weights with 38 significant digits (20 + 18, valid per the contract) differ in the last one:
    # w(A) = 10000000000000000000.000000000000000001 < w(B) = ...002; j = 1 -> A only.
    a, b = "10000000000000000000.000000000000000001", "10000000000000000000.000000000000000002"
    chunk = [tx("A", "M1"), tx("B", "M1")]
    replay = run(
        tmp_path, [chunk], th(upgrade_min=0, top="100"), [imp("A", "M1", a), imp("B", "M1", b)]
    )
    assert found(replay) == [(UPGRADE, "A", "M1", 0)]


def test_upgrade_merchant_minimum_is_strict_with_seed_preset(tmp_path: Path) -> None:
    # seed: UPGRADE needs N(m) > 500. Gender M everywhere -> F(M1) = 0 -> no DEI.
    # chunk 0: A 499 + B 1 = 500 txns -> 500 > 500 false -> no UPGRADE.
    # chunk 1: B +1 -> N = 501 > 500. k = max(1, ceil(10*2/100)) = 1 -> largest of {499, 2}
    #   = 499 -> A; weights {1, 1}, j = 1 -> 1 -> A passes; B fails the count -> UPGRADE A @1.
    # CHILD (n > 2, S < 800 n): A after chunk 0 (499 > 2, 4990 < 399200); B has n = 2 -> no.
    chunks = [
        [*many("A", "M1", 499, gender="M"), tx("B", "M1", gender="M")],
        [tx("B", "M1", gender="M")],
    ]
    weights = [imp("A", "M1", "1"), imp("B", "M1", "1")]
    replay = run(tmp_path, chunks, SEED, weights)
    assert found(replay) == [(UPGRADE, "A", "M1", 1), (CHILD, "A", "M1", 0)]


def test_upgrade_state_is_cumulative_and_each_key_emitted_once(tmp_path: Path) -> None:
    # k = max(1, ceil(10*2/100)) = 1; weights 1 and 1, bottom 100 -> weight always passes.
    # chunk 0: A 2, B 1 -> cut-off 2 -> A.  chunk 1: B +2 -> A 2, B 3 -> cut-off 3 -> B.
    # chunk 2: A +1 -> A 3, B 3 -> both hold; neither is new.
    chunks = [
        [*many("A", "M1", 2), tx("B", "M1")],
        many("B", "M1", 2),
        [tx("A", "M1")],
    ]
    weights = [imp("A", "M1", "1"), imp("B", "M1", "1")]
    replay = run(tmp_path, chunks, th(upgrade_min=0, bottom="100"), weights)
    assert found(replay) == [(UPGRADE, "A", "M1", 0), (UPGRADE, "B", "M1", 1)]
    assert replay.detections[0].action_type == "UPGRADE"


# --- CHILD ---------------------------------------------------------------------------------


def test_child_strict_boundaries_with_seed_preset(tmp_path: Path) -> None:
    # seed: n(c,m) > 2 and S(c,m) < 800 * n(c,m). N(M1) = 14 <= 500, F(M1) = 5 <= 10.
    chunk = [
        *many("A", "M1", 3, amount="800.00"),  # n 3, S 2400.00 = 800*3 -> not <
        *many("B", "M1", 2, amount="800.00"),
        tx("B", "M1", "799.99"),  # n 3, S 2399.99 < 2400 -> CHILD
        *many("C", "M1", 2, amount="1.00"),  # n 2, not > 2
        *many("D", "M1", 3, amount="1.00"),  # n 3 > 2, S 3 < 2400 -> CHILD
        tx("E", "M1", "700"),
        tx("E", "M1", "900"),
        tx("E", "M1", "800"),  # n 3, S 2400 = 800*3 -> not <
    ]
    replay = run(tmp_path, [chunk], SEED)
    assert found(replay) == [(CHILD, "B", "M1", 0), (CHILD, "D", "M1", 0)]
    assert replay.detections[0].action_type == "CHILD"


def test_child_average_exactly_at_limit_from_uneven_amounts(tmp_path: Path) -> None:
    # limit 0.05, n 3 -> 0.15. A: 0.10 + 0.02 + 0.03 = 0.15 -> not < (in floats 0.15 < 0.15..02).
    # B: 0.10 + 0.02 + 0.02 = 0.14 < 0.15 -> CHILD.
    chunk = [
        tx("A", "M1", "0.10"),
        tx("A", "M1", "0.02"),
        tx("A", "M1", "0.03"),
        tx("B", "M1", "0.10"),
        tx("B", "M1", "0.02"),
        tx("B", "M1", "0.02"),
    ]
    replay = run(tmp_path, [chunk], th(child_min=2, child_avg="0.05"))
    assert found(replay) == [(CHILD, "B", "M1", 0)]


def test_child_counts_per_customer_and_merchant(tmp_path: Path) -> None:
    # seed: A has 2 txns at M1 and 1 at M2 -> n(A,M1) = 2, n(A,M2) = 1 -> neither > 2.
    chunk = [*many("A", "M1", 2), tx("A", "M2")]
    assert found(run(tmp_path, [chunk], SEED)) == []


def test_child_amounts_are_summed_exactly_at_full_precision(tmp_path: Path) -> None:
    # limit 10^12, n > 0. A: one amount 999999999999.999999999999999999 (30 digits, valid)
    # -> S < 10^12 * 1 -> CHILD.  B: 1000000000000 = 10^12 -> not <.
    # C: 3 * 999999999999.999999999999999999 = 2999999999999.999999999999999997 < 3 * 10^12.
    big = "999999999999.999999999999999999"
    chunk = [tx("A", "M1", big), tx("B", "M1", "1000000000000"), *many("C", "M1", 3, amount=big)]
    replay = run(tmp_path, [chunk], th(child_min=0, child_avg="1000000000000"))
    assert found(replay) == [(CHILD, "A", "M1", 0), (CHILD, "C", "M1", 0)]


# --- DEI-NEEDED ----------------------------------------------------------------------------


def test_dei_strict_boundaries(tmp_path: Path) -> None:
    # dei_min 1: F(m) > 1 and F(m) < M(m).
    chunk = [
        # M1: F {A, B}, M {C, D} -> 2 > 1 but 2 < 2 false -> no
        *[tx(c, "M1", gender="F") for c in "AB"],
        *[tx(c, "M1", gender="M") for c in "CD"],
        # M2: F {A, B}, M {C, D, E} -> 2 > 1 and 2 < 3 -> DEI
        *[tx(c, "M2", gender="F") for c in "AB"],
        *[tx(c, "M2", gender="M") for c in "CDE"],
        # M3: F {A}, M {C, D} -> 1 > 1 false -> no
        tx("A", "M3", gender="F"),
        *[tx(c, "M3", gender="M") for c in "CD"],
    ]
    replay = run(tmp_path, [chunk], th(dei_min=1))
    assert found(replay) == [(DEI_NEEDED, "", "M2", 0)]
    assert replay.detections[0].customer == ""
    assert replay.detections[0].action_type == "DEI-NEEDED"


def test_dei_counts_distinct_customers_not_transactions(tmp_path: Path) -> None:
    # dei_min 1.
    chunk = [
        # M8: A has 3 F rows -> F = 1 (not > 1); by transactions it would be 3 > 1, 3 < 4
        *many("A", "M8", 3, gender="F"),
        *[tx(c, "M8", gender="M") for c in "CDEG"],
        # M9: F {A, B}, C has 5 M rows -> M = 1 -> 2 < 1 false; by transactions 2 < 5
        *[tx(c, "M9", gender="F") for c in "AB"],
        *many("C", "M9", 5, gender="M"),
    ]
    assert found(run(tmp_path, [chunk], th(dei_min=1))) == []


def test_dei_customer_with_two_genders_counts_in_both(tmp_path: Path) -> None:
    # dei_min 1, merchant M5.
    # chunk 0: F {A, B}, M {C, D} -> 2 < 2 false.
    # chunk 1: A also appears as M -> F {A, B} = 2, M {A, C, D} = 3 -> 2 > 1, 2 < 3 -> DEI @1.
    # (A only in M: F = 1 -> no; A only in F: M = 2 -> no.)
    chunks = [
        [*[tx(c, "M5", gender="F") for c in "AB"], *[tx(c, "M5", gender="M") for c in "CD"]],
        [tx("A", "M5", gender="M")],
    ]
    assert found(run(tmp_path, chunks, th(dei_min=1))) == [(DEI_NEEDED, "", "M5", 1)]


def test_dei_genders_e_and_u_count_in_neither(tmp_path: Path) -> None:
    # dei_min 1.
    # M6: F {A, B}, M {C, D}, E {X}, U {Y} -> 2 < 2 false (E/U as M would give 2 < 4).
    # M7: F {A, B}, M {C, D, G}, E {X}, U {Y} -> 2 < 3 -> DEI (E/U as F would give 4 < 3 false).
    # M8: F {A}, E {X}, M {C, D, G} -> F = 1 -> not > 1 (E as F: 2 > 1, 2 < 3 -> DEI).
    # M9: F {A}, U {Y}, M {C, D, G} -> F = 1 -> not > 1 (U as F: 2 > 1, 2 < 3 -> DEI).
    chunk = [
        *[tx(c, "M6", gender="F") for c in "AB"],
        *[tx(c, "M6", gender="M") for c in "CD"],
        tx("X", "M6", gender="E"),
        tx("Y", "M6", gender="U"),
        *[tx(c, "M7", gender="F") for c in "AB"],
        *[tx(c, "M7", gender="M") for c in "CDG"],
        tx("X", "M7", gender="E"),
        tx("Y", "M7", gender="U"),
        tx("A", "M8", gender="F"),
        tx("X", "M8", gender="E"),
        *[tx(c, "M8", gender="M") for c in "CDG"],
        tx("A", "M9", gender="F"),
        tx("Y", "M9", gender="U"),
        *[tx(c, "M9", gender="M") for c in "CDG"],
    ]
    assert found(run(tmp_path, [chunk], th(dei_min=1))) == [(DEI_NEEDED, "", "M7", 0)]


# --- emission, chunks and rejected rows ----------------------------------------------------


def child_flip_chunks() -> list[list[str]]:
    """CHILD for (A, M1) with n > 0 and limit 10: holds after 3, not after 4-5, holds after 6."""
    return [
        [tx("A", "M1", "20")],  # 0: n 1, S 20; 20 < 10 false
        [tx("A", "M1", "20")],  # 1: n 2, S 40; 40 < 20 false
        [],  # 2: unchanged
        many("A", "M1", 3, amount="0"),  # 3: n 5, S 40; 40 < 50 -> holds (first time)
        [tx("A", "M1", "100")],  # 4: n 6, S 140; 140 < 60 false
        [tx("A", "M1", "0")],  # 5: n 7, S 140; 140 < 70 false
        many("A", "M1", 8, amount="0"),  # 6: n 15, S 140; 140 < 150 -> holds again
    ]


def test_key_is_emitted_once_at_the_first_chunk_it_holds(tmp_path: Path) -> None:
    replay = run(tmp_path, child_flip_chunks(), th(child_min=0, child_avg="10"))
    assert found(replay) == [(CHILD, "A", "M1", 3)]
    assert [c.index for c in replay.chunks] == [0, 1, 2, 3, 4, 5, 6]


def test_engine_apply_returns_only_new_keys() -> None:
    # The same story through ReferenceEngine.apply, chunk by chunk.
    engine = ReferenceEngine({}, th(child_min=0, child_avg="10"))
    schedule = [(0, "20", 1), (1, "20", 1), (2, "0", 0), (3, "0", 3), (4, "100", 1), (5, "0", 1)]
    schedule.append((6, "0", 8))
    new = {}
    for index, amount, count in schedule:
        row = Transaction(0, "A", "2", "F", "28007", "M1", "28007", "es_food", Decimal(amount))
        detections = engine.apply(index, [row] * count)
        new[index] = [(d.pattern_id, d.customer, d.merchant, d.chunk_index) for d in detections]
    assert new == {0: [], 1: [], 2: [], 3: [(CHILD, "A", "M1", 3)], 4: [], 5: [], 6: []}


def test_invalid_rows_are_reported_and_never_counted(tmp_path: Path) -> None:
    # seed preset. Chunk 1 line numbers: header = 1, rows from 2.
    bad = [
        tx("A", "M1", "5000", gender="X"),  # line 3: gender; counted: A n 4, S 5030 >= 3200
        tx("B", "M1", "1", step="x"),  # line 6: step; counted, B would have n = 3 -> CHILD
        "0,'B','2'",  # line 7: 3 fields -> column None
        tx("B", "M1", "1e0"),  # line 8: amount
    ]
    chunk1 = [tx("A", "M1"), bad[0], tx("B", "M1", "1"), tx("B", "M1", "1"), *bad[1:]]
    chunks = [many("A", "M1", 2), chunk1]
    replay = run(tmp_path / "dirty", chunks, SEED)
    # A: n 3 (2 + 1 valid), S 30 < 2400 -> CHILD @1. B: n 2 (valid rows only) -> not > 2.
    assert found(replay) == [(CHILD, "A", "M1", 1)]
    assert [(i, r.line, r.column, r.raw) for i, r in replay.rejected] == [
        (1, 3, "gender", bad[0]),
        (1, 6, "step", bad[1]),
        (1, 7, None, bad[2]),
        (1, 8, "amount", bad[3]),
    ]
    assert all(isinstance(r, Rejected) and r.message for _, r in replay.rejected)
    assert replay.chunks == [ChunkStats(0, 2, 0), ChunkStats(1, 3, 4)]
    # The same chunks without the bad rows give the same detections.
    clean = [many("A", "M1", 2), [row for row in chunk1 if row not in bad]]
    clean_replay = run(tmp_path / "clean", clean, SEED)
    assert found(clean_replay) == found(replay)
    assert clean_replay.rejected == []


def test_only_chunks_with_success_marker_count(tmp_path: Path) -> None:
    # seed. chunk 1 has no _SUCCESS: A's third row is not applied -> n(A,M1) = 2 -> no CHILD.
    # chunk 2 is complete and applied after the gap: B n 3, S 30 < 2400 -> CHILD @2.
    chunks = [many("A", "M1", 2), [tx("A", "M1")], many("B", "M1", 3)]
    replay = run(tmp_path, chunks, SEED, complete=[True, False, True])
    assert found(replay) == [(CHILD, "B", "M1", 2)]
    assert [c.index for c in replay.chunks] == [0, 2]


def test_no_complete_chunk_means_no_detection(tmp_path: Path) -> None:
    replay = run(tmp_path, [many("A", "M1", 3)], SEED, complete=False)
    assert replay.detections == [] and replay.chunks == []


def test_chunks_are_applied_in_numeric_index_order(tmp_path: Path) -> None:
    # seed. Numeric order 1, 2, 9, 10: after 2, A n 3, S 30 < 2400 -> CHILD @2;
    # after 10, n 4, S 5030 >= 3200 (already emitted anyway).
    # Lexicographic order (1, 10, 2, 9) would give: after 10, n 1; after 2, n 4, S 5030 -> never.
    chunks = {10: [tx("A", "M1", "5000")], 2: many("A", "M1", 3), 9: [], 1: []}
    replay = run(tmp_path, chunks, SEED)
    assert found(replay) == [(CHILD, "A", "M1", 2)]
    assert [c.index for c in replay.chunks] == [1, 2, 9, 10]


def test_detections_carry_first_chunk_index_across_patterns(tmp_path: Path) -> None:
    # child_min 1, limit 100; dei_min 0; UPGRADE off.
    # chunk 0: A@M1 50 (F) -> n 1, not > 1. F(M1) = 1 > 0, M = 0 -> no DEI.
    # chunk 1: A@M1 50 -> n 2, S 100 < 200 -> CHILD (A, M1) @1; C@M1 (M) -> M 1, 1 < 1 false.
    # chunk 2: D@M1 (M) -> F 1 < M 2 -> DEI (M1) @2; C@M1 n 1 -> no CHILD.
    chunks = [
        [tx("A", "M1", "50")],
        [tx("A", "M1", "50"), tx("C", "M1", "500", gender="M")],
        [tx("D", "M1", "500", gender="M")],
    ]
    replay = run(tmp_path, chunks, th(child_min=1, child_avg="100", dei_min=0))
    assert found(replay) == [(CHILD, "A", "M1", 1), (DEI_NEEDED, "", "M1", 2)]


def test_chunk_file_with_bom_and_crlf_is_read(tmp_path: Path) -> None:
    # seed. The same 3 rows as a BOM + CRLF file: A n 3, S 30 < 2400 -> CHILD @0; nothing rejected.
    root = write_chunks(tmp_path / "input", [many("A", "M1", 3)])
    part = root / "chunk_0.csv" / "part-00000.csv"
    text = part.read_text(encoding="utf-8").replace("\n", "\r\n")
    part.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    weights = write_importance(tmp_path / "importance.csv", [])
    replay = replay_folder(str(root), str(weights), SEED)
    assert found(replay) == [(CHILD, "A", "M1", 0)]
    assert replay.rejected == [] and replay.chunks == [ChunkStats(0, 3, 0)]
