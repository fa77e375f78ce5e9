"""Run the detector: state and importance up front, then the stream, then the last files."""

from __future__ import annotations

import csv
import io
import json
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from txpatterns.detect.faults import Crash, no_crash
from txpatterns.errors import TxpError
from txpatterns.patterns import Thresholds
from txpatterns.schema import Rejected, read_importance
from txpatterns.settings import DetectSettings
from txpatterns.state.db import StateError
from txpatterns.state.store import StateStore, digest_blocks
from txpatterns.store import SUCCESS, Store, is_local, join


@dataclass
class Progress:
    """What the detector has done so far in this run."""

    batches: int = 0
    chunks_applied: int = 0
    chunks_skipped: int = 0
    last_chunk: int | None = None
    valid_rows: int = 0
    invalid_rows: int = 0
    new_detections: int = 0
    files_written: int = 0
    detections: dict[str, int] = field(default_factory=dict)
    spark_seconds: float = 0.0
    database_seconds: float = 0.0
    output_seconds: float = 0.0


class DetectError(TxpError):
    """The detector stopped on an error it cannot recover from."""


def quarantine_location(settings: DetectSettings, output: str) -> str:
    """The quarantine prefix: as set, or a folder named `quarantine` beside the output."""
    if settings.quarantine:
        return settings.quarantine
    parent = output.rstrip("/").rsplit("/", 1)[0] if "/" in output.rstrip("/") else "."
    return join(parent, "quarantine")


def _load_importance(state: StateStore, store: Store, url: str, quarantine: str) -> int:
    # Two streaming passes, so memory stays flat whatever the file's size: the digest tells
    # whether this namespace has loaded this very file already.
    with store.open_source(url) as (stream, _):
        digest = digest_blocks(iter(lambda: stream.read(1 << 20), b""))
    if state.meta("importance_digest") == digest:
        return 0
    rejected: list[Rejected] = []

    def valid_rows(text: Any) -> Any:
        for row in read_importance(text, url):
            if isinstance(row, Rejected):
                rejected.append(row)
            else:
                yield row

    with store.open_source(url) as (stream, _):
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        loaded = state.load_importance(valid_rows(text), digest)
    if rejected:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["line", "column", "reason", "raw"])
        writer.writerows([r.line, r.column or "", r.message, r.raw] for r in rejected)
        store.write_bytes(join(quarantine, "importance.csv"), out.getvalue().encode("utf-8"))
    return loaded


class Detector:
    """One detector process on one namespace."""

    def __init__(
        self,
        settings: DetectSettings,
        thresholds: Thresholds,
        store: Store,
        *,
        dsn: str,
        crash: Crash = no_crash,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        if not (settings.input and settings.output and settings.importance):
            raise DetectError("detect needs --input, --output and --importance (or settings)")
        self.settings = settings
        self.input: str = settings.input
        self.output: str = settings.output
        self.importance: str = settings.importance
        self.quarantine = quarantine_location(settings, self.output)
        self.thresholds = thresholds
        self.store = store
        self.crash = crash
        self.on_progress = on_progress
        self.progress = Progress()
        self.y_start = datetime.now(UTC).replace(microsecond=0)
        self.lock = threading.RLock()
        self.state = StateStore(dsn, settings.namespace)
        if not self.state.acquire_writer_lock():
            self.state.close()
            raise StateError(
                f"another detector is running on namespace {settings.namespace!r} "
                "(it holds the namespace's PostgreSQL advisory lock); stop it first, or use "
                "another --namespace"
            )
        from txpatterns.detect.writer import OutputWriter

        self.writer = OutputWriter(
            self.state,
            store,
            self.output,
            zone=ZoneInfo(settings.timezone),
            batch_size=settings.batch_size,
            max_wait=timedelta(seconds=float(settings.max_wait)),
            crash=crash,
        )
        self.applier = Applier()
        self.started = False

    def close(self) -> None:
        self.applier.stop()
        self.state.close()

    def prepare(self) -> None:
        """Check the thresholds, load the importance file, finish any interrupted file."""
        for url in (self.input, self.output, self.quarantine):
            self.store.check_bucket(url)
        self.state.check_thresholds(self.thresholds)
        _load_importance(self.state, self.store, self.importance, self.quarantine)
        self.progress.files_written += self.writer.recover()
        self.progress.detections = self.state.detection_counts()

    def start(self) -> None:
        """Begin `prepare` on the applier thread, so that it runs while Spark starts."""
        if not self.started:
            self.started = True
            self.applier.put(self._prepare_locked)

    def _prepare_locked(self) -> None:
        with self.lock:
            self.prepare()

    def checkpoint(self) -> str:
        if self.settings.checkpoint:
            return self.settings.checkpoint
        return str(Path(self.settings.workdir) / "checkpoints" / self.settings.namespace)

    def process_batch(self, lines: Any, batch_id: int) -> None:
        """foreachBatch: the batch's deltas from Spark, handed to the applier thread.

        The applier applies them while Spark reads the next batch; this returns once the
        previous batch has been taken up, so at most one batch waits. Spark may then commit
        the batch before it is applied: the ledger, not the checkpoint, says what is applied,
        and after a restart the source first re-reads from the ledger's next chunk.
        """
        from txpatterns.detect import batch

        self.applier.check()
        started = time.perf_counter()
        # Chunks already in the ledger (a batch replayed after a crash) are skipped when
        # applied; their quarantine files are written again with the same rows.
        deltas = batch.collect(lines, native=self.settings.reader == "native")
        if not deltas.chunks:
            return
        if deltas.rejected.num_rows:
            deltas.write_quarantine(self.store, self.quarantine)
        spark_seconds = time.perf_counter() - started
        self.progress.spark_seconds += spark_seconds
        self.applier.put(lambda: self._apply(deltas, batch_id, spark_seconds))

    def _apply(self, deltas: Any, batch_id: int, spark_seconds: float) -> None:
        """Apply a batch's chunks in index order, one transaction each, then write files."""
        with self.lock:
            database_started = time.perf_counter()
            self.state.stage(deltas.stage_csv())
            self.crash("after-stage")
            share = Decimal(spark_seconds / len(deltas.chunks)).quantize(Decimal("0.001"))
            for totals in deltas.chunks:
                new = self.state.apply_chunk(
                    totals,
                    self.thresholds,
                    batch_id=batch_id,
                    y_start=self.y_start,
                    spark_seconds=share,
                    published_at=self._published_at(totals.path),
                )
                if new is None:
                    self.progress.chunks_skipped += 1
                    continue
                self.crash("after-commit")
                p = self.progress
                p.chunks_applied += 1
                p.last_chunk = totals.index
                p.valid_rows += totals.valid
                p.invalid_rows += totals.invalid
                p.new_detections += new
            self.progress.batches += 1
            output_started = time.perf_counter()
            self.progress.database_seconds += output_started - database_started
            self.progress.files_written += self.writer.flush()
            self.progress.output_seconds += time.perf_counter() - output_started
            self.progress.detections = self.state.detection_counts()
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def _published_at(self, chunk_url: str) -> datetime | None:
        # When the chunk's marker appeared, for the lag figures; a chunk is applied without it.
        try:
            return self.store.modified(join(chunk_url, SUCCESS))
        except (TxpError, OSError, NotImplementedError):
            return None

    def flush_due(self, *, partial: bool = False) -> None:
        """Write the files that are full, overdue, or (with `partial`) all that is pending."""
        with self.lock:
            self.progress.files_written += self.writer.flush(partial=partial)

    def run(self, spark: Any, *, until_idle: bool, stop: threading.Event | None = None) -> Progress:
        """Run the stream until idle, or until `stop` is set; then write what is pending."""
        from txpatterns.detect.batch import warm_up

        self.start()
        try:
            warm_up(spark)  # while the applier prepares
        except Exception as exc:
            self.applier.drain()  # an error in preparing says more
            raise DetectError(
                "Spark could not run the detector's Python code on its executors (they need "
                f"this Python with txpatterns and pyarrow installed): {_first_line(exc)}"
            ) from exc
        self.applier.drain()
        stream = (
            spark.readStream.format("txpatterns_chunks")
            .option("path", self.input)
            .option("start_chunk", str(self.state.next_chunk()))
            .option("run", uuid.uuid4().hex)
            .option("max_chunks_per_batch", str(self.settings.max_chunks_per_batch))
            .option("tasks", str(spark.sparkContext.defaultParallelism))
            .option("reader", self.settings.reader)
            .option("store_secret_options", json.dumps(self.store.options))
            .load()
        )
        checkpoint = self.checkpoint()
        if is_local(checkpoint):
            Path(checkpoint).mkdir(parents=True, exist_ok=True)
        writer = stream.writeStream.foreachBatch(self.process_batch).option(
            "checkpointLocation", checkpoint
        )
        if until_idle:
            query = writer.trigger(availableNow=True).start()
            self._await(query, stop)
        else:
            seconds = float(self.settings.trigger)
            query = writer.trigger(processingTime=f"{max(seconds, 0.05)} seconds").start()
            self._await(query, stop)
        self.applier.drain()
        self.flush_due(partial=True)
        return self.progress

    def _await(self, query: Any, stop: threading.Event | None) -> None:
        from pyspark.errors import StreamingQueryException

        try:
            while query.isActive:
                if self.applier.failed():
                    query.stop()
                    break
                if stop is not None and stop.is_set():
                    # Let the batch in hand finish before stopping.
                    while query.status.get("isTriggerActive") and query.isActive:
                        time.sleep(0.05)
                    query.stop()
                    break
                query.awaitTermination(0.25)
                self.flush_due()
            query.awaitTermination()
        except StreamingQueryException as exc:
            self.applier.stop()
            self.applier.check()
            raise DetectError(f"the detector stopped: {_first_line(exc)}") from exc
        self.applier.check()


class Applier:
    """One thread that runs the database work of micro-batches, in order, one at a time."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="txpatterns-applier", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (work := self.queue.get()) is not None:
            try:
                if self.error is None:
                    work()
            except BaseException as exc:  # reported to the stream's thread by check()
                self.error = exc
            finally:
                self.queue.task_done()
        self.queue.task_done()

    def put(self, work: Callable[[], None]) -> None:
        """Queue a batch's work; waits while another batch is already waiting."""
        self.check()
        self.queue.put(work)

    def failed(self) -> bool:
        return self.error is not None

    def check(self) -> None:
        """Raise the error that stopped the applier, if any: ours as they are (they say what to
        do), others as a DetectError that names them."""
        if self.error is None:
            return
        if isinstance(self.error, TxpError):
            raise self.error
        raise DetectError(
            f"the detector stopped: {type(self.error).__name__}: {self.error}"
        ) from self.error

    def drain(self) -> None:
        """Wait until every queued batch is applied; raise if one failed."""
        if self.thread.is_alive():
            self.queue.join()
        self.check()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()


_ERROR_LINE = re.compile(r"^\s*([\w.]*(?:Error|Exception)): (.+)$")


def _first_line(exc: BaseException) -> str:
    """The most telling line of a streaming failure: our own error's message when the
    exception carries one (from foreachBatch or an executor), else its first line."""
    text = str(exc).strip()
    ours = [m.group(2) for m in map(_ERROR_LINE.match, text.splitlines())
            if m and m.group(1).startswith("txpatterns.")]  # fmt: skip
    if ours:
        return ours[-1]
    causes = [m.group(0).strip() for m in map(_ERROR_LINE.match, text.splitlines()) if m]
    if causes:
        return causes[-1]
    for line in text.splitlines():
        if line.strip() and not line.startswith("\tat "):
            return line.strip()
    return type(exc).__name__
