"""The data contract: headers, splitting and unquoting, validity rules, line numbers, Decimals."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest

from chunks import IMPORTANCE_HEADER, TX_HEADER, imp, tx
from txpatterns.errors import HeaderError
from txpatterns.schema import (
    Importance,
    Rejected,
    Transaction,
    read_importance,
    read_transactions,
    split_line,
    unquote,
)


def read_tx(text: str, name: str = "t.csv") -> list[Transaction | Rejected]:
    return list(read_transactions(io.StringIO(text), name))


def read_imp(text: str, name: str = "i.csv") -> list[Importance | Rejected]:
    return list(read_importance(io.StringIO(text), name))


def tx_file(*rows: str) -> str:
    return "".join(line + "\n" for line in [TX_HEADER, *rows])


def imp_file(*rows: str) -> str:
    return "".join(line + "\n" for line in [IMPORTANCE_HEADER, *rows])


def only(rows: list[Transaction | Rejected] | list[Importance | Rejected]) -> object:
    assert len(rows) == 1, rows
    return rows[0]


def rejected_column(line: str) -> str | None:
    row = only(read_tx(tx_file(line)))
    assert isinstance(row, Rejected), row
    assert row.line == 2
    assert row.raw == line
    assert row.message  # every rejection says why
    return row.column


def importance_column(line: str) -> str | None:
    row = only(read_imp(imp_file(line)))
    assert isinstance(row, Rejected), row
    assert row.line == 2
    assert row.raw == line
    assert row.message
    return row.column


# --- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount",  # 9 columns
        "step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud,x",
        "Step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud",
        "customer,step,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud",
        "step, customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud",
        "",  # blank first line
        IMPORTANCE_HEADER,
    ],
)
def test_wrong_transactions_header_names_file_and_expected_header(header: str) -> None:
    with pytest.raises(HeaderError) as err:
        read_tx(header + "\n" + tx("C1", "M1") + "\n", name="data/chunk_3.csv")
    assert "data/chunk_3.csv" in str(err.value)
    assert TX_HEADER in str(err.value)


def test_empty_transactions_file_raises_header_error() -> None:
    with pytest.raises(HeaderError) as err:
        read_tx("", name="empty.csv")
    assert "empty.csv" in str(err.value)
    assert TX_HEADER in str(err.value)


def test_wrong_or_empty_importance_header_raises_header_error() -> None:
    with pytest.raises(HeaderError) as err:
        read_imp("Source,Target,Weight\n", name="imp.csv")
    assert "imp.csv" in str(err.value)
    assert IMPORTANCE_HEADER in str(err.value)
    with pytest.raises(HeaderError) as err:
        read_imp("", name="imp2.csv")
    assert "imp2.csv" in str(err.value)
    assert IMPORTANCE_HEADER in str(err.value)
    with pytest.raises(HeaderError):
        read_imp(TX_HEADER + "\n", name="imp3.csv")


def test_header_only_file_yields_nothing() -> None:
    assert read_tx(TX_HEADER + "\n") == []
    assert read_tx(TX_HEADER) == []  # no final newline
    assert read_imp(IMPORTANCE_HEADER + "\n") == []


def test_bom_and_crlf_accepted_from_string() -> None:
    text = "\ufeff" + TX_HEADER + "\r\n" + tx("C1", "M1", "1.5") + "\r\n" + "bad\r\n"
    rows = read_tx(text)
    assert rows[0] == Transaction(
        0, "C1", "2", "F", "28007", "M1", "28007", "es_food", Decimal("1.5")
    )
    # the raw line of a rejected row has no line ending
    assert rows[1] == Rejected(3, None, rows[1].message, "bad")  # type: ignore[union-attr]


@pytest.mark.parametrize("newline", [None, ""])
def test_bom_and_crlf_accepted_from_disk(tmp_path: Path, newline: str | None) -> None:
    path = tmp_path / "part-00000.csv"
    body = "\r\n".join([TX_HEADER, tx("C1", "M1", "2"), "x,y", tx("C2", "M1", "3")]) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    with path.open(encoding="utf-8", newline=newline) as f:
        rows = list(read_transactions(f, str(path)))
    assert [type(r) for r in rows] == [Transaction, Rejected, Transaction]
    assert rows[0].customer == "C1"  # type: ignore[union-attr]
    assert rows[1] == Rejected(3, None, rows[1].message, "x,y")  # type: ignore[union-attr]
    assert rows[2].amount == Decimal("3")  # type: ignore[union-attr]


def test_bom_and_crlf_accepted_for_importance() -> None:
    rows = read_imp("\ufeff" + IMPORTANCE_HEADER + "\r\n" + imp("C1", "M1", "2.5") + "\r\n")
    assert rows == [Importance("C1", "M1", Decimal("2.5"))]


# --- splitting and unquoting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("'a'", "a"),
        ('"a"', "a"),
        ("a", "a"),
        ("''", ""),
        ('""', ""),
        ("'", "'"),  # a lone quote is not a pair
        ("'a\"", "'a\""),  # mismatched quotes are kept
        ("'a", "'a"),
        ("''a''", "'a'"),  # only one pair is stripped
        ("", ""),
    ],
)
def test_unquote(value: str, expected: str) -> None:
    assert unquote(value) == expected


def test_split_line() -> None:
    assert split_line("a,'b',\"c\",,'d e'") == ["a", "b", "c", "", "d e"]
    assert split_line("") == [""]


def test_quotes_are_stripped_from_every_field() -> None:
    line = "'7','C1','U','M','28007','M1','28007','es_food','12.50','0'"
    row = only(read_tx(tx_file(line)))
    assert row == Transaction(
        7, "C1", "U", "M", "28007", "M1", "28007", "es_food", Decimal("12.50")
    )
    line = '"7","C1","3","E","z","M1","zm","cat","0.5","1"'
    row = only(read_tx(tx_file(line)))
    assert row == Transaction(7, "C1", "3", "E", "z", "M1", "zm", "cat", Decimal("0.5"))


def test_valid_row_from_banksim_sample() -> None:
    line = "0,'C1093826151','4','M','28007','M348934600','28007','es_transportation',4.55,0"
    row = only(read_tx(tx_file(line)))
    assert row == Transaction(
        0, "C1093826151", "4", "M", "28007", "M348934600", "28007", "es_transportation",
        Decimal("4.55"),
    )  # fmt: skip


# --- validity rules, one column at a time --------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "0,'C1','2','F','28007','M1','28007','es_food',1",  # 9 fields
        "0,'C1','2','F','28007','M1','28007','es_food',1,0,0",  # 11 fields
        "0,'C1','2','F','28,007','M1','28007','es_food',1,0",  # comma inside a quoted value
        "",  # blank line
        "-1,'C1','2','F','28007','M1','28007','es_food',1",  # wrong count wins over bad step
    ],
)
def test_wrong_field_count_has_no_column(line: str) -> None:
    assert rejected_column(line) is None


def test_field_count_message_mentions_counts() -> None:
    row = only(read_tx(tx_file("a,b,c")))
    assert isinstance(row, Rejected)
    assert "10" in row.message and "3" in row.message


@pytest.mark.parametrize(
    ("line", "column"),
    [
        (tx("C1", "M1", step="-1"), "step"),
        (tx("C1", "M1", step="1.5"), "step"),
        (tx("C1", "M1", step=""), "step"),
        (tx("C1", "M1", step="1e3"), "step"),
        (tx("C1", "M1", step=" 1"), "step"),
        (tx("C1", "M1", step="1" * 19), "step"),  # 19 digits: too long
        (tx("", "M1"), "customer"),
        ("0,,'2','F','28007','M1','28007','es_food',1,0", "customer"),
        (tx("C1", "M1", age="7"), "age"),
        (tx("C1", "M1", age=""), "age"),
        (tx("C1", "M1", age="u"), "age"),
        (tx("C1", "M1", age="2 "), "age"),
        (tx("C1", "M1", gender="X"), "gender"),
        (tx("C1", "M1", gender="f"), "gender"),
        (tx("C1", "M1", gender=""), "gender"),
        (tx("C1", ""), "merchant"),
        (tx("C1", "M1", amount="-1"), "amount"),
        (tx("C1", "M1", amount="1e3"), "amount"),
        (tx("C1", "M1", amount="1."), "amount"),
        (tx("C1", "M1", amount=".5"), "amount"),
        (tx("C1", "M1", amount=""), "amount"),
        (tx("C1", "M1", amount="abc"), "amount"),
        (tx("C1", "M1", amount="1,5"), None),  # splits into 11 fields
        (tx("C1", "M1", amount=" 1"), "amount"),
        (tx("C1", "M1", amount="NaN"), "amount"),
        (tx("C1", "M1", amount="1" * 21), "amount"),  # 21 integer digits
        (tx("C1", "M1", amount="1." + "1" * 19), "amount"),  # 19 decimals
        # the first failing check in the documented order is the reason
        (tx("", "", amount="x", age="9", gender="X", step="s"), "step"),
        (tx("", "", amount="x", age="9", gender="X"), "customer"),
        (tx("C1", "", amount="x", age="9", gender="X"), "age"),
        (tx("C1", "", amount="x", gender="X"), "gender"),
        (tx("C1", "", amount="x"), "merchant"),
    ],
)
def test_invalid_transaction_column(line: str, column: str | None) -> None:
    assert rejected_column(line) == column


@pytest.mark.parametrize(
    "line",
    [
        tx("C1", "M1", step="1" * 18),  # 18 digits is the maximum
        tx("C1", "M1", amount="1" * 20),
        tx("C1", "M1", amount="1." + "1" * 18),
        tx("C1", "M1", amount="0"),
        tx("C1", "M1", amount="007.50"),
        tx("C1", "M1", age="U"),
        tx("C1", "M1", age="0"),
        tx("C1", "M1", age="6"),
        tx("C1", "M1", gender="E"),
        tx("C1", "M1", gender="U"),
        tx("C1", "M1", gender="M"),
        "0,'C1','2','F',,'M1',,,1,",  # zip codes, category and fraud are not checked
    ],
)
def test_valid_transaction_edges(line: str) -> None:
    assert isinstance(only(read_tx(tx_file(line))), Transaction)


def test_line_numbers_are_physical_and_header_is_line_one() -> None:
    lines = [
        tx("C1", "M1"),  # line 2
        tx("C1", "M1", amount="-3"),  # line 3
        "",  # line 4: blank
        tx("C2", "M1"),  # line 5
        tx("C3", "M1", gender="Z"),  # line 6
    ]
    rows = read_tx(tx_file(*lines))
    assert [type(r) for r in rows] == [Transaction, Rejected, Rejected, Transaction, Rejected]
    rejected = [r for r in rows if isinstance(r, Rejected)]
    assert [(r.line, r.column, r.raw) for r in rejected] == [
        (3, "amount", lines[1]),
        (4, None, ""),
        (6, "gender", lines[4]),
    ]


def test_amounts_are_exact_decimals() -> None:
    rows = read_tx(tx_file(tx("C1", "M1", "0.10"), tx("C1", "M1", "0.20")))
    amounts = [r.amount for r in rows if isinstance(r, Transaction)]
    assert all(isinstance(a, Decimal) for a in amounts)
    assert sum(amounts, Decimal(0)) == Decimal("0.30")  # 0.1 + 0.2 != 0.3 in binary floats
    big = "12345678901234567890.123456789012345678"
    row = only(read_tx(tx_file(tx("C1", "M1", big))))
    assert row.amount == Decimal(big)  # type: ignore[union-attr]
    assert str(row.amount) == big  # type: ignore[union-attr]


def test_step_is_an_int() -> None:
    row = only(read_tx(tx_file(tx("C1", "M1", step="000123"))))
    assert row.step == 123  # type: ignore[union-attr]


# --- importance ----------------------------------------------------------------------------


def test_importance_valid_rows() -> None:
    rows = read_imp(
        imp_file(
            imp("C1", "M1", "0.5"),
            imp("C1", "M1", "-2"),  # negative weights are allowed
            '"C2","M2",\'3\',x,y',  # quoted weight
            "C3,M3,4,,",  # unchecked columns may be empty
        )
    )
    assert rows == [
        Importance("C1", "M1", Decimal("0.5")),
        Importance("C1", "M1", Decimal("-2")),
        Importance("C2", "M2", Decimal("3")),
        Importance("C3", "M3", Decimal("4")),
    ]
    assert isinstance(rows[0].weight, Decimal)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ("'C1','M1',1,'es_food'", None),
        ("'C1','M1',1,'es_food',0,0", None),
        ("", None),
        ("'','M1',1,'es_food',0", "Source"),
        ("'','',x,'es_food',0", "Source"),
        ("'C1','',1,'es_food',0", "Target"),
        ("'C1','',x,'es_food',0", "Target"),
        ("'C1','M1',,'es_food',0", "Weight"),
        ("'C1','M1',x,'es_food',0", "Weight"),
        ("'C1','M1',1e2,'es_food',0", "Weight"),
        ("'C1','M1',--1,'es_food',0", "Weight"),
        ("'C1','M1',+1,'es_food',0", "Weight"),
        ("'C1','M1',.5,'es_food',0", "Weight"),
        ("'C1','M1'," + "1" * 21 + ",'es_food',0", "Weight"),
    ],
)
def test_invalid_importance_column(line: str, column: str | None) -> None:
    assert importance_column(line) == column


def test_importance_line_numbers() -> None:
    rows = read_imp(imp_file(imp("C1", "M1", "1"), imp("C1", "M1", "z"), imp("C2", "M1", "2")))
    assert [type(r) for r in rows] == [Importance, Rejected, Importance]
    assert rows[1].line == 3  # type: ignore[union-attr]
    assert rows[1].raw == imp("C1", "M1", "z")  # type: ignore[union-attr]
