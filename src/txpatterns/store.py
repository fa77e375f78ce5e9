"""Object-store access through fsspec: the only module that opens paths and URLs.

A `Store` carries the connection options (S3 endpoint, region, keys); every other module asks
it for listings and open files, so local folders, S3 and HTTP sources look the same.
"""

from __future__ import annotations

import html
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Final, TextIO, TypeVar

import fsspec

from txpatterns.errors import StoreError

T = TypeVar("T")


def _transient_errors() -> tuple[type[BaseException], ...]:
    # Connection failures surface from the S3 stack as its own exception types, not OSError.
    errors: list[type[BaseException]] = [OSError]
    try:
        from botocore.exceptions import BotoCoreError

        errors.append(BotoCoreError)
    except ImportError:
        pass
    try:
        from aiohttp import ClientError

        errors.append(ClientError)
    except ImportError:
        pass
    return tuple(errors)


TRANSIENT: Final = _transient_errors()

CHUNK_DIR: Final = re.compile(r"^chunk_(0|[1-9][0-9]*)\.csv$")
SUCCESS: Final = "_SUCCESS"
PART: Final = "part-00000.csv"


@dataclass(frozen=True)
class ChunkRef:
    """A complete chunk: its index and its part files, in name order, as full URLs or paths."""

    index: int
    url: str
    parts: tuple[str, ...]


def join(url: str, *names: str) -> str:
    """Join names onto a folder URL or path with '/'."""
    return "/".join([url.rstrip("/"), *names])


def chunk_folder(index: int) -> str:
    """The folder name of chunk `index`, as the brief lays chunks out."""
    return f"chunk_{index}.csv"


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def is_local(url: str) -> bool:
    """True for a plain path or a file: URL (dbfs:/x or s3://x are not local)."""
    return url.startswith("file:") or not _SCHEME.match(url)


_DRIVE_LINKS: Final = (
    re.compile(r"^https://drive\.google\.com/file/d/([A-Za-z0-9_-]+)"),
    re.compile(r"^https://drive\.google\.com/(?:open|uc)\?(?:.*&)?id=([A-Za-z0-9_-]+)"),
)


def drive_file_id(url: str) -> str | None:
    """The file id of a Google Drive share link (`/file/d/<id>/view`, `open?id=<id>`)."""
    for pattern in _DRIVE_LINKS:
        match = pattern.match(url)
        if match:
            return match.group(1)
    return None


def _http_get(url: str, shown: str) -> Any:
    try:
        return urllib.request.urlopen(url, timeout=60)
    except urllib.error.HTTPError as exc:
        raise StoreError(f"cannot download {shown}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise StoreError(f"cannot download {shown}: {_describe(exc)}") from exc


def _is_html(response: Any) -> bool:
    return str(response.headers.get("Content-Type", "")).startswith("text/html")


def _confirmation_url(page: str, base: str) -> str | None:
    """The download URL a Drive confirmation page leads to: its form, or a confirm link."""
    form = re.search(
        r'<form[^>]*id="download-form"[^>]*action="([^"]+)"[^>]*>(.*?)</form>', page, re.S
    )
    if form:
        fields = re.findall(
            r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(2)
        )
        action = html.unescape(form.group(1))
        return f"{action}?{urllib.parse.urlencode(fields)}"
    link = re.search(r'href="([^"]*confirm=[^"]+)"', page)
    if link:
        return urllib.parse.urljoin(base, html.unescape(link.group(1)))
    return None


def _temporary_name(path: str) -> str:
    # A leading dot hides the file from Spark's file sources and from the listings here.
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}")


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class Store:
    """Opens and lists local paths and object-store URLs with one set of connection options."""

    # Per-protocol fsspec options, e.g. {"s3": {"endpoint_url": ..., "key": ...}}.
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Transient failures are tried again this many times, waiting backoff, 2 x backoff, ...
    retries: int = 5
    backoff: float = 0.5
    # Where Google Drive share links are downloaded from (settable, so tests can serve it).
    drive_download_url: str = "https://drive.google.com/uc?export=download"

    def read_text(self, url: str) -> str:
        """The whole of a text file, read again from the start after a transient failure."""

        def read() -> str:
            with self.open_text(url) as f:
                return f.read()

        return self._retrying("read", url, read)

    def filesystem(self, url: str) -> tuple[Any, str]:
        """Return the fsspec filesystem for `url` and the path inside it."""
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        try:
            fs, path = fsspec.core.url_to_fs(url, **dict(self.options.get(protocol, {})))
        except ImportError as exc:
            raise StoreError(f"cannot use {url}: a package is missing ({exc})") from exc
        except ValueError as exc:
            raise StoreError(f"cannot use {url}: {_describe(exc)}") from exc
        return fs, str(path)

    def _retrying(self, action: str, url: str, operation: Callable[[], T]) -> T:
        """Run `operation`, retrying transient failures (a server away, a dropped connection)
        with exponential backoff; errors that another try cannot fix are raised at once."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return operation()
            except (FileNotFoundError, PermissionError, IsADirectoryError, StoreError):
                raise
            except TRANSIENT as exc:
                if attempt == self.retries:
                    raise StoreError(
                        f"cannot {action} {url} after {self.retries + 1} tries: {_describe(exc)}"
                    ) from exc
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _listing(
        self, url: str, pattern: re.Pattern[str], *, missing_ok: bool = False
    ) -> dict[str, list[str]]:
        """Map each sub-folder of `url` whose name matches `pattern` to the file names in it."""
        fs, root = self.filesystem(url)

        def find() -> list[str] | None:
            if not fs.isdir(root):
                return None
            # One recursive listing: on S3 that is one paged request; with maxdepth, s3fs would
            # walk folder by folder instead. Deeper files are ignored below.
            return list(fs.find(root))

        try:
            files = self._retrying("list", url, find)
        except PermissionError as exc:
            raise StoreError(f"permission denied listing {url}: {_describe(exc)}") from exc
        if files is None:
            if missing_ok:
                return {}
            raise StoreError(f"folder not found: {url}")
        prefix = root.rstrip("/") + "/"
        folders: dict[str, list[str]] = {}
        for path in files:
            relative = path[len(prefix) :] if path.startswith(prefix) else path
            folder, _, name = relative.partition("/")
            if name and "/" not in name and pattern.match(folder):
                folders.setdefault(folder, []).append(name)
        return folders

    def list_folders(self, url: str, pattern: re.Pattern[str]) -> list[tuple[str, tuple[str, ...]]]:
        """List the sub-folders of `url` matching `pattern`, by name, with the files each holds."""
        return sorted((f, tuple(sorted(names))) for f, names in self._listing(url, pattern).items())

    def list_chunks(self, url: str, *, missing_ok: bool = False) -> list[ChunkRef]:
        """List the complete chunks under `url` (those holding `_SUCCESS`), by index."""
        chunks = []
        for folder, names in self._listing(url, CHUNK_DIR, missing_ok=missing_ok).items():
            match = CHUNK_DIR.match(folder)
            if match is None or SUCCESS not in names:
                continue
            chunk_url = join(url, folder)
            parts = sorted(n for n in names if n.startswith("part-") and n.endswith(".csv"))
            chunks.append(
                ChunkRef(int(match.group(1)), chunk_url, tuple(join(chunk_url, p) for p in parts))
            )
        return sorted(chunks, key=lambda c: c.index)

    def check_bucket(self, url: str) -> None:
        """Raise a clear StoreError when the bucket of an s3:// URL does not exist."""
        if not url.startswith(("s3://", "s3a://")):
            return
        bucket = url.split("://", 1)[1].split("/", 1)[0]
        fs, _ = self.filesystem(url)
        try:
            self._retrying("reach bucket", bucket, lambda: fs.ls(bucket, detail=False))
        except FileNotFoundError:
            raise StoreError(f"bucket {bucket!r} does not exist (from {url})") from None
        except PermissionError as exc:
            raise StoreError(
                f"bucket {bucket!r} does not exist or these credentials may not use it "
                f"({_describe(exc)})"
            ) from exc
        except StoreError as exc:
            raise StoreError(f"bucket {bucket!r}: {exc}") from exc

    def modified(self, url: str) -> datetime:
        """When a file was last written (timezone-aware)."""
        fs, path = self.filesystem(url)
        stamp: datetime = self._retrying("inspect", url, lambda: fs.modified(path))
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)

    def exists(self, url: str) -> bool:
        fs, path = self.filesystem(url)
        try:
            return self._retrying("reach", url, lambda: bool(fs.exists(path)))
        except PermissionError as exc:
            raise StoreError(f"permission denied: {url}: {_describe(exc)}") from exc

    @contextmanager
    def open_text(self, url: str) -> Iterator[TextIO]:
        """Open a local path or object-store URL for reading as UTF-8 text."""
        fs, path = self.filesystem(url)
        try:
            with fs.open(path, "r", encoding="utf-8", newline="") as f:
                yield f
        except FileNotFoundError as exc:
            raise StoreError(f"file not found: {url}") from exc
        except IsADirectoryError as exc:
            raise StoreError(f"{url} is a folder, not a file") from exc
        except UnicodeDecodeError as exc:
            raise StoreError(f"{url} is not UTF-8 text: {exc}") from exc
        except PermissionError as exc:
            raise StoreError(f"permission denied reading {url}: {_describe(exc)}") from exc

    @contextmanager
    def open_source(self, url: str) -> Iterator[tuple[IO[bytes], int | None]]:
        """Open a file to stream its bytes, with its size when known; http(s) URLs are allowed."""
        if url.startswith(("http://", "https://")):
            response = self._download(url)
            length = response.headers.get("Content-Length")
            with response:
                yield response, int(length) if length and length.isdigit() else None
            return
        fs, path = self.filesystem(url)
        try:
            size = fs.size(path)
            with fs.open(path, "rb") as f:
                yield f, size
        except FileNotFoundError as exc:
            raise StoreError(f"file not found: {url}") from exc
        except IsADirectoryError as exc:
            raise StoreError(f"{url} is a folder, not a file") from exc
        except PermissionError as exc:
            raise StoreError(f"permission denied reading {url}: {_describe(exc)}") from exc

    def _download(self, url: str) -> Any:
        file_id = drive_file_id(url)
        target = f"{self.drive_download_url}&id={file_id}" if file_id else url
        response = _http_get(target, url)
        if file_id is None or not _is_html(response):
            return response
        # Large files get a "can't scan for viruses" page whose form leads to the file.
        with response:
            page = response.read(1 << 20).decode("utf-8", errors="replace")
        confirm = _confirmation_url(page, target)
        if confirm is None:
            raise StoreError(
                f"Google Drive did not serve the file behind {url}: share it as 'anyone with "
                "the link can view', or download it and pass the file"
            )
        response = _http_get(confirm, url)
        if _is_html(response):
            response.close()
            raise StoreError(f"Google Drive answered {url} with a page, not the file")
        return response

    def write_bytes(self, url: str, data: bytes) -> None:
        """Write a whole file so that readers see either nothing or all of it.

        Locally the bytes go to a temporary name renamed into place; an object store makes an
        object visible only once its upload completes.
        """
        fs, path = self.filesystem(url)
        try:
            if is_local(url):
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                temporary = _temporary_name(path)
                try:
                    with open(temporary, "wb") as f:
                        f.write(data)
                    os.replace(temporary, path)
                finally:
                    if os.path.exists(temporary):
                        os.remove(temporary)
            else:
                self._retrying("write", url, lambda: fs.pipe_file(path, data))
        except PermissionError as exc:
            raise StoreError(f"permission denied writing {url}: {_describe(exc)}") from exc
        except OSError as exc:
            raise StoreError(f"cannot write {url}: {_describe(exc)}") from exc

    @contextmanager
    def write_text(self, url: str) -> Iterator[TextIO]:
        """Open `url` for writing text; readers see the old file or the whole new one."""
        fs, path = self.filesystem(url)
        local = is_local(url)
        target = _temporary_name(path) if local else path
        try:
            if local:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with fs.open(target, "w", encoding="utf-8", newline="") as f:
                yield f
            if local:
                os.replace(target, path)
        except PermissionError as exc:
            raise StoreError(f"permission denied writing {url}: {_describe(exc)}") from exc
        finally:
            if local and os.path.exists(target):
                os.remove(target)


LOCAL: Final = Store()


def s3_store(
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> Store:
    """A Store whose s3:// URLs use these settings; unset ones fall back to the AWS defaults."""
    s3: dict[str, Any] = {}
    client: dict[str, Any] = {}
    if endpoint_url:
        client["endpoint_url"] = endpoint_url
    if region:
        client["region_name"] = region
    if client:
        s3["client_kwargs"] = client
    if access_key_id:
        s3["key"] = access_key_id
    if secret_access_key:
        s3["secret"] = secret_access_key
    # Listings must see chunks that appeared since the last look.
    s3["use_listings_cache"] = False
    return Store({"s3": s3, "s3a": s3})
