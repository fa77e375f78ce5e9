"""The generated datasets exercise every pattern under the preset they are meant for."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from txpatterns.generate import generate
from txpatterns.patterns import PATTERN_IDS, PRESETS
from txpatterns.publish import publish
from txpatterns.reference import replay_folder
from txpatterns.store import LOCAL


def detections_per_pattern(tmp_path: Path, rows: int, preset: str, seed: int = 0) -> Counter[str]:
    transactions, importance = tmp_path / "transactions.csv", tmp_path / "importance.csv"
    with transactions.open("w", newline="") as tx, importance.open("w", newline="") as imp:
        generate(tx, imp, rows=rows, seed=seed)
    with transactions.open("rb") as source:
        publish(source, str(transactions), str(tmp_path / "input"), LOCAL, interval=0)
    replay = replay_folder(str(tmp_path / "input"), str(importance), PRESETS[preset])
    assert sum(c.valid for c in replay.chunks) == rows
    assert not replay.rejected
    return Counter(d.pattern_id for d in replay.detections)


@pytest.mark.parametrize("seed", [0, 1])
def test_seed_preset_fires_every_pattern_on_1000_rows(tmp_path: Path, seed: int) -> None:
    counts = detections_per_pattern(tmp_path, 1000, "seed", seed)
    assert all(counts[p] > 0 for p in PATTERN_IDS), counts


@pytest.mark.slow
def test_banksim_preset_fires_every_pattern_on_the_default_dataset(tmp_path: Path) -> None:
    counts = detections_per_pattern(tmp_path, 594_643, "banksim")
    assert all(counts[p] > 0 for p in PATTERN_IDS), counts
