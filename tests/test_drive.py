"""Google Drive share links as publish sources, against a local server that answers as Drive
does: the file at once for small files, a confirmation page first for large ones."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from txpatterns.cli import cli
from txpatterns.generate import generate
from txpatterns.store import drive_file_id

FORM = """<!DOCTYPE html><html><body><p>Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="http://127.0.0.1:{port}/download" method="get">
<input type="submit" value="Download anyway"/>
<input type="hidden" name="id" value="{id}"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-42">
</form></body></html>"""


@pytest.fixture
def drive(tmp_path: Path) -> Iterator[tuple[str, bytes, list[str]]]:
    transactions, importance = tmp_path / "t.csv", tmp_path / "i.csv"
    with transactions.open("w", newline="") as tx, importance.open("w", newline="") as imp:
        generate(tx, imp, rows=300, seed=4)
    data = transactions.read_bytes()
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            url = urllib.parse.urlparse(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            file_id = query.get("id")
            if url.path == "/uc" and file_id == "SMALL":
                self.reply(data, "text/csv")
            elif url.path == "/uc" and file_id == "BIG":
                page = FORM.format(port=self.server.server_address[1], id="BIG")
                self.reply(page.encode(), "text/html; charset=utf-8")
            elif url.path == "/download" and query == {
                "id": "BIG", "export": "download", "confirm": "t", "uuid": "u-42"
            }:  # fmt: skip
                self.reply(data, "application/octet-stream")
            elif url.path == "/uc" and file_id == "PRIVATE":
                self.reply(b"<html><body>Sign in</body></html>", "text/html")
            else:
                self.send_error(404)

        def reply(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/uc?export=download", data, requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("link", "file_id"),
    [
        ("https://drive.google.com/file/d/1AbC-d_9/view?usp=sharing", "1AbC-d_9"),
        ("https://drive.google.com/open?id=1AbC-d_9", "1AbC-d_9"),
        ("https://drive.google.com/uc?export=download&id=1AbC-d_9", "1AbC-d_9"),
        ("https://example.com/file/d/1AbC/view", None),
    ],
)
def test_drive_links_are_recognised(link: str, file_id: str | None) -> None:
    assert drive_file_id(link) == file_id


@pytest.mark.parametrize(
    ("link", "hops"),
    [
        ("https://drive.google.com/open?id=SMALL", 1),
        ("https://drive.google.com/file/d/BIG/view?usp=sharing", 2),
    ],
)
def test_publish_from_a_drive_link(
    drive: tuple[str, bytes, list[str]], tmp_path: Path, link: str, hops: int
) -> None:
    download_url, data, requests = drive
    result = CliRunner().invoke(
        cli,
        ["publish", "--source", link, "--to", str(tmp_path / "out"), "--chunk-rows", "100",
         "--interval", "0", "--set", f"publish.drive_download_url={download_url}"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(requests) == hops
    _header, *rows = data.splitlines(keepends=True)
    parts = sorted((tmp_path / "out").glob("chunk_*.csv/part-00000.csv"))
    published = b"".join(p.read_bytes().split(b"\n", 1)[1] for p in parts)
    assert len(parts) == 3 and published == b"".join(rows)


def test_a_drive_file_that_is_not_shared_is_a_clear_error(
    drive: tuple[str, bytes, list[str]], tmp_path: Path
) -> None:
    download_url, _, _ = drive
    result = CliRunner().invoke(
        cli,
        ["publish", "--source", "https://drive.google.com/file/d/PRIVATE/view",
         "--to", str(tmp_path / "out"), "--set", f"publish.drive_download_url={download_url}"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "anyone with the link" in result.output
