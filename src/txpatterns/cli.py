"""The `txpatterns` command line: each command parses flags, builds Settings once and calls
one library function; domain errors become a clean message and a non-zero exit code."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Final, TypeVar

import click
from tqdm import tqdm

from txpatterns import __version__, store
from txpatterns.errors import TxpError
from txpatterns.patterns import ACTION_TYPES, PRESETS
from txpatterns.schema import WRONG_HEADER
from txpatterns.settings import KEYS_BY_NAME, Settings, build, render

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CONFIG = "txpatterns.toml"
EXIT_DIFFERENT = 1  # verify: the output disagrees with the reference
EXIT_ERROR = 2  # bad usage, settings or input: the message says what to fix


class UserError(click.ClickException):
    """An error the user can fix; printed without a traceback."""

    exit_code = EXIT_ERROR


class Group(click.Group):
    """A command group that turns domain errors into UserError and Ctrl-C into exit 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TxpError as exc:
            raise UserError(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


def settings_options(*, flags: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Add --config, --preset and --set to a command.

    `flags` maps the command's own option names to the settings they set, so that those
    options take part in the settings precedence and are validated in one place.
    """
    flag_keys = dict(flags or {})

    def decorate(command: F) -> F:
        @click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help=f"Settings file (TOML). Default: ./{DEFAULT_CONFIG} when present.",
        )
        @click.option(
            "--preset",
            type=click.Choice(list(PRESETS)),
            help="Threshold preset; explicit threshold settings override it.",
        )
        @click.option(
            "--set",
            "assignments",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override one setting, e.g. --set patterns.child.min_txns=5 (repeatable).",
        )
        @functools.wraps(command)
        def wrapper(
            *args: Any,
            config_file: Path | None,
            preset: str | None,
            assignments: tuple[str, ...],
            **kwargs: Any,
        ) -> Any:
            layer: dict[str, object | None] = {"patterns.preset": preset}
            for assignment in assignments:
                name, sep, value = assignment.partition("=")
                if not sep or name.strip() not in KEYS_BY_NAME:
                    known = ", ".join(KEYS_BY_NAME)
                    raise UserError(
                        f"--set {assignment!r}: expected KEY=VALUE with KEY one of {known}"
                    )
                layer[name.strip()] = value
            for option, key in flag_keys.items():
                layer[key] = kwargs.pop(option)
            return command(*args, settings=load_settings(config_file, layer), **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


log_format_option = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Progress as human lines, or one JSON object a line for log shippers.",
)


def make_store(settings: Settings) -> store.Store:
    """The object store the settings describe."""
    objects = store.s3_store(
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key,
    )
    if settings.drive_download_url:
        objects = replace(objects, drive_download_url=settings.drive_download_url)
    return objects


def load_settings(config_file: Path | None, flags: dict[str, object | None]) -> Settings:
    """Build the one Settings object from the settings file, the environment and the flags."""
    path = config_file
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = Path(DEFAULT_CONFIG)
    text = None
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read settings file {path}: {exc.strerror}") from None
    return build(file_text=text, file_name=str(path), env=dict(os.environ), flags=flags)


@contextmanager
def progress_bar(total: int | None, unit: str, desc: str) -> Iterator[tqdm]:
    """A progress bar on stderr when it is a terminal, nothing otherwise."""
    with tqdm(
        total=total, unit=unit, desc=desc, disable=None, unit_scale=True, file=sys.stderr
    ) as bar:
        yield bar


@click.group(
    cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="txpatterns")
def cli() -> None:
    """Detect behavioural patterns (UPGRADE, CHILD, DEI-NEEDED) in streams of payment
    transactions, exactly as docs/patterns.md specifies.

    Settings come from built-in defaults, then ./txpatterns.toml (or --config FILE), then
    TXP_* environment variables, then flags. Exit codes: 0 success, 1 verify found
    differences, 2 bad usage, settings or input, 130 interrupted.
    """


@cli.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    help="Folder to write transactions.csv and CustomerImportance.csv into.",
)
@click.option(
    "--rows",
    default=594_643,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of transactions.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Random seed; the same seed gives the same files.",
)
@click.option(
    "--weight-mode",
    type=click.Choice(["amount", "independent"]),
    default="amount",
    show_default=True,
    help="Importance Weight equal to the amount (as BankSim), or drawn independently.",
)
@settings_options()
def generate(settings: Settings, out_dir: str, rows: int, seed: int, weight_mode: str) -> None:
    """Write a BankSim-shaped transactions file and its importance file.

    The files follow the raw BankSim format (single-quoted text values) and the published
    BankSim statistics; they are the same for the same --rows and --seed.

    Example:

        txpatterns generate --out data --rows 100000 --seed 7
    """
    from txpatterns.generate import generate as run_generate

    objects = make_store(settings)
    transactions = store.join(out_dir, "transactions.csv")
    importance = store.join(out_dir, "CustomerImportance.csv")
    with (
        progress_bar(rows, "rows", "generate") as bar,
        objects.write_text(transactions) as tx_file,
        objects.write_text(importance) as imp_file,
    ):
        stats = run_generate(
            tx_file,
            imp_file,
            rows=rows,
            seed=seed,
            weight_mode=weight_mode,  # type: ignore[arg-type]
            progress=bar.update,
        )
    click.echo(
        f"Wrote {stats.rows:,} transactions ({stats.customers:,} customers, {stats.merchants} "
        f"merchants, {stats.pairs:,} customer-merchant pairs) to {transactions}\n"
        f"Wrote {stats.rows:,} importance rows to {importance}"
    )


@cli.command()
@click.option(
    "--input",
    "input_url",
    required=True,
    help="Chunk folder as the publisher writes it (chunk_<i>.csv/part-00000.csv + _SUCCESS).",
)
@click.option(
    "--importance", required=True, help="Importance CSV (Source,Target,Weight,typeTrans,fraud)."
)
@click.option(
    "--output", "output_url", help="Detection output folder to check against the reference."
)
@click.option("--emit", "emit_file", help="Write the reference detections to this CSV file.")
@settings_options()
def verify(
    settings: Settings,
    input_url: str,
    importance: str,
    output_url: str | None,
    emit_file: str | None,
) -> None:
    """Replay the chunks with the reference engine; with --output, diff the pipeline's detections.

    Without --output it prints the reference detections per pattern. With --output it exits 0
    only when every detection is present exactly once and nothing else is, and 1 otherwise.

    Example:

        txpatterns verify --input txp-data/input --importance data/CustomerImportance.csv \\
            --output txp-data/output
    """
    if not report_verification(
        settings, make_store(settings), input_url, importance, output_url, emit_file
    ):
        sys.exit(EXIT_DIFFERENT)


def report_verification(
    settings: Settings,
    objects: store.Store,
    input_url: str,
    importance: str,
    output_url: str | None,
    emit_file: str | None = None,
) -> bool:
    """Print the reference replay and, given an output, its diff; False when they differ."""
    from txpatterns import reference
    from txpatterns import verify as verification

    chunks = objects.list_chunks(input_url)
    if not chunks:
        raise UserError(
            f"no complete chunks under {input_url}: expected chunk_<i>.csv/part-00000.csv "
            "folders holding a _SUCCESS marker (txpatterns publish writes them)"
        )
    with progress_bar(len(chunks), "chunks", "reference") as bar:
        replay = reference.replay(
            chunks, importance, settings.thresholds, lambda _: bar.update(), objects
        )
    valid = sum(c.valid for c in replay.chunks)
    rejected = sum(c.rejected for c in replay.chunks)
    gaps = sorted(set(range(chunks[-1].index + 1)) - {c.index for c in chunks})
    click.echo(
        f"Reference: {len(replay.chunks)} chunks ({chunks[0].index}..{chunks[-1].index}), "
        f"{valid:,} valid rows, {rejected:,} invalid rows, preset {settings.preset}"
    )
    wrong_headers = Counter(c for c, row in replay.rejected if row.message == WRONG_HEADER)
    for chunk_index, lines in sorted(wrong_headers.items()):
        click.echo(
            f"Warning: chunk {chunk_index}: {WRONG_HEADER}; its {lines:,} lines are rejected",
            err=True,
        )
    if gaps:
        click.echo(f"Warning: chunks missing or incomplete: {_ranges(gaps)}", err=True)
    if replay.importance_rejected:
        click.echo(
            f"Warning: {len(replay.importance_rejected):,} invalid importance rows ignored",
            err=True,
        )
    counts = {p: 0 for p in ACTION_TYPES}
    for d in replay.detections:
        counts[d.pattern_id] += 1
    click.echo(f"{'pattern':<9}{'ActionType':<12}{'detections':>11}")
    for pattern_id, action in ACTION_TYPES.items():
        click.echo(f"{pattern_id:<9}{action:<12}{counts[pattern_id]:>11,}")
    click.echo(f"{'total':<21}{len(replay.detections):>11,}")
    if emit_file:
        with objects.write_text(emit_file) as f:
            verification.write_detections(f, replay.detections)
        click.echo(f"Wrote the reference detections to {emit_file}")
    if output_url is None:
        return True
    diff = verification.compare(replay.detections, verification.read_output(output_url, objects))
    out = diff.output
    click.echo(
        f"Output: {len(out.complete)} complete files with {sum(out.keys.values()):,} detections"
        + (f"; {len(out.incomplete)} incomplete files ignored" if out.incomplete else "")
    )
    for d in diff.missing[:20]:
        click.echo(
            f"  missing    {d.pattern_id} customer={d.customer!r} merchant={d.merchant!r}"
            f" (chunk {d.chunk_index})"
        )
    for key in diff.extra[:20]:
        click.echo(f"  extra      {key[0]} customer={key[1]!r} merchant={key[2]!r}")
    for key, n in diff.duplicated[:20]:
        click.echo(f"  duplicated {key[0]} customer={key[1]!r} merchant={key[2]!r} ({n} times)")
    for name, line, message in out.problems[:20]:
        click.echo(f"  bad row    {name}:{line}: {message}")
    if diff.agrees:
        click.echo("OK: the output equals the reference exactly.")
        return True
    click.echo(
        f"DIFFERENT: {len(diff.missing)} missing, {len(diff.extra)} extra, "
        f"{len(diff.duplicated)} duplicated, {len(out.problems)} bad rows."
    )
    return False


def _ranges(numbers: list[int]) -> str:
    spans: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(spans)


@cli.command()
@click.option("--source", required=True, help="Transactions CSV: a path, s3:// or http(s):// URL.")
@click.option("--to", "dest", required=True, help="Destination folder or s3://bucket/prefix.")
@click.option("--chunk-rows", help="Rows per chunk [default: 10000].")
@click.option("--interval", help='Time between chunks, e.g. "1s", "250ms", "0" [default: 1s].')
@click.option("--start-chunk", type=click.IntRange(min=0), help="Republish from this chunk index.")
@click.option("--max-chunks", type=click.IntRange(min=1), help="Stop after this many chunks.")
@click.option("--endpoint-url", help="S3-compatible endpoint, e.g. http://127.0.0.1:8333.")
@log_format_option
@settings_options(
    flags={
        "chunk_rows": "publish.chunk_rows",
        "interval": "publish.interval",
        "endpoint_url": "s3.endpoint_url",
    }
)
def publish(
    settings: Settings,
    source: str,
    dest: str,
    start_chunk: int | None,
    max_chunks: int | None,
    log_format: str,
) -> None:
    """Publish a transactions file as a stream of chunks (the brief's Mechanism X).

    Every interval the next --chunk-rows rows go to DEST/chunk_<i>.csv/part-00000.csv, header
    included and bytes unchanged, followed by a _SUCCESS marker. Re-running continues from the
    first chunk without a marker; publishing a finished source again publishes nothing.

    Example:

        txpatterns publish --source data/transactions.csv --to s3://bucket/streaming/input \\
            --endpoint-url http://127.0.0.1:8333 --interval 1s
    """
    from txpatterns.publish import ChunkPublished
    from txpatterns.publish import publish as run_publish

    objects = make_store(settings)
    interactive = sys.stderr.isatty() and log_format == "text"
    with objects.open_source(source) as (stream, size), progress_bar(size, "B", "publish") as bar:

        def on_chunk(chunk: ChunkPublished) -> None:
            if log_format == "json":
                click.echo(json.dumps({"event": "chunk", **asdict(chunk)}), err=True)
            elif interactive:
                bar.update(chunk.bytes)
                bar.set_postfix_str(f"chunk {chunk.index}")
            else:
                click.echo(f"published {chunk.url} ({chunk.rows:,} rows)", err=True)

        result = run_publish(
            stream,
            source,
            dest,
            objects,
            chunk_rows=settings.publish_chunk_rows,
            interval=float(settings.publish_interval),
            start_chunk=start_chunk,
            max_chunks=max_chunks,
            on_chunk=on_chunk,
        )
    if result.chunks == 0 and result.source_exhausted:
        click.echo(
            f"Nothing to publish: all {_plural(result.already_published, 'chunk')} of {source} "
            f"are already under {dest}."
        )
        return
    last = result.next_chunk - 1
    click.echo(
        f"Published {_plural(result.chunks, 'chunk')} ({result.first_chunk}..{last}), "
        f"{_plural(result.rows, 'row')}, to {dest}"
        + ("." if result.source_exhausted else f"; run again to continue from chunk {last + 1}.")
    )


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


DETECT_FLAGS: Final = {
    "input_url": "detect.input",
    "output_url": "detect.output",
    "importance": "detect.importance",
    "quarantine": "detect.quarantine",
    "postgres": "postgres.dsn",
    "namespace": "detect.namespace",
    "workdir": "detect.workdir",
    "checkpoint": "detect.checkpoint",
    "master": "detect.master",
    "trigger": "detect.trigger",
    "max_chunks_per_batch": "detect.max_chunks_per_batch",
    "reader": "detect.reader",
}


@contextmanager
def postgres_dsn(settings: Settings) -> Iterator[str]:
    """The configured PostgreSQL, or an embedded one under the working folder."""
    if settings.postgres_dsn:
        yield settings.postgres_dsn
        return
    from txpatterns.state import embedded

    dsn, server = embedded.start(Path(settings.detect.workdir) / "postgres")
    try:
        yield dsn
    finally:
        del server


def check_detect_locations(settings: Settings) -> None:
    """Say what is missing before anything starts."""
    missing = [
        flag
        for flag, value in (
            ("--input", settings.detect.input),
            ("--output", settings.detect.output),
            ("--importance", settings.detect.importance),
        )
        if not value
    ]
    if missing:
        raise UserError(
            f"detect needs {', '.join(missing)} (or detect.input/output/importance in the "
            "settings file, or TXP_DETECT_INPUT/OUTPUT/IMPORTANCE)"
        )


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C or SIGTERM; a second Ctrl-C interrupts at once."""
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        click.echo("Stopping after the batch in hand (Ctrl-C again to abort)...", err=True)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _detections_line(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{ACTION_TYPES[p]} {counts.get(p, 0):,}" for p in ACTION_TYPES)


@cli.command()
@click.option("--input", "input_url", help="Input prefix: a folder or s3://bucket/prefix.")
@click.option("--output", "output_url", help="Output prefix for the detection files.")
@click.option("--importance", help="Importance CSV: a path or s3:// URL.")
@click.option("--quarantine", help="Prefix for invalid rows [default: quarantine beside --output].")
@click.option("--postgres", help="PostgreSQL DSN [default: an embedded server in --workdir].")
@click.option("--namespace", help="Name of this pipeline's state in PostgreSQL [default: default].")
@click.option("--workdir", help="Folder for the embedded database and checkpoints [./txp-data].")
@click.option("--checkpoint", help="Spark checkpoint location [WORKDIR/checkpoints/NAMESPACE].")
@click.option("--master", help="Spark master URL [default: local[*]].")
@click.option(
    "--trigger",
    help='How often continuous mode looks for new chunks [default: "0.25s"]; each look lists '
    "the input prefix (one LIST request on S3).",
)
@click.option(
    "--max-chunks-per-batch",
    help="At most this many chunks per micro-batch; bounds memory in a catch-up [16; 0: all].",
)
@click.option(
    "--reader",
    help="python: fsspec on the executors, no extra jars [default]; native: Spark's own "
    "reader, for s3a:// where the Hadoop S3A connector is installed.",
)
@click.option("--until-idle", is_flag=True, help="Process the chunks there now, write, and exit.")
@click.option("--stats", "stats_file", help="At exit, write this run's figures as JSON here.")
@click.option("--crash-at", hidden=True, help="Tests only: SIGKILL at a named point (POINT[:N]).")
@log_format_option
@settings_options(flags=DETECT_FLAGS)
def detect(
    settings: Settings,
    until_idle: bool,
    stats_file: str | None,
    crash_at: str | None,
    log_format: str,
) -> None:
    """Detect the patterns in the chunk stream (the brief's Mechanism Y).

    Spark reads every complete chunk in index order, the running statistics live in
    PostgreSQL, and each new detection is written once, 50 to a file, as
    OUTPUT/pattern_detected_<time>_<n>.csv/part-00000.csv. It runs until Ctrl-C, or with
    --until-idle until the chunks there now are done (for cron or a Databricks job).

    Example:

        txpatterns detect --input txp-data/streaming/input --output txp-data/streaming/output \\
            --importance data/CustomerImportance.csv --until-idle
    """
    from txpatterns.detect.faults import crash_at as crash_hook
    from txpatterns.detect.faults import no_crash
    from txpatterns.detect.runner import Detector, Progress
    from txpatterns.detect.spark import session

    interactive = sys.stderr.isatty() and log_format == "text"

    def on_progress(p: Progress) -> None:
        if log_format == "json":
            click.echo(json.dumps({"event": "batch", **asdict(p)}), err=True)
            return
        line = (
            f"chunks applied {p.chunks_applied:,} (last {p.last_chunk}), rows "
            f"{p.valid_rows:,} valid / {p.invalid_rows:,} invalid, detections: "
            f"{_detections_line(p.detections)}, files {p.files_written}"
        )
        click.echo(("\r" + line) if interactive else line, err=True, nl=not interactive)

    objects = make_store(settings)
    check_detect_locations(settings)
    with postgres_dsn(settings) as dsn:
        detector = Detector(
            settings.detect,
            settings.thresholds,
            objects,
            dsn=dsn,
            crash=crash_hook(crash_at) if crash_at else no_crash,
            on_progress=on_progress,
        )
        try:
            # The importance file loads into PostgreSQL while the JVM starts.
            detector.start()
            spark = session(settings.detect.master, ui=settings.detect.spark_ui)
            # After the SparkContext, which installs a SIGINT handler of its own.
            with stop_on_signals() as stop:
                progress = detector.run(spark, until_idle=until_idle, stop=stop)
        finally:
            detector.close()
    if interactive:
        click.echo(err=True)
    if stats_file:
        objects.write_bytes(stats_file, json.dumps(asdict(progress), indent=2).encode())
    if log_format == "json":
        click.echo(json.dumps({"event": "done", **asdict(progress)}))
        return
    click.echo(
        f"Applied {_plural(progress.chunks_applied, 'chunk')} "
        f"({progress.valid_rows:,} valid rows, {progress.invalid_rows:,} invalid); "
        f"detections: {_detections_line(progress.detections)}; "
        f"{_plural(progress.files_written, 'output file')} written."
    )


@cli.command()
@click.option("--rows", default=594_643, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int, help="Dataset seed.")
@click.option("--interval", help='Time between published chunks [default: "1s"].')
@click.option("--chunk-rows", help="Rows per chunk [default: 10000].")
@click.option("--postgres", help="PostgreSQL DSN [default: an embedded server in --workdir].")
@click.option("--workdir", help="Working folder for data, stream, database [./txp-data].")
@click.option("--master", help="Spark master URL [default: local[*]].")
@log_format_option
@settings_options(
    flags={
        "interval": "publish.interval",
        "chunk_rows": "publish.chunk_rows",
        "postgres": "postgres.dsn",
        "workdir": "detect.workdir",
        "master": "detect.master",
    }
)
def run(settings: Settings, rows: int, seed: int, log_format: str) -> None:
    """Run the whole pipeline on this machine: generate, publish and detect together, verify.

    The dataset is generated once (kept under WORKDIR/data-ROWS-SEED); the stream, the
    namespace's state and the checkpoint start afresh on every run. The publisher and the
    detector run side by side, as the brief's X and Y; when every chunk is applied, the
    output is verified against the reference engine.

    Example:

        txpatterns run --rows 100000 --interval 250ms
    """
    from txpatterns.detect.spark import session
    from txpatterns.run import RunLayout, RunStatus, ensure_data, run_pipeline

    objects = make_store(settings)
    layout = RunLayout(Path(settings.detect.workdir), rows, seed)
    if ensure_data(layout, objects):
        click.echo(f"Generated {rows:,} rows into {layout.data}")
    chunks = -(-rows // settings.publish_chunk_rows)
    interactive = sys.stderr.isatty() and log_format == "text"
    last_shown = [0.0]

    def on_status(status: RunStatus) -> None:
        now = time.monotonic()
        if not interactive and now - last_shown[0] < 5:
            return
        last_shown[0] = now
        p = status.detector
        if log_format == "json":
            figures = {"published": status.published, "detector": asdict(p)}
            click.echo(json.dumps({"event": "status", **figures}), err=True)
            return
        line = (
            f"[{now - status.started:5.0f}s] published {status.published}/{chunks}, applied "
            f"{p.chunks_applied}/{chunks}, detections: {_detections_line(p.detections)}"
        )
        click.echo(("\r" + line) if interactive else line, err=True, nl=not interactive)

    with postgres_dsn(settings) as dsn:
        spark = session(settings.detect.master, ui=settings.detect.spark_ui)
        with stop_on_signals() as stop:
            status = run_pipeline(
                layout,
                replace(settings.detect, namespace="run"),
                settings.thresholds,
                objects,
                spark,
                dsn=dsn,
                chunk_rows=settings.publish_chunk_rows,
                interval=float(settings.publish_interval),
                on_status=on_status,
                stop=stop,
            )
    if interactive:
        click.echo(err=True)
    p = status.detector
    if status.interrupted:
        click.echo(
            f"Interrupted: published {status.published} chunks, applied {p.chunks_applied}; "
            "run again to start afresh."
        )
        sys.exit(130)
    click.echo(
        f"Published and applied {p.chunks_applied} chunks in "
        f"{time.monotonic() - status.started:.0f} s; {p.files_written} output files under "
        f"{layout.stream / 'output'}"
    )
    ok = report_verification(
        settings, objects, str(layout.stream / "input"), str(layout.importance),
        str(layout.stream / "output"),
    )  # fmt: skip
    if not ok:
        sys.exit(EXIT_DIFFERENT)


@cli.command()
@click.option("--postgres", help="PostgreSQL DSN [default: the embedded server in --workdir].")
@click.option("--namespace", help="The pipeline's namespace [default: default].")
@click.option("--workdir", help="Working folder of the embedded database [./txp-data].")
@click.option("--input", "input_url", help="Input prefix, to count chunks not yet applied.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options(
    flags={
        "postgres": "postgres.dsn",
        "namespace": "detect.namespace",
        "workdir": "detect.workdir",
        "input_url": "detect.input",
    }
)
def status(settings: Settings, as_json: bool) -> None:
    """Show what the detector of a namespace has done and whether it is running now.

    Example:

        txpatterns status --input txp-data/streaming/input --json
    """
    from txpatterns.state.db import connect, migrate, use_namespace
    from txpatterns.state.store import status as namespace_status

    with postgres_dsn(settings) as dsn, connect(dsn) as conn:
        migrate(conn, settings.detect.namespace)
        use_namespace(conn, settings.detect.namespace)
        figures = namespace_status(conn, settings.detect.namespace)
    if settings.detect.input:
        from datetime import UTC, datetime

        objects = make_store(settings)
        published = objects.list_chunks(settings.detect.input, missing_ok=True)
        last = -1 if figures["last_chunk"] is None else figures["last_chunk"]
        behind = [c for c in published if c.index > last]
        figures["chunks_published"] = len(published)
        figures["chunks_waiting"] = len(behind)
        # How long the oldest chunk not yet applied has had its marker.
        lag = 0.0
        if behind:
            marked = objects.modified(store.join(behind[0].url, store.SUCCESS))
            lag = round((datetime.now(UTC) - marked).total_seconds(), 3)
        figures["lag_seconds"] = lag
    if as_json:
        click.echo(json.dumps(figures))
        return
    seconds = figures["chunk_seconds"]
    lines = [
        ("namespace", figures["namespace"]),
        ("detector running", "yes" if figures["detector_running"] else "no"),
        ("chunks applied", f"{figures['chunks_applied']:,} (last {figures['last_chunk']}, "
                           f"at {figures['last_applied_at']})"),
        ("rows", f"{figures['rows_valid']:,} valid, {figures['rows_invalid']:,} invalid"),
        ("detections", _detections_line(figures["detections"])),
        ("output files", f"{figures['output_files_complete']:,} complete, "
                         f"{figures['output_files_incomplete']} incomplete, "
                         f"{figures['detections_pending']} detections pending"),
        ("seconds per chunk", f"last {seconds['last']}, p50 {seconds['p50']}, "
                              f"p95 {seconds['p95']} (last 100 chunks)"),
    ]  # fmt: skip
    if "chunks_waiting" in figures:
        waiting = (
            f"{figures['chunks_waiting']:,} of {figures['chunks_published']:,} published; "
            f"lag {figures['lag_seconds']} s"
        )
        lines.insert(3, ("chunks waiting", waiting))
    for label, value in lines:
        click.echo(f"{label:<18} {value}")


@cli.command()
@click.option("--out", "out_file", required=True, help="The HTML file to write.")
@click.option("--postgres", help="PostgreSQL DSN [default: the embedded server in --workdir].")
@click.option("--namespace", help="The pipeline's namespace [default: default].")
@click.option("--workdir", help="Working folder of the embedded database [./txp-data].")
@settings_options(
    flags={"postgres": "postgres.dsn", "namespace": "detect.namespace", "workdir": "detect.workdir"}
)
def report(settings: Settings, out_file: str) -> None:
    """Write one self-contained HTML page with plots of a namespace's run.

    Detections per pattern over the chunks, the top merchants, the processing time, lag and
    invalid rows per chunk, and the summary of `txpatterns status`; it opens offline.

    Example:

        txpatterns report --out report.html
    """
    from txpatterns import report as page
    from txpatterns.state.db import connect, migrate, use_namespace
    from txpatterns.state.store import status as namespace_status

    with postgres_dsn(settings) as dsn, connect(dsn) as conn:
        migrate(conn, settings.detect.namespace)
        use_namespace(conn, settings.detect.namespace)
        figures = namespace_status(conn, settings.detect.namespace)
        data = page.collect(conn)
    with make_store(settings).write_text(out_file) as f:
        f.write(page.render(data, figures))
    click.echo(f"Wrote {out_file}")


_EXPLAIN_LABELS: Final = {
    "N": "N(m), transactions at the merchant",
    "n": "n(c,m), transactions of the customer there",
    "k": "k, the rank of the count cut-off",
    "customers": "|customers(m)|",
    "n_cut": "count cut-off (k-th largest n)",
    "w": "w(c,m), mean importance weight",
    "j": "j, the rank of the weight cut-off",
    "weighted": "customers of m with a weight",
    "w_cut": "weight cut-off (j-th smallest w)",
    "S": "S(c,m), sum of amounts",
    "average": "S(c,m) / n(c,m)",
    "F": "F(m), female customers",
    "M": "M(m), male customers",
}


@cli.command()
@click.option("--pattern", "pattern_id", required=True, type=click.Choice(list(ACTION_TYPES)))
@click.option("--customer", default="", help="Customer id (omit for PatId3).")
@click.option("--merchant", required=True, help="Merchant id.")
@click.option("--postgres", help="PostgreSQL DSN [default: the embedded server in --workdir].")
@click.option("--namespace", help="The pipeline's namespace [default: default].")
@click.option("--workdir", help="Working folder of the embedded database [./txp-data].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@settings_options(
    flags={"postgres": "postgres.dsn", "namespace": "detect.namespace", "workdir": "detect.workdir"}
)
def explain(
    settings: Settings, pattern_id: str, customer: str, merchant: str, as_json: bool
) -> None:
    """Show why a detection was made: the chunk and the exact figures at that moment.

    For a key that was never detected it says so and shows the current figures instead.

    Example:

        txpatterns explain --pattern PatId2 --customer C1093826151 --merchant M348934600
    """
    from txpatterns.state.db import connect, use_namespace
    from txpatterns.state.store import explain as explain_key

    with postgres_dsn(settings) as dsn, connect(dsn) as conn:
        use_namespace(conn, settings.detect.namespace)
        result = explain_key(conn, pattern_id, customer, merchant)
    key = {"patternId": pattern_id, "customerName": customer, "MerchantId": merchant}
    if as_json:
        click.echo(json.dumps({**key, **result}, default=str))
        return
    who = f"{ACTION_TYPES[pattern_id]} ({pattern_id}) for customer {customer!r} at {merchant!r}"
    if result["detected"]:
        click.echo(f"{who}: first detected after chunk {result['chunk_index']}, at "
                   f"{result['detected_at']}, when:")  # fmt: skip
        figures = result["figures"]
    else:
        click.echo(f"{who}: never detected. Current figures:")
        figures = result["current"]
    for name, value in figures.items():
        click.echo(f"  {_EXPLAIN_LABELS.get(name, name):<42} {value}")


@cli.group(cls=Group)
def config() -> None:
    """Inspect the effective settings."""


@config.command("show")
@settings_options()
def config_show(settings: Settings) -> None:
    """Print the effective settings as TOML, secrets masked, with where each value came from.

    Example:

        TXP_PATTERNS_CHILD_MIN_TXNS=5 txpatterns config show --preset seed
    """
    click.echo(render(settings), nl=False)


def main() -> None:
    """Console entry point."""
    cli(prog_name="txpatterns")
