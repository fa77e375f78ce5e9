"""Compare the detections a pipeline wrote with the reference engine's, key by key."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from txpatterns.errors import HeaderError
from txpatterns.patterns import ACTION_TYPES
from txpatterns.reference import Detection
from txpatterns.schema import EMIT_COLUMNS, OUTPUT_COLUMNS, OUTPUT_FOLDER, excel_safe
from txpatterns.store import LOCAL, SUCCESS, Store, join

Key = tuple[str, str, str]


@dataclass
class OutputFiles:
    """The detection keys found in an output prefix, as many times as they were written."""

    keys: Counter[Key] = field(default_factory=Counter)
    complete: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    # (file, line, message) for rows that name no known pattern or the wrong ActionType.
    problems: list[tuple[str, int, str]] = field(default_factory=list)


@dataclass
class Diff:
    """How an output prefix differs from the reference: empty lists mean exact agreement."""

    missing: list[Detection]
    extra: list[Key]
    duplicated: list[tuple[Key, int]]
    output: OutputFiles

    @property
    def agrees(self) -> bool:
        return not (self.missing or self.extra or self.duplicated or self.output.problems)


def read_output_file(file: TextIO, name: str, into: OutputFiles) -> None:
    """Add the keys of one detection CSV to `into`."""
    reader = csv.reader(file)
    header = next(reader, None)
    if header is None or tuple(h.removeprefix("\ufeff") for h in header) != OUTPUT_COLUMNS:
        raise HeaderError(name, OUTPUT_COLUMNS, header)
    for row in reader:
        if len(row) != len(OUTPUT_COLUMNS):
            into.problems.append((name, reader.line_num, f"expected 6 fields, found {len(row)}"))
            continue
        _, _, pattern_id, action_type, customer, merchant = row
        if ACTION_TYPES.get(pattern_id) != action_type:
            into.problems.append(
                (name, reader.line_num, f"pattern {pattern_id!r} with ActionType {action_type!r}")
            )
            continue
        into.keys[(pattern_id, customer, merchant)] += 1


def read_output(url: str, store: Store = LOCAL) -> OutputFiles:
    """Read every complete `pattern_detected_*.csv/` folder under `url`."""
    found = OutputFiles()
    for folder, names in store.list_folders(url, OUTPUT_FOLDER):
        folder_url = join(url, folder)
        if SUCCESS not in names:
            found.incomplete.append(folder_url)
            continue
        found.complete.append(folder_url)
        for name in names:
            if name.startswith("part-") and name.endswith(".csv"):
                part = join(folder_url, name)
                with store.open_text(part) as f:
                    read_output_file(f, part, found)
    return found


def compare(reference: Iterable[Detection], output: OutputFiles) -> Diff:
    """Diff the reference detections against the keys found in the output."""
    # Output files hold the spreadsheet-safe form of the names.
    expected = {
        (d.pattern_id, excel_safe(d.customer), excel_safe(d.merchant)): d for d in reference
    }
    return Diff(
        missing=[d for key, d in sorted(expected.items()) if key not in output.keys],
        extra=sorted(key for key in output.keys if key not in expected),
        duplicated=sorted((key, n) for key, n in output.keys.items() if n > 1),
        output=output,
    )


def write_detections(file: TextIO, detections: Iterable[Detection]) -> int:
    """Write detections as CSV with the `--emit` header; return how many were written."""
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(EMIT_COLUMNS)
    count = 0
    for d in detections:
        writer.writerow(
            [d.pattern_id, d.action_type, excel_safe(d.customer), excel_safe(d.merchant),
             d.chunk_index]
        )  # fmt: skip
        count += 1
    return count
