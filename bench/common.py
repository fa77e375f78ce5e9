"""What every benchmark shares: data, subprocesses, sampling, the ledger, results and targets.

Everything is measured from outside the detector: wall clocks and psutil around its process,
file modification times (chunk markers, the Spark checkpoint, output files) and the state
tables in its embedded PostgreSQL, read after (or beside) the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DATA = BENCH / "data"
RESULTS = BENCH / "results"
DOCS = ROOT / "docs"

FULL_ROWS = 594_643
CHUNK_ROWS = 10_000
MASTER = "local[2]"
PRESET = "banksim"
NAMESPACE = "bench"
GIB = 1024**3


# Data ---------------------------------------------------------------------------------------


def cli_path() -> str:
    """The `txpatterns` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "txpatterns"
    if script.exists():
        return str(script)
    found = shutil.which("txpatterns")
    if found is None:
        sys.exit("txpatterns is not installed in this environment: run `make bench`")
    return found


def child_env() -> dict[str, str]:
    """The environment of every subprocess: no TXP_* settings leak in; Spark on loopback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TXP_")}
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def run_cli(*args: str, cwd: Path | None = None) -> str:
    """Run a txpatterns command to completion and return its standard output."""
    done = subprocess.run(
        [cli_path(), *args],
        cwd=cwd or tempfile.gettempdir(),
        env=child_env(),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"txpatterns {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


@dataclass(frozen=True)
class Dataset:
    """A generated BankSim-shaped dataset, cached under bench/data/."""

    rows: int
    seed: int

    @property
    def folder(self) -> Path:
        return DATA / f"banksim-{self.rows}-s{self.seed}"

    @property
    def transactions(self) -> Path:
        return self.folder / "transactions.csv"

    @property
    def importance(self) -> Path:
        return self.folder / "CustomerImportance.csv"

    def chunks(self, chunk_rows: int = CHUNK_ROWS) -> int:
        return -(-self.rows // chunk_rows)

    def ensure(self) -> Dataset:
        """Generate the files once; later runs reuse them."""
        done = self.folder / ".complete"
        if not done.exists():
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            print(f"generating {self.rows:,} rows (seed {self.seed}) into {self.folder} ...")
            run_cli(
                "generate", "--out", str(self.folder), "--rows", str(self.rows),
                "--seed", str(self.seed),
            )  # fmt: skip
            done.touch()
        return self

    def published(self, chunk_rows: int = CHUNK_ROWS) -> Path:
        """The dataset published at once (interval 0) as chunks; cached, read-only for readers."""
        self.ensure()
        target = self.folder / f"input-{chunk_rows}"
        done = self.folder / f".published-{chunk_rows}"
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            print(f"publishing {self.chunks(chunk_rows)} chunks into {target} ...")
            publish_args = ("--source", str(self.transactions), "--to", str(target))
            run_cli("publish", *publish_args, "--chunk-rows", str(chunk_rows), "--interval", "0")
            done.touch()
        return target


def scratch(prefix: str) -> Path:
    """A fresh working folder the embedded PostgreSQL's own user can reach when run as root."""
    folder = Path(tempfile.mkdtemp(prefix=f"txp-bench-{prefix}-"))
    folder.chmod(0o755)
    return folder


def release(work: Path, keep: bool) -> None:
    """Remove a benchmark's working folder, or say where it was kept (`--keep`)."""
    if keep:
        print(f"kept {work}")
    else:
        remove(work)


def run_settings(
    args: Any, chunks: int, command: Sequence[object], **specific: Any
) -> dict[str, Any]:
    """The settings every result records: the dataset, the benchmark's own, the command."""
    return {
        "rows": args.rows,
        "seed": args.seed,
        "chunk_rows": args.chunk_rows,
        "chunks": chunks,
        **specific,
        "master": args.master,
        "preset": PRESET,
        "embedded_postgres": True,
        "detector_command": [str(a) for a in command],
    }


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


# The detector -------------------------------------------------------------------------------


def detect_supports(option: str) -> bool:
    """Whether `txpatterns detect` has an option (hooks the suite uses once they exist)."""
    done = subprocess.run(
        [cli_path(), "detect", "--help"], env=child_env(), capture_output=True, text=True
    )
    return option in done.stdout


def detect_args(
    input_dir: Path,
    importance: Path,
    work: Path,
    *,
    master: str,
    until_idle: bool,
    extra: Sequence[str] = (),
) -> list[str]:
    """The detector's command line on the embedded PostgreSQL under `work`."""
    args = [
        cli_path(), "detect",
        "--input", str(input_dir),
        "--output", str(work / "output"),
        "--importance", str(importance),
        "--namespace", NAMESPACE,
        "--workdir", str(work),
        "--checkpoint", str(work / "checkpoint"),
        "--master", master,
        "--preset", PRESET,
        *extra,
    ]  # fmt: skip
    if until_idle:
        args.append("--until-idle")
    if detect_supports("--stats"):
        args += ["--stats", str(work / "stats.json")]
    return args


def stats_file(work: Path) -> dict[str, Any] | None:
    """The detector's own Progress timings, when it was run with --stats."""
    path = work / "stats.json"
    if not path.exists():
        return None
    value: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return value


@dataclass
class Launched:
    """A subprocess with its start time and log files."""

    process: subprocess.Popen[bytes]
    started: float  # epoch seconds, taken just before the process was created
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def launch(args: Sequence[str], log: Path, cwd: Path) -> Launched:
    """Start a subprocess whose standard output and error go to `log`."""
    out = log.open("wb")
    started = time.time()
    process = subprocess.Popen(
        list(args), cwd=cwd, env=child_env(), stdout=out, stderr=subprocess.STDOUT
    )
    out.close()
    return Launched(process, started, log)


def interrupt(launched: Launched, timeout: float = 120) -> int:
    """Stop a process with SIGINT (the detector finishes the batch in hand), then harder."""
    process = launched.process
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                return process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    return process.wait()


# Sampling -----------------------------------------------------------------------------------


def _postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """The postmaster serving `pgdata` and its backends (they are not the detector's children)."""
    key = str(pgdata.resolve())
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if proc.info["name"] == "postgres" and key in cmdline:
                return [proc, *proc.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return []


@dataclass
class Sampler:
    """Samples a process tree's memory every `interval` seconds in a thread.

    `peak_rss` is the largest sum of RSS over the process and all its descendants (the Python
    driver, the JVM, the Python workers). Forked workers share pages with their parent, which
    RSS counts in each, so the proportional set size (PSS) of the same processes is sampled
    too, once a second. The embedded PostgreSQL is not a descendant (pg_ctl
    detaches it); its proportional set size (PSS, which shares the shared buffers fairly
    between backends) is sampled once a second when `pgdata` is given.
    """

    pid: int
    pgdata: Path | None = None
    interval: float = 0.1
    peak_rss: int = 0
    peak_breakdown: dict[str, int] = field(default_factory=dict)
    peak_postgres_pss: int = 0
    peak_tree_pss: int = 0  # sampled once a second
    samples: int = 0
    java_started: float | None = None  # epoch seconds the JVM was created
    cpu_seconds: dict[int, float] = field(default_factory=dict)
    postgres_cpu_seconds: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._cpu0 = psutil.cpu_times()
        self._wall0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        cpu1 = psutil.cpu_times()
        self.wall = time.monotonic() - self._wall0
        idle = (cpu1.idle + getattr(cpu1, "iowait", 0)) - (
            self._cpu0.idle + getattr(self._cpu0, "iowait", 0)
        )
        self.machine_busy_seconds = max(0.0, self.wall * (os.cpu_count() or 1) - idle)

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        last_slow = 0.0
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total = 0
            breakdown: dict[str, int] = {}
            counted: list[psutil.Process] = []
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    with proc.oneshot():
                        rss = proc.memory_info().rss
                        times = proc.cpu_times()
                        name = proc.name()
                        exe = proc.exe()
                    self.cpu_seconds[proc.pid] = times.user + times.system
                    if exe.endswith("/java") and name != "java":
                        # The JVM forking a Python worker, caught before its exec: a copy of
                        # the JVM's pages, not memory of its own.
                        continue
                    total += rss
                    counted.append(proc)
                    kind = "java" if name == "java" else ("python" if "python" in name else name)
                    if kind == "java" and self.java_started is None:
                        self.java_started = proc.create_time()
                    breakdown[kind] = breakdown.get(kind, 0) + rss
            self.samples += 1
            if total > self.peak_rss:
                self.peak_rss = total
                self.peak_breakdown = breakdown
            now = time.monotonic()
            if now - last_slow >= 1.0:
                last_slow = now
                tree_pss = 0
                for proc in counted:
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                        tree_pss += proc.memory_full_info().pss
                self.peak_tree_pss = max(self.peak_tree_pss, tree_pss)
            if self.pgdata is not None and now == last_slow:
                pss = 0
                for proc in _postgres_processes(self.pgdata):
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                        pss += proc.memory_full_info().pss
                        times = proc.cpu_times()
                        self.postgres_cpu_seconds[proc.pid] = times.user + times.system
                self.peak_postgres_pss = max(self.peak_postgres_pss, pss)
            self._stop.wait(self.interval)

    def summary(self) -> dict[str, Any]:
        tree_cpu = sum(self.cpu_seconds.values())
        postgres_cpu = sum(self.postgres_cpu_seconds.values())
        cpus = os.cpu_count() or 1
        return {
            "peak_rss_bytes": self.peak_rss,
            "peak_rss_gib": round(self.peak_rss / GIB, 3),
            "peak_rss_by_process_kind_bytes": self.peak_breakdown,
            "peak_tree_pss_bytes": self.peak_tree_pss,
            "peak_postgres_pss_bytes": self.peak_postgres_pss,
            "samples": self.samples,
            "tree_cpu_seconds": round(tree_cpu, 1),
            "postgres_cpu_seconds": round(postgres_cpu, 1),
            "machine_busy_cpu_seconds": round(self.machine_busy_seconds, 1),
            # The share of the machine's CPU time used by everything else (other users'
            # processes, this script): a high figure means the run shared the machine.
            "other_cpu_share": round(
                max(0.0, self.machine_busy_seconds - tree_cpu - postgres_cpu) / (self.wall * cpus),
                3,
            ),
        }


# The state ----------------------------------------------------------------------------------


@contextlib.contextmanager
def embedded_state(pgdata: Path) -> Iterator[Any]:
    """A connection to the embedded PostgreSQL under `pgdata` (started, or joined if running).

    The server stops when the last process using it lets go, so a server the detector left
    stopped is started for the reading and stopped again afterwards.
    """
    import psycopg

    from txpatterns.state import embedded

    dsn, server = embedded.start(pgdata)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"SET search_path TO txp_{NAMESPACE}, public")
            yield conn
    finally:
        server.cleanup()


def prepare_embedded(pgdata: Path) -> None:
    """Create the embedded database ahead of the detector, with commit timestamps on.

    `track_commit_timestamp` lets the ledger tell when each chunk's transaction committed
    (pg_xact_commit_timestamp of the row), not only when it began (applied_at). Used where
    start-up is not measured (live, growth).
    """
    import psycopg

    from txpatterns.state import embedded

    dsn, server = embedded.start(pgdata)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
    finally:
        server.cleanup()


def epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@dataclass
class Ledger:
    """The state tables of a finished (or running) detector, as plain figures."""

    postgres_version: str
    commit_timestamps: bool
    chunks: list[dict[str, Any]]
    files: list[dict[str, Any]]
    # chunk index -> (detections, detections in complete files, latest completed_at)
    detections: dict[int, tuple[int, int, float | None]]
    pending: int


def read_ledger(conn: Any) -> Ledger:
    version = conn.execute("SHOW server_version").fetchone()[0]
    tracking = conn.execute("SHOW track_commit_timestamp").fetchone()[0] == "on"
    commit = "pg_xact_commit_timestamp(xmin)" if tracking else "NULL::timestamptz"
    chunks = [
        {
            "chunk": int(r[0]),
            "valid_rows": int(r[1]),
            "invalid_rows": int(r[2]),
            "applied_at": epoch(r[3]),
            "committed_at": epoch(r[4]),
            "batch_id": int(r[5]),
            "seconds": float(r[6]),
        }
        for r in conn.execute(
            f"SELECT chunk_index, valid_rows, invalid_rows, applied_at, {commit}, batch_id, "
            "seconds FROM chunks ORDER BY chunk_index"
        ).fetchall()
    ]
    files = [
        {
            "seq": int(r[0]),
            "created_at": epoch(r[1]),
            "completed_at": epoch(r[2]),
            "detections": int(r[3]),
        }
        for r in conn.execute(
            "SELECT seq, created_at, completed_at, detections FROM output_files ORDER BY seq"
        ).fetchall()
    ]
    detections = {
        int(r[0]): (int(r[1]), int(r[2]), epoch(r[3]))
        for r in conn.execute(
            """
            SELECT d.chunk_index, count(*), count(f.completed_at), max(f.completed_at)
            FROM detections d LEFT JOIN output_files f ON f.seq = d.file_seq
            GROUP BY d.chunk_index
            """
        ).fetchall()
    }
    pending = conn.execute(
        "SELECT count(*) FROM detections d LEFT JOIN output_files f ON f.seq = d.file_seq "
        "WHERE f.completed_at IS NULL"
    ).fetchone()[0]
    return Ledger(version, tracking, chunks, files, detections, int(pending))


def detection_counts(conn: Any) -> dict[str, int]:
    rows = conn.execute("SELECT pattern_id, count(*) FROM detections GROUP BY 1").fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def checkpoint_marks(checkpoint: Path) -> dict[str, dict[int, float]]:
    """Modification times of the Spark checkpoint's offset and commit logs, per batch id.

    Spark writes offsets/<id> when it plans batch <id> (after listing the chunks) and
    commits/<id> when foreachBatch has returned: the batch's window, seen from outside.
    """
    marks: dict[str, dict[int, float]] = {}
    for log in ("offsets", "commits"):
        folder = checkpoint / log
        marks[log] = {
            int(p.name): p.stat().st_mtime
            for p in (folder.iterdir() if folder.exists() else [])
            if p.name.isdigit()
        }
    return marks


# Figures ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (p50 of 60 values is the 30th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    return statistics.linear_regression(xs, ys).slope


def rounded(value: Any, digits: int = 3) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


@dataclass
class Target:
    """A figure and the bound it is reported against (never a failure)."""

    name: str
    value: float
    bound: float
    unit: str = ""
    higher_is_better: bool = False

    @property
    def passed(self) -> bool:
        if self.value != self.value:  # NaN: not measured
            return False
        return self.value >= self.bound if self.higher_is_better else self.value <= self.bound

    def line(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        verdict = "PASS" if self.passed else "MISS"
        bound = f"{op} {self.bound:,}{self.unit}"
        return f"  {verdict}  {self.name}: {self.value:,.3f}{self.unit} (target {bound})"

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": rounded(self.value),
            "bound": self.bound,
            "higher_is_better": self.higher_is_better,
            "passed": self.passed,
        }


def print_table(title: str, rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    print("-" * len(title))
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


def print_targets(targets: Sequence[Target]) -> None:
    print("\ntargets")
    for t in targets:
        print(t.line())


# Environment --------------------------------------------------------------------------------


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def java_version() -> str:
    java = (
        os.path.join(os.environ["JAVA_HOME"], "bin", "java")
        if os.environ.get("JAVA_HOME")
        else shutil.which("java")
    )
    if java is None:
        return "not found"
    done = subprocess.run([java, "-version"], capture_output=True, text=True)
    lines = (done.stderr or done.stdout).splitlines()
    return lines[0].strip() if lines else "unknown"


def machine() -> dict[str, Any]:
    import pyspark

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_revision": git_revision(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "spark": pyspark.__version__,
        "java": java_version(),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write bench/results/<name>.json (the latest run of that benchmark)."""
    result.setdefault("machine", {})["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(rounded(result), indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path


def read_result(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    value: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return value


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its living descendants."""
    total = 0.0
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


def wait_until_idle(pid: int, timeout: float, busy: float = 0.25, period: float = 1.0) -> float:
    """Wait until a process tree uses less than `busy` of a CPU over `period`; return the wait."""
    started = time.monotonic()
    before = tree_cpu(pid)
    while time.monotonic() - started < timeout:
        time.sleep(period)
        now = tree_cpu(pid)
        if now - before < busy * period:
            break
        before = now
    return time.monotonic() - started


def wait_for(condition: Any, timeout: float, interval: float = 0.2, what: str = "") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    if what:
        print(f"warning: timed out after {timeout:.0f} s waiting for {what}")
    return False
