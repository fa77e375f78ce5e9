"""Mechanism X: publish a transactions file as a paced stream of complete chunks.

Chunk i goes to DEST/chunk_<i>.csv/part-00000.csv (the header plus the next rows, byte for byte
as in the source) and then DEST/chunk_<i>.csv/_SUCCESS, so a reader never sees half a chunk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import IO, Final

from txpatterns.errors import HeaderError, TxpError
from txpatterns.schema import TRANSACTION_COLUMNS, split_line
from txpatterns.store import CHUNK_DIR, PART, SUCCESS, Store, chunk_folder, join

MANIFEST: Final = "_publish.json"


@dataclass(frozen=True)
class ChunkPublished:
    """One chunk made visible to readers."""

    index: int
    rows: int
    bytes: int
    url: str


@dataclass(frozen=True)
class PublishResult:
    """What a publish run did, and where a next run would carry on."""

    first_chunk: int
    chunks: int
    rows: int
    bytes: int
    next_chunk: int
    source_exhausted: bool
    already_published: int


class PublishError(TxpError):
    """The destination or the request cannot be published to as asked."""


def _check_header(line: bytes, source_name: str) -> None:
    text = line.decode("utf-8", errors="replace").rstrip("\r\n").removeprefix("\ufeff")
    found = split_line(text)
    if tuple(found) != TRANSACTION_COLUMNS:
        raise HeaderError(source_name, TRANSACTION_COLUMNS, found if line else None)


def published_chunks(store: Store, dest: str) -> set[int]:
    """The indexes of the chunks under `dest` that hold a `_SUCCESS` marker."""
    if not store.exists(dest):
        return set()
    return {
        int(match.group(1))
        for folder, names in store.list_folders(dest, CHUNK_DIR)
        if SUCCESS in names and (match := CHUNK_DIR.match(folder))
    }


def resume_point(complete: set[int]) -> int:
    """The index of the first chunk that has no `_SUCCESS` marker."""
    index = 0
    while index in complete:
        index += 1
    return index


def _check_manifest(store: Store, dest: str, chunk_rows: int, any_published: bool) -> None:
    url = join(dest, MANIFEST)
    if store.exists(url):
        with store.open_text(url) as f:
            try:
                recorded = json.load(f).get("chunk_rows")
            except (ValueError, AttributeError):
                recorded = None
        if recorded == chunk_rows:
            return
        if any_published:
            raise PublishError(
                f"{dest} was published with {recorded} rows per chunk; publish with "
                f"--chunk-rows {recorded} to continue it, or choose a new destination"
            )
    manifest = {"chunk_rows": chunk_rows, "header": ",".join(TRANSACTION_COLUMNS)}
    store.write_bytes(url, json.dumps(manifest, indent=2).encode() + b"\n")


def _batches(lines: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    while batch := list(islice(lines, size)):
        yield batch


def publish(
    source: IO[bytes],
    source_name: str,
    dest: str,
    store: Store,
    *,
    chunk_rows: int = 10_000,
    interval: float = 1.0,
    start_chunk: int | None = None,
    max_chunks: int | None = None,
    on_chunk: Callable[[ChunkPublished], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishResult:
    """Publish `source` under `dest`, resuming at the first chunk without a marker.

    Chunk j of this run becomes visible `j * interval` seconds after the first, whatever the
    uploads cost, so the stream does not drift.
    """
    if chunk_rows < 1:
        raise PublishError("--chunk-rows must be at least 1")
    if interval < 0:
        raise PublishError("--interval must not be negative")
    header = source.readline()
    _check_header(header, source_name)
    if not header.endswith(b"\n"):
        header += b"\n"
    store.check_bucket(dest)
    complete = published_chunks(store, dest)
    resume = resume_point(complete)
    first = resume if start_chunk is None else start_chunk
    if first > resume:
        raise PublishError(
            f"--start-chunk {first} would leave a gap: chunk {resume} is the first one not "
            f"yet published under {dest}"
        )
    _check_manifest(store, dest, chunk_rows, bool(complete))
    lines = iter(source)
    skipped = sum(1 for _ in islice(lines, first * chunk_rows))
    if skipped < first * chunk_rows and start_chunk is not None:
        raise PublishError(
            f"--start-chunk {first} is past the end of {source_name} "
            f"({skipped:,} rows, {-(-skipped // chunk_rows)} chunks)"
        )
    index, rows, size, published = first, 0, 0, 0
    started = clock()
    exhausted = True
    for batch in _batches(lines, chunk_rows):
        if max_chunks is not None and published >= max_chunks:
            exhausted = False
            break
        delay = started + published * interval - clock()
        if delay > 0:
            sleep(delay)
        folder = join(dest, chunk_folder(index))
        data = header + b"".join(batch)
        store.write_bytes(join(folder, PART), data)
        # The marker is what readers wait for, so it is written only after the part is whole.
        store.write_bytes(join(folder, SUCCESS), b"")
        if on_chunk is not None:
            on_chunk(ChunkPublished(index, len(batch), len(data), folder))
        index, rows, size, published = index + 1, rows + len(batch), size + len(data), published + 1
    return PublishResult(
        first_chunk=first,
        chunks=published,
        rows=rows,
        bytes=size,
        next_chunk=index,
        source_exhausted=exhausted,
        already_published=resume,
    )
