"""The command line: documentation, settings layers, and generate -> publish -> verify."""

from __future__ import annotations

import csv
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from txpatterns.cli import cli
from txpatterns.schema import OUTPUT_COLUMNS


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


ALL_COMMANDS = commands(cli)


def test_the_expected_commands_exist() -> None:
    assert {("generate",), ("verify",), ("publish",), ("config", "show")} <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_is_documented_with_an_example(path: tuple[str, ...]) -> None:
    result = run(*path, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output, f"`txpatterns {' '.join(path)}` has no example"
    assert "txpatterns " + path[0] in result.output
    for option in ("--config", "--preset", "--set"):
        assert option in result.output


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert "txpatterns" in result.output


def test_config_show_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("txpatterns.toml").write_text(
        '[patterns]\npreset = "seed"\n[patterns.child]\nmin_txns = 4\nmax_avg_amount = 7\n'
    )
    env = {"TXP_PATTERNS_CHILD_MIN_TXNS": "9", "TXP_POSTGRES_DSN": "postgresql://u:pw1@h/d"}
    result = run("config", "show", "--set", "patterns.child.max_avg_amount=12.5", env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    assert 'preset = "seed"  # file txpatterns.toml' in out
    assert "min_txns = 9  # env TXP_PATTERNS_CHILD_MIN_TXNS" in out
    assert "max_avg_amount = 12.5  # flag" in out
    assert "min_female_customers = 10  # preset seed" in out
    assert "pw1" not in out

    other = tmp_path / "other.toml"
    other.write_text("[patterns.dei]\nmin_female_customers = 3\n")
    result = run("config", "show", "--config", other, "--preset", "banksim")
    assert 'preset = "banksim"  # flag' in result.output
    assert f"min_female_customers = 3  # file {other}" in result.output
    assert "min_txns = 80  # preset banksim" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["config", "show", "--set", "nope=1"], "expected KEY=VALUE"),
        (["config", "show", "--set", "patterns.child.min_txns=x"], "expected a whole number"),
        (["config", "show", "--config", "missing.toml"], "cannot read settings file"),
        (["publish", "--source", "s", "--to", "d", "--interval", "soon"], "duration"),
    ],
)
def test_usage_errors_exit_2_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    assert run("generate", "--out", root / "data", "--rows", "1000").exit_code == 0
    result = run(
        "publish", "--source", root / "data" / "transactions.csv", "--to", root / "input",
        "--chunk-rows", "100", "--interval", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return root


def reference_rows(root: Path, tmp_path: Path) -> list[dict[str, str]]:
    emit = tmp_path / "reference.csv"
    result = run(
        "verify", "--input", root / "input", "--importance",
        root / "data" / "CustomerImportance.csv", "--preset", "seed", "--emit", emit,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with emit.open(newline="") as f:
        return list(csv.DictReader(f))


def write_output(folder: Path, rows: list[dict[str, str]], *, complete: bool = True) -> None:
    folder.mkdir(parents=True)
    with (folder / "part-00000.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(OUTPUT_COLUMNS)
        for r in rows:
            writer.writerow(
                ["2026-11-25 10:00:00", "2026-11-25 10:00:01", r["patternId"],
                 r["ActionType"], r["customerName"], r["MerchantId"]]
            )  # fmt: skip
    if complete:
        (folder / "_SUCCESS").touch()


def test_verify_without_output_prints_counts_per_pattern(published: Path, tmp_path: Path) -> None:
    rows = reference_rows(published, tmp_path)
    result = run(
        "verify", "--input", published / "input", "--importance",
        published / "data" / "CustomerImportance.csv", "--preset", "seed",
    )  # fmt: skip
    assert result.exit_code == 0
    assert "10 chunks (0..9), 1,000 valid rows, 0 invalid rows, preset seed" in result.output
    for pattern, action in (("PatId1", "UPGRADE"), ("PatId2", "CHILD"), ("PatId3", "DEI-NEEDED")):
        count = sum(1 for r in rows if r["patternId"] == pattern)
        assert count > 0
        assert f"{pattern:<9}{action:<12}{count:>11,}" in result.output
    chunk_indexes = [int(r["chunkIndex"]) for r in rows]
    assert chunk_indexes == sorted(chunk_indexes)
    assert all(r["customerName"] == "" for r in rows if r["patternId"] == "PatId3")


def verify_output(root: Path, output: Path) -> Result:
    return run(
        "verify", "--input", root / "input", "--importance",
        root / "data" / "CustomerImportance.csv", "--preset", "seed", "--output", output,
    )  # fmt: skip


def test_verify_accepts_an_exact_output(published: Path, tmp_path: Path) -> None:
    rows = reference_rows(published, tmp_path)
    out = tmp_path / "output"
    for n, start in enumerate(range(0, len(rows), 50)):
        write_output(out / f"pattern_detected_20261125T100000_{n}.csv", rows[start : start + 50])
    # An incomplete file (no _SUCCESS) is reported and ignored, not counted.
    write_output(out / "pattern_detected_20261125T100000_99.csv", rows[:3], complete=False)
    result = verify_output(published, out)
    assert result.exit_code == 0, result.output
    assert "OK: the output equals the reference exactly." in result.output
    assert "1 incomplete files ignored" in result.output


def test_verify_reports_missing_extra_and_duplicated(published: Path, tmp_path: Path) -> None:
    rows = reference_rows(published, tmp_path)
    out = tmp_path / "output"
    extra = {**rows[0], "customerName": "C_NOT_THERE"}
    write_output(out / "pattern_detected_20261125T100000_0.csv", [*rows[1:], rows[2], extra])
    result = verify_output(published, out)
    assert result.exit_code == 1
    first = rows[0]
    assert f"missing    {first['patternId']} customer={first['customerName']!r}" in result.output
    assert "extra      " in result.output and "C_NOT_THERE" in result.output
    assert "(2 times)" in result.output
    assert "DIFFERENT: 1 missing, 1 extra, 1 duplicated, 0 bad rows." in result.output


def test_verify_rejects_a_mismatched_action_type(published: Path, tmp_path: Path) -> None:
    rows = reference_rows(published, tmp_path)
    out = tmp_path / "output"
    wrong = [dict(r) for r in rows]
    wrong[0]["ActionType"] = "CHILD" if wrong[0]["ActionType"] != "CHILD" else "UPGRADE"
    write_output(out / "pattern_detected_20261125T100000_0.csv", wrong)
    result = verify_output(published, out)
    assert result.exit_code == 1
    assert "bad row" in result.output


def test_verify_errors_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    importance = tmp_path / "imp.csv"
    importance.write_text("Source,Target,Weight,typeTrans,fraud\n")
    result = run("verify", "--input", tmp_path / "empty", "--importance", importance)
    assert result.exit_code == 2
    assert "no complete chunks" in result.output

    chunk = tmp_path / "in" / "chunk_0.csv"
    chunk.mkdir(parents=True)
    (chunk / "part-00000.csv").write_text("step,customer\n1,C1\n")
    (chunk / "_SUCCESS").touch()
    # A chunk with the wrong header is rejected whole, loudly, and the replay goes on.
    result = run("verify", "--input", tmp_path / "in", "--importance", importance)
    assert result.exit_code == 0, result.output
    assert "0 valid rows, 2 invalid rows" in result.output
    assert "chunk 0: wrong file header, expected step,customer,age,gender" in result.output

    result = run("verify", "--input", tmp_path / "nowhere", "--importance", importance)
    assert result.exit_code == 2
    assert "folder not found" in result.output

    result = run("verify", "--input", tmp_path / "in", "--importance", tmp_path / "no.csv")
    assert result.exit_code == 2
    assert "file not found" in result.output


def test_generate_refuses_bad_rows(tmp_path: Path) -> None:
    result = run("generate", "--out", tmp_path, "--rows", "0")
    assert result.exit_code == 2
