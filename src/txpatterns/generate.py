"""Deterministic synthetic transactions shaped like the published BankSim data set.

The generator writes the raw BankSim transactions file and its CustomerImportance file.
Counts are apportioned exactly (merchant rows, genders, ages, steps, fraud) so even small
runs keep the published shape; only who-goes-where and the amounts are random.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, TextIO

import numpy as np
import numpy.typing as npt

__all__ = [
    "BLOCK_ROWS",
    "DEFAULT_ROWS",
    "FULL_CUSTOMERS",
    "IMPORTANCE_HEADER",
    "MIN_CUSTOMERS",
    "STEPS",
    "TRANSACTIONS_HEADER",
    "WEIGHT_MODES",
    "ZIPCODE",
    "GenerateStats",
    "generate",
]

DEFAULT_ROWS: Final = 594_643
FULL_CUSTOMERS: Final = 4_112
MIN_CUSTOMERS: Final = 20
STEPS: Final = 180
ZIPCODE: Final = "28007"
BLOCK_ROWS: Final = 50_000
TRANSACTIONS_HEADER: Final = (
    "step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud"
)
IMPORTANCE_HEADER: Final = "Source,Target,Weight,typeTrans,fraud"
WEIGHT_MODES: Final = ("amount", "independent")

WeightMode = Literal["amount", "independent"]

_IntArray = npt.NDArray[np.int64]
_FloatArray = npt.NDArray[np.float64]
_BoolArray = npt.NDArray[np.bool_]

# Category -> (mean amount including fraud, fraud share of rows), from the published BankSim
# statistics; the fraud shares reproduce its 7,200 fraudulent rows.
_CATEGORIES: Final[dict[str, tuple[float, float]]] = {
    "es_transportation": (26.96, 0.0),
    "es_food": (37.07, 0.0),
    "es_health": (135.62, 1696 / 16133),
    "es_wellnessandbeauty": (65.51, 718 / 15086),
    "es_fashion": (65.67, 116 / 6454),
    "es_barsandrestaurants": (43.46, 120 / 6373),
    "es_hyper": (45.97, 280 / 6098),
    "es_sportsandtoys": (215.72, 1982 / 4002),
    "es_tech": (120.95, 158 / 2370),
    "es_home": (165.67, 302 / 1986),
    "es_hotelservices": (205.61, 548 / 1744),
    "es_otherservices": (135.88, 228 / 912),
    "es_contents": (44.55, 0.0),
    "es_travel": (2250.41, 578 / 728),
    "es_leisure": (288.91, 474 / 499),
}
_COMMUTE_CATEGORY: Final = "es_transportation"

# Merchant id, category, rows at the default size, female share of its clientele (None means
# the population share). The two transportation ids are the real BankSim ones; the others are
# illustrative. Row counts add up to the published category totals. The male-skewed food and
# sports merchants give DEI-NEEDED something to find at every size.
_MERCHANTS: Final[tuple[tuple[str, str, int, float | None], ...]] = (
    ("M1823072687", "es_transportation", 299_693, None),
    ("M348934600", "es_transportation", 205_426, None),
    ("M1294061337", "es_food", 26_254, 0.40),
    ("M1053599405", "es_health", 6_821, None),
    ("M480139044", "es_health", 3_508, None),
    ("M1741626453", "es_health", 2_881, None),
    ("M980657600", "es_health", 1_769, None),
    ("M1352454843", "es_health", 1_154, None),
    ("M1946091778", "es_wellnessandbeauty", 5_343, None),
    ("M1913465890", "es_wellnessandbeauty", 3_988, None),
    ("M1600850729", "es_wellnessandbeauty", 2_624, None),
    ("M1198415165", "es_wellnessandbeauty", 1_608, None),
    ("M547558035", "es_wellnessandbeauty", 949, None),
    ("M1313686961", "es_wellnessandbeauty", 574, None),
    ("M1535107174", "es_fashion", 2_415, None),
    ("M1649169323", "es_fashion", 1_868, None),
    ("M840466850", "es_fashion", 1_399, None),
    ("M1400236507", "es_fashion", 772, None),
    ("M209847108", "es_barsandrestaurants", 3_814, None),
    ("M1888755466", "es_barsandrestaurants", 1_580, None),
    ("M1872033263", "es_barsandrestaurants", 979, None),
    ("M855959430", "es_hyper", 3_302, None),
    ("M1842530320", "es_hyper", 1_925, None),
    ("M692898500", "es_hyper", 871, None),
    ("M1788569036", "es_sportsandtoys", 1_620, 0.40),
    ("M2122776122", "es_sportsandtoys", 1_173, None),
    ("M923029380", "es_sportsandtoys", 858, None),
    ("M1873032707", "es_sportsandtoys", 351, None),
    ("M1748431652", "es_tech", 1_226, None),
    ("M2011752106", "es_tech", 776, None),
    ("M1416436880", "es_tech", 368, None),
    ("M732195782", "es_home", 916, None),
    ("M1294758098", "es_home", 751, None),
    ("M857378720", "es_home", 319, None),
    ("M1726401631", "es_hotelservices", 900, None),
    ("M151143676", "es_hotelservices", 599, None),
    ("M677738360", "es_hotelservices", 245, None),
    ("M2080407379", "es_otherservices", 608, None),
    ("M1353266412", "es_otherservices", 304, None),
    ("M117188757", "es_contents", 528, None),
    ("M495352832", "es_contents", 250, None),
    ("M933210764", "es_contents", 107, None),
    ("M1313520563", "es_travel", 370, None),
    ("M1509370125", "es_travel", 220, None),
    ("M1600850273", "es_travel", 117, None),
    ("M1015439621", "es_travel", 21, None),
    ("M1741120381", "es_leisure", 282, None),
    ("M348875670", "es_leisure", 122, None),
    ("M1008447320", "es_leisure", 78, None),
    ("M1879130542", "es_leisure", 17, None),
)

# Customer shares at the default size: genders F 2,256 / M 1,844 / E 7 / U 5 of 4,112.
_GENDERS: Final = ("F", "M", "E", "U")
_GENDER_SHARES: Final = (2256, 1844, 7, 5)
_FEMALE: Final = 0
# Ages '0'..'6' by customer share; 'U' is added on top and always covers the 'E' customers.
_AGES: Final = ("0", "1", "2", "3", "4", "5", "6")
_AGE_SHARES: Final = (0.4, 9.8, 31.5, 24.7, 18.3, 10.5, 4.5)
_AGE_UNKNOWN_SHARE: Final = 0.002

# Step volume rises linearly by this factor from the first step to the last.
_STEP_RISE: Final = 1.55
# Exact zero amounts per row at the default size (BankSim has about 50 of them).
_ZERO_SHARE: Final = 50 / DEFAULT_ROWS

# Distinct customers per merchant saturate as reach * K * (1 - exp(-N / (ROWS_PER_PAIR * reach
# * K))); the figures give about 47,000 pairs and 11 merchants per customer at full size.
_ROWS_PER_PAIR: Final = 1.4
_FOOD_ROWS_PER_PAIR: Final = 1.0
_SKEWED_REACH: Final = 0.6

# Gamma shapes: transport fares are tight around their mean, other spending is broader and
# fraud runs about four times the category's ordinary amount.
_COMMUTE_SHAPE: Final = 5.0
_SPEND_SHAPE: Final = 2.0
_FRAUD_SHAPE: Final = 4.5
_FRAUD_FACTOR: Final = 4.0
_MULTIPLIER_SIGMA: Final = 0.03
# BankSim's largest amount; the fraud tail is clipped there.
_MAX_CENTS: Final = 832_996

# Commuters are frequent transport users with small fares; they make UPGRADE and CHILD fire
# from the smallest runs up, as the low-spending regulars in BankSim do.
_COMMUTER_SHARE: Final = 0.0025
_MIN_COMMUTERS: Final = 2
_COMMUTER_POOL: Final = 0.2
_COMMUTER_BOOST: Final = 1.6
_COMMUTER_MULTIPLIER: Final = (0.3, 0.45)


@dataclass(frozen=True)
class GenerateStats:
    """What one call to generate wrote: rows, distinct customers, merchants and pairs."""

    rows: int
    customers: int
    merchants: int
    pairs: int


@dataclass(frozen=True)
class _Population:
    ids: list[str]
    gender: _IntArray
    age: list[str]
    activity: _FloatArray
    breadth: _FloatArray
    multiplier: _FloatArray
    commuter: _BoolArray


@dataclass(frozen=True)
class _Rows:
    merchant: _IntArray
    customer: _IntArray
    fraud: _BoolArray
    pairs: int


def generate(
    transactions: TextIO,
    importance: TextIO,
    *,
    rows: int = DEFAULT_ROWS,
    seed: int = 0,
    weight_mode: WeightMode = "amount",
    progress: Callable[[int], None] | None = None,
) -> GenerateStats:
    """Write `rows` BankSim-format transactions and their importance rows to the open files.

    The output depends only on `rows`, `seed` and `weight_mode`; `progress` gets row increments.
    """
    rows = operator.index(rows)
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if weight_mode not in WEIGHT_MODES:
        raise ValueError(
            f"weight_mode must be one of {', '.join(WEIGHT_MODES)}, got {weight_mode!r}"
        )

    rng = np.random.default_rng(seed)
    population = _population(rng, _customer_count(rows))
    table = _assign_rows(rng, population, rows)

    # Shuffling before laying out the steps spreads every merchant and customer over time.
    order = rng.permutation(rows)
    merchant = table.merchant[order]
    customer = table.customer[order]
    fraud = table.fraud[order]
    steps = np.repeat(np.arange(STEPS, dtype=np.int64), _step_counts(rows))

    categories = np.array([_category_index(m[1]) for m in _MERCHANTS], dtype=np.int64)
    row_category = categories[merchant]
    row_multiplier = population.multiplier[customer]
    cents = _draw_cents(rng, row_category, fraud, row_multiplier)
    _zero_some(rng, cents, row_category, fraud)
    # An independent weight is a second draw from the same row's distribution, so it keeps the
    # scale and the customer's habits but almost never equals the amount.
    weights = None
    if weight_mode == "independent":
        weights = _draw_cents(rng, row_category, fraud, row_multiplier)

    _write(
        transactions,
        importance,
        population,
        merchant,
        customer,
        steps,
        cents,
        weights,
        fraud,
        progress,
    )
    return GenerateStats(
        rows=rows,
        customers=int(np.unique(customer).size),
        merchants=int(np.unique(merchant).size),
        pairs=table.pairs,
    )


def _customer_count(rows: int) -> int:
    scaled = round(FULL_CUSTOMERS * math.sqrt(rows / DEFAULT_ROWS))
    return min(FULL_CUSTOMERS, max(MIN_CUSTOMERS, scaled))


def _apportion(total: int, weights: npt.ArrayLike) -> _IntArray:
    """Split `total` into integer parts proportional to `weights` by largest remainders."""
    w = np.asarray(weights, dtype=np.float64)
    if total <= 0 or w.sum() <= 0:
        return np.zeros(w.size, dtype=np.int64)
    quotas: _FloatArray = total * w / w.sum()
    counts: _IntArray = np.floor(quotas).astype(np.int64)
    short = total - int(counts.sum())
    # Ties go to the earlier entry so the split never depends on the seed.
    order = np.argsort(-(quotas - counts), kind="stable")
    counts[order[:short]] += 1
    return counts


def _category_index(name: str) -> int:
    return list(_CATEGORIES).index(name)


def _step_counts(rows: int) -> _IntArray:
    # Rounding the running total (not largest remainders) spreads a short run over all steps
    # instead of piling it into the busiest last ones.
    volume = np.linspace(1.0, _STEP_RISE, STEPS)
    bounds: _IntArray = np.rint(rows * np.cumsum(volume) / volume.sum()).astype(np.int64)
    bounds[-1] = rows
    counts: _IntArray = np.diff(bounds, prepend=0)
    return counts


def _population(rng: np.random.Generator, size: int) -> _Population:
    gender = rng.permutation(
        np.repeat(np.arange(4, dtype=np.int64), _apportion(size, _GENDER_SHARES))
    )

    age = np.empty(size, dtype=object)
    is_e = gender == _GENDERS.index("E")
    age[is_e] = "U"
    others = rng.permutation(np.flatnonzero(~is_e))
    unknown = max(0, round(_AGE_UNKNOWN_SHARE * size) - int(is_e.sum()))
    age[others[:unknown]] = "U"
    rest = others[unknown:]
    age[rest] = np.repeat(np.array(_AGES, dtype=object), _apportion(rest.size, _AGE_SHARES))

    # Java-style positive hash codes, as BankSim ids are; redraw in the rare case of a clash.
    raw = np.unique(rng.integers(100_000_000, 2_147_483_647, size=size))
    while raw.size < size:
        extra = rng.integers(100_000_000, 2_147_483_647, size=size - raw.size)
        raw = np.unique(np.concatenate([raw, extra]))
    ids = [f"C{n}" for n in rng.permutation(raw).tolist()]

    activity = 5.0 + 260.0 * rng.beta(3.0, 2.4, size=size)
    breadth = (activity / activity.mean()) ** 0.7 * rng.lognormal(0.0, 0.4, size=size)
    multiplier = rng.lognormal(-(_MULTIPLIER_SIGMA**2) / 2, _MULTIPLIER_SIGMA, size=size)

    commuters = max(_MIN_COMMUTERS, round(_COMMUTER_SHARE * size))
    busiest = np.argsort(-activity, kind="stable")[: max(commuters, round(_COMMUTER_POOL * size))]
    chosen = rng.choice(busiest, size=commuters, replace=False)
    commuter = np.zeros(size, dtype=np.bool_)
    commuter[chosen] = True
    multiplier[chosen] = rng.uniform(*_COMMUTER_MULTIPLIER, size=commuters)

    return _Population(
        ids=ids,
        gender=gender,
        age=[str(a) for a in age.tolist()],
        activity=activity,
        breadth=breadth,
        multiplier=multiplier,
        commuter=commuter,
    )


def _assign_rows(rng: np.random.Generator, population: _Population, rows: int) -> _Rows:
    size = population.activity.size
    full_rows = np.array([m[2] for m in _MERCHANTS], dtype=np.float64)
    merchant_rows = _apportion(rows, full_rows)

    expected_fraud = np.array(
        [_CATEGORIES[m[1]][1] * n for m, n in zip(_MERCHANTS, merchant_rows, strict=True)]
    )
    fraud_rows = _apportion(round(float(expected_fraud.sum())), expected_fraud)

    female = np.flatnonzero(population.gender == _FEMALE)
    other = np.flatnonzero(population.gender != _FEMALE)
    female_share = female.size / size

    merchants: list[_IntArray] = []
    customers: list[_IntArray] = []
    frauds: list[_BoolArray] = []
    pairs = 0
    for index, (_, category, _, skew) in enumerate(_MERCHANTS):
        n = int(merchant_rows[index])
        if n == 0:
            continue
        commute = category == _COMMUTE_CATEGORY
        reach = 1.0 if skew is None else _SKEWED_REACH
        per_pair = _FOOD_ROWS_PER_PAIR if category == "es_food" else _ROWS_PER_PAIR
        ceiling = reach * size
        k = round(ceiling * (1.0 - math.exp(-n / (per_pair * ceiling))))
        k = max(1, min(n, k))
        share = female_share if skew is None else skew
        clientele = _clientele(rng, population, female, other, k, share, commute)

        weight = population.activity[clientele]
        if skew is not None:
            # Fewer women shop here but they come as often as elsewhere, so row shares by
            # gender stay close to the population's.
            odds = (female_share / (1 - female_share)) / (skew / (1 - skew))
            weight = np.where(population.gender[clientele] == _FEMALE, weight * odds, weight)
        if commute:
            weight = np.where(population.commuter[clientele], weight * _COMMUTER_BOOST, weight)
        counts = 1 + _apportion(n - clientele.size, weight)
        flags = np.zeros(n, dtype=np.bool_)
        flags[rng.choice(n, size=int(fraud_rows[index]), replace=False)] = True

        merchants.append(np.full(n, index, dtype=np.int64))
        customers.append(np.repeat(clientele, counts))
        frauds.append(flags)
        pairs += clientele.size

    return _Rows(
        merchant=np.concatenate(merchants),
        customer=np.concatenate(customers),
        fraud=np.concatenate(frauds),
        pairs=pairs,
    )


def _clientele(
    rng: np.random.Generator,
    population: _Population,
    female: _IntArray,
    other: _IntArray,
    k: int,
    female_share: float,
    commute: bool,
) -> _IntArray:
    """Pick k distinct customers with a fixed female count, favouring broad customers."""
    k_female = min(round(female_share * k), female.size)
    k_other = min(k - k_female, other.size)
    k_female = min(k - k_other, female.size)
    picked = [_weighted_sample(rng, population, female, k_female, commute)]
    picked.append(_weighted_sample(rng, population, other, k_other, commute))
    return np.sort(np.concatenate(picked))


def _weighted_sample(
    rng: np.random.Generator, population: _Population, pool: _IntArray, k: int, commute: bool
) -> _IntArray:
    # Efraimidis-Spirakis keys: the k largest log(u) / w are a weighted sample without
    # replacement; commuters get the top key so every transport merchant sees them.
    keys = np.log(rng.random(pool.size)) / population.breadth[pool]
    if commute:
        keys[population.commuter[pool]] = 0.0
    return pool[np.argsort(-keys, kind="stable")[:k]]


def _draw_cents(
    rng: np.random.Generator,
    category: _IntArray,
    fraud: _BoolArray,
    multiplier: _FloatArray,
) -> _IntArray:
    """Draw one amount per row in integer cents from its category, fraud flag and customer."""
    means = np.array([c[0] for c in _CATEGORIES.values()])
    rates = np.array([c[1] for c in _CATEGORIES.values()])
    # Choose the ordinary mean so that, with fraud at FRAUD_FACTOR times it, the category mean
    # matches the published one.
    ordinary = means / (1.0 - rates + rates * _FRAUD_FACTOR)
    shapes = np.full(len(_CATEGORIES), _SPEND_SHAPE)
    shapes[_category_index(_COMMUTE_CATEGORY)] = _COMMUTE_SHAPE

    shape = np.where(fraud, _FRAUD_SHAPE, shapes[category])
    mean = ordinary[category] * np.where(fraud, _FRAUD_FACTOR, 1.0) * multiplier
    amount = rng.gamma(shape, mean / shape)
    return np.clip(np.rint(amount * 100.0).astype(np.int64), 1, _MAX_CENTS)


def _zero_some(
    rng: np.random.Generator, cents: _IntArray, category: _IntArray, fraud: _BoolArray
) -> None:
    candidates = np.flatnonzero((category == _category_index(_COMMUTE_CATEGORY)) & ~fraud)
    zeros = min(candidates.size, round(_ZERO_SHARE * cents.size))
    cents[rng.choice(candidates, size=zeros, replace=False)] = 0


def _money(cents: _IntArray) -> list[str]:
    return [f"{c // 100}.{c % 100:02d}" for c in cents.tolist()]


def _write(
    transactions: TextIO,
    importance: TextIO,
    population: _Population,
    merchant: _IntArray,
    customer: _IntArray,
    steps: _IntArray,
    cents: _IntArray,
    weights: _IntArray | None,
    fraud: _BoolArray,
    progress: Callable[[int], None] | None,
) -> None:
    genders = [_GENDERS[g] for g in population.gender.tolist()]
    tx_customer = np.array(
        [
            f"'{cid}','{age}','{gender}','{ZIPCODE}',"
            for cid, age, gender in zip(population.ids, population.age, genders, strict=True)
        ],
        dtype=object,
    )
    tx_merchant = np.array([f"'{m[0]}','{ZIPCODE}','{m[1]}'," for m in _MERCHANTS], dtype=object)
    imp_customer = np.array([f"'{cid}','" for cid in population.ids], dtype=object)
    imp_merchant = np.array([f"{m[0]}'," for m in _MERCHANTS], dtype=object)
    imp_category = np.array([f",'{m[1]}'," for m in _MERCHANTS], dtype=object)
    step_text = np.array([f"{s}," for s in range(STEPS)], dtype=object)
    fraud_text = np.array(["0\n", "1\n"], dtype=object)

    transactions.write(TRANSACTIONS_HEADER + "\n")
    importance.write(IMPORTANCE_HEADER + "\n")
    for start in range(0, cents.size, BLOCK_ROWS):
        block = slice(start, start + BLOCK_ROWS)
        m = merchant[block]
        c = customer[block]
        amount = _money(cents[block])
        weight = amount if weights is None else _money(weights[block])
        flag = fraud_text[fraud[block].astype(np.int64)].tolist()
        transactions.write(
            "".join(
                [
                    f"{s}{cu}{me}{a},{f}"
                    for s, cu, me, a, f in zip(
                        step_text[steps[block]].tolist(),
                        tx_customer[c].tolist(),
                        tx_merchant[m].tolist(),
                        amount,
                        flag,
                        strict=True,
                    )
                ]
            )
        )
        importance.write(
            "".join(
                [
                    f"{cu}{me}{w}{ca}{f}"
                    for cu, me, w, ca, f in zip(
                        imp_customer[c].tolist(),
                        imp_merchant[m].tolist(),
                        weight,
                        imp_category[m].tolist(),
                        flag,
                        strict=True,
                    )
                ]
            )
        )
        if progress is not None:
            progress(len(amount))
