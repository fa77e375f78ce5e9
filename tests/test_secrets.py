"""No secret reaches a log, an error message, `config show` or `status`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline import make_stream
from txpatterns.cli import cli

PASSWORD = "pw-Zq81xLm"
S3_SECRET = "s3secret-Yt55pQ"


def with_password(dsn: str) -> str:
    """The same DSN with a password; the test service trusts every connection anyway."""
    scheme, rest = dsn.split("://", 1)
    user, _, host = rest.partition("@")
    return f"{scheme}://{user.split(':')[0]}:{PASSWORD}@{host}"


@pytest.mark.spark
@pytest.mark.postgres
def test_secrets_never_appear_in_any_output(
    spark: Any, postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    if "@" not in postgres_dsn:
        pytest.fail("this test needs a URL DSN with a user (TXP_TEST_POSTGRES_DSN or embedded)")
    dsn = with_password(postgres_dsn)
    env = {"TXP_POSTGRES_DSN": dsn, "TXP_S3_SECRET_ACCESS_KEY": S3_SECRET,
           "TXP_S3_ACCESS_KEY_ID": "AKIDEXAMPLE"}  # fmt: skip
    stream = make_stream(tmp_path, rows=500, chunk_rows=100)
    runner = CliRunner()
    outputs = []
    for args in (
        ["config", "show"],
        ["detect", "--input", str(stream.input), "--output", str(stream.output),
         "--importance", str(stream.importance), "--namespace", namespace,
         "--checkpoint", str(tmp_path / "ck"), "--preset", "seed", "--until-idle"],
        ["detect", "--input", str(stream.input), "--output", str(stream.output),
         "--importance", str(stream.importance), "--namespace", namespace,
         "--checkpoint", str(tmp_path / "ck"), "--preset", "seed", "--until-idle",
         "--log-format", "json"],
        ["status", "--namespace", namespace, "--json"],
        ["status", "--namespace", namespace],
        # A server that refuses: the error names the server, not the password.
        ["status", "--namespace", namespace, "--postgres",
         f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test"],
    ):  # fmt: skip
        result = runner.invoke(cli, args, env=env)
        outputs.append((args, result.exit_code, result.output))
    assert outputs[0][1] == 0 and "****" in outputs[0][2]
    assert outputs[1][1] == 0, outputs[1][2]
    assert outputs[-1][1] == 2 and "cannot connect to PostgreSQL" in outputs[-1][2]
    for args, _, text in outputs:
        assert PASSWORD not in text, args
        assert S3_SECRET not in text, args
