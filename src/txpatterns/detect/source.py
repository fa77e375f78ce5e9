"""A Spark streaming source of complete chunks, built on the Python Data Source API.

Offsets are chunk indexes. The driver lists the input prefix and offers the chunks that hold a
`_SUCCESS` marker, contiguous from the last offset, in ascending order; each chunk is one
partition, read on an executor through fsspec, so no Hadoop S3 connector is needed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from typing import Any, Final

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxFiles,
    SupportsTriggerAvailableNow,
)

from txpatterns.schema import TRANSACTION_COLUMNS, header_fields, numbered_lines
from txpatterns.store import ChunkRef, Store

NAME: Final = "txpatterns_chunks"
SCHEMA: Final = (
    "chunk int, path string, part string, line_no int, line string, header_ok boolean, "
    "marker boolean"
)
# Spark redacts option values whose key matches "secret" in plans and logs.
STORE_OPTION: Final = "store_secret_options"


class ChunkPartition(InputPartition):
    """One chunk: its index, its folder and its part files."""

    def __init__(self, index: int, path: str, parts: tuple[str, ...]) -> None:
        super().__init__(index)
        self.index = index
        self.path = path
        self.parts = parts


def read_chunk(
    store: Store, partition: ChunkPartition, *, with_lines: bool = True
) -> Iterator[pa.RecordBatch]:
    """Yield the lines of one chunk, plus one marker row per part so empty chunks count too.

    Without `with_lines` only the marker rows come: Spark's native reader reads the lines.
    """
    parts = partition.parts or ("",)
    for part in parts:
        lines: list[tuple[int, str]] = []
        if part and with_lines:
            lines = list(numbered_lines(io.StringIO(store.read_text(part), newline="")))
        header_ok = bool(lines) and tuple(header_fields(lines[0][1])) == TRANSACTION_COLUMNS
        if header_ok:
            lines = lines[1:]
        n = len(lines) + 1
        yield pa.RecordBatch.from_arrays(
            [
                pa.array([partition.index] * n, pa.int32()),
                pa.array([partition.path] * n, pa.string()),
                pa.array([part] * n, pa.string()),
                pa.array([0] + [number for number, _ in lines], pa.int32()),
                pa.array([""] + [line for _, line in lines], pa.string()),
                pa.array([header_ok] * n, pa.bool_()),
                pa.array([True] + [False] * len(lines), pa.bool_()),
            ],
            names=["chunk", "path", "part", "line_no", "line", "header_ok", "marker"],
        )


class ChunkStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Offsets are {"chunk": next index to read}."""

    def __init__(self, options: dict[str, str]) -> None:
        self.input = options["path"]
        self.start = int(options.get("start_chunk", "0"))
        self.max_chunks = int(options.get("max_chunks_per_batch", "0"))
        self.with_lines = options.get("reader", "python") == "python"
        self.store = Store(json.loads(options.get(STORE_OPTION, "{}")))
        self.target: int | None = None
        self.known: dict[int, ChunkRef] = {}

    def _complete_from(self, start: int) -> int:
        chunks = self.store.list_chunks(self.input, missing_ok=True)
        self.known = {c.index: c for c in chunks}
        end = start
        while end in self.known:
            end += 1
        return end

    def initialOffset(self) -> dict[str, int]:
        return {"chunk": self.start}

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxFiles(self.max_chunks) if self.max_chunks > 0 else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        # Chunks published after this moment wait for the next run.
        self.target = self._complete_from(self.start)

    def latestOffset(self, start: dict[str, int], limit: ReadLimit) -> dict[str, int]:
        first = int(start["chunk"])
        end = self._complete_from(first)
        if self.target is not None:
            end = min(end, max(self.target, first))
        if isinstance(limit, ReadMaxFiles):
            end = min(end, first + limit.max_files)
        return {"chunk": end}

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> Sequence[InputPartition]:
        first, last = int(start["chunk"]), int(end["chunk"])
        missing = [i for i in range(first, last) if i not in self.known]
        if missing:
            self._complete_from(first)
        return [
            ChunkPartition(i, self.known[i].url, self.known[i].parts) for i in range(first, last)
        ]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, ChunkPartition)
        return read_chunk(self.store, partition, with_lines=self.with_lines)

    def commit(self, end: dict[str, int]) -> None:
        pass


class ChunkSource(DataSource):
    """`spark.readStream.format("txpatterns_chunks").option("path", INPUT).load()`."""

    @classmethod
    def name(cls) -> str:
        return NAME

    def schema(self) -> str:
        return SCHEMA

    def streamReader(self, schema: Any) -> DataSourceStreamReader:
        return ChunkStreamReader(dict(self.options))
