"""The SparkSession the detector runs on, configured once for local mode and clusters alike."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from pyspark.sql import SparkSession

from txpatterns.detect.source import ChunkSource
from txpatterns.errors import TxpError


class SparkError(TxpError):
    """Spark cannot start, usually for want of a Java runtime."""


def check_java() -> None:
    """Fail early, with install instructions, when no usable Java runtime is found."""
    java = (
        os.path.join(os.environ["JAVA_HOME"], "bin", "java")
        if os.environ.get("JAVA_HOME")
        else shutil.which("java")
    )
    hint = "install Java 17 or 21 (Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless)"
    if java is None or not os.path.exists(java):
        raise SparkError(f"Spark needs a Java runtime and none was found: {hint}")
    try:
        subprocess.run([java, "-version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SparkError(f"the Java runtime at {java} does not run ({exc}): {hint}") from exc


def session(
    master: str = "local[*]", *, ui: bool = False, app_name: str = "txpatterns"
) -> SparkSession:
    """Get or create the SparkSession, with the chunk source registered."""
    check_java()
    local = master.startswith("local")
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        # Executors must run this interpreter, with this package and its dependencies.
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .config("spark.ui.enabled", str(ui).lower())
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(max(2, (os.cpu_count() or 2) * 2)))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.streaming.numRecentProgressUpdates", "10")
    )
    if local:
        # Never advertise the machine's external address in local mode.
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    # The Python Data Source runners start PYSPARK_PYTHON, not spark.pyspark.python: without
    # this they may start another interpreter that lacks this package.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        raise SparkError(f"Spark did not start: {exc}") from exc
    spark.sparkContext.setLogLevel("ERROR")
    spark.dataSource.register(ChunkSource)
    return spark
