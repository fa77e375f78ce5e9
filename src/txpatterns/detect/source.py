"""A Spark streaming source of complete chunks, built on the Python Data Source API.

Offsets are chunk indexes (tagged with the run, see ChunkStreamReader). The driver lists the
input prefix and offers the chunks that hold a `_SUCCESS` marker, contiguous from the last
offset, in ascending order; a micro-batch's chunks are split into one run per core, each read
on an executor through fsspec (so no Hadoop S3 connector is needed) and turned into pair deltas
there (deltas.py).

This module is imported by every Python process Spark starts for the source, including the
ones that only plan; Arrow and the delta code are imported only where chunks are read, which
keeps each planning process about 100 MB smaller.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxFiles,
    SupportsTriggerAvailableNow,
)

from txpatterns.store import ChunkRef, Store

if TYPE_CHECKING:
    import pyarrow as pa

NAME: Final = "txpatterns_chunks"
# Every row has one kind: `chunk` (one per chunk, so that empty chunks count), `part` (one per
# part file), `pair` (a chunk's deltas for one merchant and customer) or `rejected` (an invalid
# line). Columns that do not apply to a kind are null.
SCHEMA: Final = (
    "chunk int, path string, kind string, part string, merchant string, customer string, "
    "n long, amount string, has_f boolean, has_m boolean, line_no int, column string, "
    "reason string, line string"
)
# Spark redacts option values whose key matches "secret" in plans and logs.
STORE_OPTION: Final = "store_secret_options"


class ChunkPartition(InputPartition):
    """A run of consecutive chunks read by one task: each with its folder and part files."""

    def __init__(self, number: int, chunks: tuple[ChunkRef, ...]) -> None:
        super().__init__(number)
        self.chunks = chunks


def split_evenly(chunks: Sequence[ChunkRef], tasks: int) -> list[tuple[ChunkRef, ...]]:
    """Consecutive runs of `chunks`, as many as `tasks` (fewer if there are fewer chunks)."""
    tasks = max(1, min(tasks, len(chunks)))
    size, extra = divmod(len(chunks), tasks)
    runs, start = [], 0
    for number in range(tasks):
        end = start + size + (1 if number < extra else 0)
        runs.append(tuple(chunks[start:end]))
        start = end
    return runs


def read_chunk(
    store: Store, chunk: ChunkRef, *, with_lines: bool = True
) -> Iterator[pa.RecordBatch]:
    """Yield one chunk's rows: its `chunk` row, a `part` row per part file and, with
    `with_lines`, each part's pair deltas and rejected rows (else Spark's own reader reads them).
    """
    import pyarrow as pa

    from txpatterns.detect.deltas import chunk_row, part_deltas, part_row

    yield chunk_row(chunk.index, chunk.url)
    for part in chunk.parts:
        yield part_row(chunk.index, chunk.url, part)
        if with_lines:
            yield part_deltas(chunk.index, chunk.url, part, store.read_text(part))
            # Arrow's allocator keeps freed memory for reuse; a task reads many chunks.
            pa.default_memory_pool().release_unused()


class ChunkStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Offsets are {"chunk": next index to read, "run": an id of this run of the detector}.

    The ledger, not the checkpoint, says where a run starts: the detector applies a batch
    after Spark has committed it, so after a crash the checkpoint may be ahead of the ledger
    (or behind it, if it is old). "run" differs from every offset in the checkpoint, so Spark
    always plans a first batch, and that batch starts at the ledger's next chunk (the
    `start_chunk` option) whatever the checkpoint says.
    """

    def __init__(self, options: dict[str, str]) -> None:
        self.input = options["path"]
        self.start = int(options.get("start_chunk", "0"))
        self.run = options.get("run", "")
        self.max_chunks = int(options.get("max_chunks_per_batch", "0"))
        self.tasks = int(options.get("tasks", "2"))
        self.with_lines = options.get("reader", "python") == "python"
        self.store = Store(json.loads(options.get(STORE_OPTION, "{}")))
        self.target: int | None = None
        self.known: dict[int, ChunkRef] = {}
        self.rewound = False

    def _complete_from(self, start: int) -> int:
        chunks = self.store.list_chunks(self.input, missing_ok=True)
        self.known = {c.index: c for c in chunks}
        end = start
        while end in self.known:
            end += 1
        return end

    def initialOffset(self) -> dict[str, Any]:
        return {"chunk": self.start, "run": self.run}

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxFiles(self.max_chunks) if self.max_chunks > 0 else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        # Chunks published after this moment wait for the next run.
        self.target = self._complete_from(self.start)

    def latestOffset(self, start: dict[str, Any], limit: ReadLimit) -> dict[str, Any]:
        first = int(start["chunk"]) if self.rewound else self.start
        end = self._complete_from(first)
        if self.target is not None:
            end = min(end, max(self.target, first))
        if isinstance(limit, ReadMaxFiles):
            end = min(end, first + limit.max_files)
        return {"chunk": end, "run": self.run}

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> Sequence[InputPartition]:
        first, last = int(start["chunk"]), int(end["chunk"])
        if not self.rewound:
            self.rewound = True
            first = self.start
        missing = [i for i in range(first, last) if i not in self.known]
        if missing:
            self._complete_from(first)
        # A task costs Spark about 0.15 s beyond its work, so a batch has one task per core
        # rather than one per chunk.
        runs = split_evenly([self.known[i] for i in range(first, last)], self.tasks)
        return [ChunkPartition(number, run) for number, run in enumerate(runs)]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, ChunkPartition)
        for chunk in partition.chunks:
            yield from read_chunk(self.store, chunk, with_lines=self.with_lines)

    def commit(self, end: dict[str, Any]) -> None:
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
