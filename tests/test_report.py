"""`txpatterns report`: a self-contained page that a browser renders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline import make_stream, run_detector
from txpatterns.cli import cli
from txpatterns.patterns import PRESETS

pytestmark = [pytest.mark.spark, pytest.mark.postgres]


@pytest.fixture(scope="module")
def report_file(spark: Any, postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from txpatterns.state.db import drop_namespace

    root = tmp_path_factory.mktemp("report")
    stream = make_stream(root, rows=1000, chunk_rows=100)
    drop_namespace(postgres_dsn, "report_test")
    run_detector(spark, postgres_dsn, stream, "report_test", PRESETS["seed"])
    out = root / "report.html"
    result = CliRunner().invoke(
        cli,
        ["report", "--out", str(out), "--postgres", postgres_dsn, "--namespace", "report_test"],
    )
    drop_namespace(postgres_dsn, "report_test")
    assert result.exit_code == 0, result.output
    return out


def test_the_report_is_self_contained_and_holds_every_plot(report_file: Path) -> None:
    page = report_file.read_text()
    assert page.count("<svg") == 5
    for title in (
        "Detections per pattern (cumulative)",
        "Top merchants by detections",
        "Processing time per chunk",
        "Lag per chunk",
        "Invalid rows per chunk",
        "chunks_applied",
        "PatId2 CHILD",
    ):
        assert title in page
    # Nothing to fetch: no external scripts, styles, images or fonts.
    assert "http://" not in page and "https://" not in page and "src=" not in page
    assert "No data yet" not in page.split("Invalid rows per chunk")[0]


@pytest.mark.chromium
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed")
def test_chromium_renders_the_report(report_file: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=800,1800",
         f"--screenshot={screenshot}", report_file.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG")
    # A page of plots compresses far worse than a blank one (a few kB).
    assert len(data) > 30_000
