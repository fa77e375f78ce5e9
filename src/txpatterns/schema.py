"""The data contract: BankSim columns, how a line is split and unquoted, and why a row is invalid.

Every engine (the reference engine here, Spark later) must follow these rules to the letter;
docs/patterns.md states them for people. Parsers take already-open text files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, TextIO, TypeVar

from txpatterns.errors import HeaderError

TRANSACTION_COLUMNS: Final = (
    "step",
    "customer",
    "age",
    "gender",
    "zipcodeOri",
    "merchant",
    "zipMerchant",
    "category",
    "amount",
    "fraud",
)
IMPORTANCE_COLUMNS: Final = ("Source", "Target", "Weight", "typeTrans", "fraud")

GENDERS: Final = ("F", "M", "E", "U")
AGES: Final = ("0", "1", "2", "3", "4", "5", "6", "U")

# Anchored regular expressions, written so that Spark's rlike can use the same text.
# The digit limits keep every valid value inside BIGINT and DECIMAL(38, 18).
STEP_PATTERN: Final = r"^[0-9]{1,18}$"
AMOUNT_PATTERN: Final = r"^[0-9]{1,20}(\.[0-9]{1,18})?$"
WEIGHT_PATTERN: Final = r"^-?[0-9]{1,20}(\.[0-9]{1,18})?$"

_STEP = re.compile(STEP_PATTERN)
_AMOUNT = re.compile(AMOUNT_PATTERN)
_WEIGHT = re.compile(WEIGHT_PATTERN)
_GENDERS = frozenset(GENDERS)
_AGES = frozenset(AGES)
_BOM: Final = "\ufeff"


@dataclass(frozen=True, slots=True)
class Transaction:
    """One valid transaction row, values unquoted; `fraud` is read and ignored."""

    step: int
    customer: str
    age: str
    gender: str
    zipcode_ori: str
    merchant: str
    zip_merchant: str
    category: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Importance:
    """One valid importance row: the weight of customer `source` at merchant `target`."""

    source: str
    target: str
    weight: Decimal


@dataclass(frozen=True, slots=True)
class Rejected:
    """An invalid row: where it is, the first column that failed, why, and the line as read."""

    line: int
    column: str | None
    message: str
    raw: str


def unquote(value: str) -> str:
    """Strip one pair of enclosing single (or double) quotes, as BankSim writes text values."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def split_line(line: str) -> list[str]:
    """Split one line into unquoted fields; commas inside values are not supported."""
    return [unquote(v) for v in line.split(",")]


def _strip_eol(line: str) -> str:
    if line.endswith("\n"):
        line = line[:-1]
    if line.endswith("\r"):
        line = line[:-1]
    return line


def numbered_lines(file: TextIO) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line without its ending) for every line of an open file.

    Open the file with newline="" so that line boundaries are the same in every engine.
    """
    for number, raw in enumerate(file, start=1):
        yield number, _strip_eol(raw)


def header_fields(line: str) -> list[str]:
    """The unquoted fields of a header line, ignoring a UTF-8 byte-order mark."""
    return split_line(line.removeprefix(_BOM))


WRONG_HEADER: Final = "wrong file header, expected " + ",".join(TRANSACTION_COLUMNS)


def _check_header(lines: Iterator[tuple[int, str]], name: str, expected: tuple[str, ...]) -> None:
    first = next(lines, None)
    if first is None:
        raise HeaderError(name, expected, None)
    found = header_fields(first[1])
    if tuple(found) != expected:
        raise HeaderError(name, expected, found)


def check_transaction(fields: list[str]) -> tuple[str | None, str] | None:
    """Return (column, reason) for the first rule a split row breaks, or None when it is valid.

    Checks run in a fixed order (field count, step, customer, age, gender, merchant, amount) so
    that every engine reports the same reason for the same row; values are shown between plain
    single quotes, with no escaping, so that any engine can build the same text.
    """
    if len(fields) != len(TRANSACTION_COLUMNS):
        return None, f"expected {len(TRANSACTION_COLUMNS)} fields, found {len(fields)}"
    step, customer, age, gender, _, merchant, _, _, amount, _ = fields
    if not _STEP.match(step):
        return "step", f"not a non-negative integer: '{step}'"
    if not customer:
        return "customer", "empty"
    if age not in _AGES:
        return "age", f"not one of {', '.join(AGES)}: '{age}'"
    if gender not in _GENDERS:
        return "gender", f"not one of {', '.join(GENDERS)}: '{gender}'"
    if not merchant:
        return "merchant", "empty"
    if not _AMOUNT.match(amount):
        return "amount", f"not a non-negative decimal: '{amount}'"
    return None


def check_importance(fields: list[str]) -> tuple[str | None, str] | None:
    """Return (column, reason) for the first rule a split importance row breaks, or None."""
    if len(fields) != len(IMPORTANCE_COLUMNS):
        return None, f"expected {len(IMPORTANCE_COLUMNS)} fields, found {len(fields)}"
    source, target, weight, _, _ = fields
    if not source:
        return "Source", "empty"
    if not target:
        return "Target", "empty"
    if not _WEIGHT.match(weight):
        return "Weight", f"not a decimal: '{weight}'"
    return None


Row = TypeVar("Row")


def _read(
    file: TextIO,
    name: str,
    columns: tuple[str, ...],
    check: Callable[[list[str]], tuple[str | None, str] | None],
    build: Callable[[list[str]], Row],
) -> Iterator[Row | Rejected]:
    lines = numbered_lines(file)
    _check_header(lines, name, columns)
    for number, line in lines:
        fields = split_line(line)
        problem = check(fields)
        yield build(fields) if problem is None else Rejected(number, *problem, line)


def _transaction(fields: list[str]) -> Transaction:
    step, customer, age, gender, zip_ori, merchant, zip_merchant, category, amount, _ = fields
    return Transaction(
        int(step), customer, age, gender, zip_ori, merchant, zip_merchant, category,
        Decimal(amount),
    )  # fmt: skip


def _importance(fields: list[str]) -> Importance:
    return Importance(fields[0], fields[1], Decimal(fields[2]))


def read_transactions(file: TextIO, name: str) -> Iterator[Transaction | Rejected]:
    """Yield each data line of a transactions CSV as a Transaction or a Rejected row.

    Raises HeaderError, naming `name` and the expected header, when the first line is wrong.
    """
    return _read(file, name, TRANSACTION_COLUMNS, check_transaction, _transaction)


def read_importance(file: TextIO, name: str) -> Iterator[Importance | Rejected]:
    """Yield each data line of an importance CSV as an Importance or a Rejected row."""
    return _read(file, name, IMPORTANCE_COLUMNS, check_importance, _importance)


_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def excel_safe(value: str) -> str:
    """Neutralise a cell that a spreadsheet would run as a formula (OWASP: CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


# The detector's output files (docs/patterns.md, "Output").
OUTPUT_COLUMNS: Final = (
    "YStartTime(IST)",
    "detectionTime(IST)",
    "patternId",
    "ActionType",
    "customerName",
    "MerchantId",
)
OUTPUT_FOLDER: Final = re.compile(r"^pattern_detected_[0-9]{8}T[0-9]{6}_(0|[1-9][0-9]*)\.csv$")
EMIT_COLUMNS: Final = ("patternId", "ActionType", "customerName", "MerchantId", "chunkIndex")
