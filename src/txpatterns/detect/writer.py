"""Detection output files, exactly once.

A file's detections are assigned to it in PostgreSQL before it is written; after a crash,
every file that is recorded but not complete is written again under the same name, with the
same rows, so that each detection lands in exactly one complete file.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from txpatterns.detect.faults import Crash, no_crash
from txpatterns.patterns import ACTION_TYPES
from txpatterns.schema import OUTPUT_COLUMNS, excel_safe
from txpatterns.state.store import OutputFile, StateStore
from txpatterns.store import PART, SUCCESS, Store, join

TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"


def file_name(created_at: datetime, seq: int, zone: ZoneInfo) -> str:
    """`pattern_detected_<YYYYMMDDTHHMMSS>_<n>.csv`, the time in the output zone."""
    return f"pattern_detected_{created_at.astimezone(zone):%Y%m%dT%H%M%S}_{seq}.csv"


class OutputWriter:
    """Turns pending detections into output files of `batch_size` rows."""

    def __init__(
        self,
        state: StateStore,
        store: Store,
        output: str,
        *,
        zone: ZoneInfo,
        batch_size: int = 50,
        max_wait: timedelta = timedelta(seconds=5),
        crash: Crash | None = None,
    ) -> None:
        self.state = state
        self.store = store
        self.output = output
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.zone = zone
        self.crash = crash or no_crash
        self.files_written = 0

    def recover(self) -> int:
        """Write again every file recorded but not marked complete; return how many."""
        incomplete = self.state.incomplete_files()
        for f in incomplete:
            self._write(f)
        return len(incomplete)

    def flush(self, *, partial: bool = False) -> int:
        """Write every full file; with `partial`, or once the oldest waited max_wait, the rest."""
        written = 0
        while True:
            count, oldest = self.state.pending()
            overdue = oldest is not None and datetime.now(UTC) - oldest >= self.max_wait
            if count == 0 or (count < self.batch_size and not (partial or overdue)):
                return written
            record = self.state.assign_file(self.batch_size, self._name)
            if record is None:
                return written
            self.crash("after-file-recorded")
            self._write(record)
            written += 1

    def _name(self, seq: int, created_at: datetime) -> str:
        return file_name(created_at, seq, self.zone)

    def _write(self, record: OutputFile) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(OUTPUT_COLUMNS)
        for y_start, detected_at, pattern_id, customer, merchant in self.state.file_detections(
            record.seq
        ):
            writer.writerow(
                [
                    y_start.astimezone(self.zone).strftime(TIME_FORMAT),
                    detected_at.astimezone(self.zone).strftime(TIME_FORMAT),
                    pattern_id,
                    ACTION_TYPES[pattern_id],
                    excel_safe(customer),
                    excel_safe(merchant),
                ]
            )
        folder = join(self.output, record.name)
        data = text.getvalue().encode("utf-8")
        part = join(folder, PART)
        self.crash("mid-file", lambda: self.store.write_bytes(part, data[: len(data) // 2]))
        self.store.write_bytes(part, data)
        self.store.write_bytes(join(folder, SUCCESS), b"")
        self.crash("before-file-complete")
        self.state.complete_file(record.seq)
        self.files_written += 1
