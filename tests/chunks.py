"""Tiny helpers that write BankSim-format test data the way the publisher lays it out.

ROOT/chunk_<i>.csv/part-00000.csv   header + rows
ROOT/chunk_<i>.csv/_SUCCESS         empty marker (only complete chunks have it)
"""

from __future__ import annotations

from pathlib import Path

TX_HEADER = "step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud"
IMPORTANCE_HEADER = "Source,Target,Weight,typeTrans,fraud"


def tx(
    customer: str,
    merchant: str,
    amount: str = "10",
    gender: str = "F",
    step: int | str = 0,
    age: str = "2",
    category: str = "es_food",
) -> str:
    """One raw BankSim line; text values single-quoted, step/amount/fraud bare.

    >>> tx("C1", "M1", "12.50")
    "0,'C1','2','F','28007','M1','28007','es_food',12.50,0"
    """
    return (
        f"{step},'{customer}','{age}','{gender}','28007',"
        f"'{merchant}','28007','{category}',{amount},0"
    )


def imp(source: str, target: str, weight: str) -> str:
    """One raw importance line."""
    return f"'{source}','{target}',{weight},'es_food',0"


def write_chunks(
    root: Path,
    chunks: list[list[str]] | dict[int, list[str]],
    *,
    complete: bool | list[bool] | dict[int, bool] = True,
) -> Path:
    """Write chunk folders under `root` and return `root`.

    `chunks` is a list (chunk index = position) or a dict {index: rows}. `complete` says which
    chunks get the _SUCCESS marker: one flag for all, or one per chunk (same shape as `chunks`).
    """
    items = dict(enumerate(chunks)) if isinstance(chunks, list) else dict(chunks)
    if isinstance(complete, bool):
        flags = dict.fromkeys(items, complete)
    elif isinstance(complete, list):
        flags = dict(enumerate(complete))
    else:
        flags = dict(complete)
    root.mkdir(parents=True, exist_ok=True)
    for index, rows in items.items():
        folder = root / f"chunk_{index}.csv"
        folder.mkdir()
        text = "".join(line + "\n" for line in [TX_HEADER, *rows])
        (folder / "part-00000.csv").write_text(text, encoding="utf-8")
        if flags[index]:
            (folder / "_SUCCESS").write_text("", encoding="utf-8")
    return root


def write_importance(path: Path, rows: list[str]) -> Path:
    """Write an importance CSV (header + `rows`) at `path` and return `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(line + "\n" for line in [IMPORTANCE_HEADER, *rows])
    path.write_text(text, encoding="utf-8")
    return path
