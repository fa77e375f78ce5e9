"""`txpatterns run`: the whole pipeline on one machine, publisher and detector side by side."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from txpatterns.detect.runner import Detector, Progress
from txpatterns.patterns import Thresholds
from txpatterns.publish import publish
from txpatterns.settings import DetectSettings
from txpatterns.state.db import drop_namespace
from txpatterns.store import Store


@dataclass(frozen=True)
class RunLayout:
    """Where `run` keeps its data, stream, output and checkpoints under the working folder."""

    workdir: Path
    rows: int
    seed: int

    @property
    def data(self) -> Path:
        return self.workdir / f"data-{self.rows}-{self.seed}"

    @property
    def transactions(self) -> Path:
        return self.data / "transactions.csv"

    @property
    def importance(self) -> Path:
        return self.data / "CustomerImportance.csv"

    @property
    def stream(self) -> Path:
        return self.workdir / "streaming"

    @property
    def checkpoint(self) -> Path:
        return self.workdir / "checkpoints" / "run"


@dataclass
class RunStatus:
    """Live figures for the progress display."""

    published: int = 0
    publisher_done: bool = False
    interrupted: bool = False
    detector: Progress = field(default_factory=Progress)
    started: float = field(default_factory=time.monotonic)


def ensure_data(layout: RunLayout, store: Store) -> bool:
    """Generate the dataset unless it is already there; True if it was generated now."""
    from txpatterns.generate import generate

    if layout.transactions.exists() and layout.importance.exists():
        return False
    with (
        store.write_text(str(layout.transactions)) as tx,
        store.write_text(str(layout.importance)) as imp,
    ):
        generate(tx, imp, rows=layout.rows, seed=layout.seed)
    return True


def run_pipeline(
    layout: RunLayout,
    detect: DetectSettings,
    thresholds: Thresholds,
    store: Store,
    spark: Any,
    *,
    dsn: str,
    chunk_rows: int,
    interval: float,
    on_status: Callable[[RunStatus], None] | None = None,
    stop: threading.Event | None = None,
) -> RunStatus:
    """Start afresh, publish the dataset while the detector runs, and stop once all is applied."""
    for folder in (layout.stream, layout.checkpoint):
        shutil.rmtree(folder, ignore_errors=True)
    drop_namespace(dsn, detect.namespace)
    settings = replace(
        detect,
        input=str(layout.stream / "input"),
        output=str(layout.stream / "output"),
        quarantine=str(layout.stream / "quarantine"),
        importance=str(layout.importance),
        checkpoint=str(layout.checkpoint),
    )
    status = RunStatus()
    stop = stop or threading.Event()
    failure: list[BaseException] = []

    def publisher() -> None:
        try:
            with store.open_source(str(layout.transactions)) as (source, _):
                publish(
                    source,
                    str(layout.transactions),
                    str(layout.stream / "input"),
                    store,
                    chunk_rows=chunk_rows,
                    interval=interval,
                    on_chunk=lambda chunk: setattr(status, "published", chunk.index + 1),
                )
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
            stop.set()
        finally:
            status.publisher_done = True

    def on_progress(progress: Progress) -> None:
        status.detector = progress
        if status.publisher_done and progress.chunks_applied >= status.published:
            stop.set()
        if on_status is not None:
            on_status(status)

    detector = Detector(settings, thresholds, store, dsn=dsn, on_progress=on_progress)
    try:
        thread = threading.Thread(target=publisher, name="publisher", daemon=True)
        thread.start()

        def watch() -> None:
            while not stop.wait(0.5):
                if status.publisher_done and status.detector.chunks_applied >= status.published:
                    stop.set()
                if on_status is not None:
                    on_status(status)

        threading.Thread(target=watch, name="watch", daemon=True).start()
        detector.run(spark, until_idle=False, stop=stop)
        if status.publisher_done:
            thread.join()
        else:
            status.interrupted = True
    finally:
        detector.close()
    if failure:
        raise failure[0]
    status.detector = detector.progress
    return status
