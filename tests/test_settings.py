"""Settings: the layers, their precedence, presets, validation and masking."""

from __future__ import annotations

from decimal import Decimal

import pytest

from txpatterns.errors import ConfigError
from txpatterns.patterns import PRESETS
from txpatterns.settings import build, mask_dsn, parse_duration, render

FILE = """
[patterns]
preset = "seed"
[patterns.upgrade]
min_merchant_txns = 700
top_pct = 2.5
[patterns.child]
max_avg_amount = 0.1
"""


def test_defaults_are_the_banksim_preset() -> None:
    settings = build()
    assert settings.preset == "banksim"
    assert settings.thresholds == PRESETS["banksim"]
    assert settings.postgres_dsn is None
    assert settings.publish_chunk_rows == 10_000
    assert settings.publish_interval == Decimal(1)


def test_file_sets_preset_and_overrides_its_keys_exactly() -> None:
    settings = build(file_text=FILE, file_name="x.toml")
    t = settings.thresholds
    assert settings.preset == "seed"
    assert t.upgrade_min_merchant_txns == 700
    # Read as exact decimals: a binary float 0.1 would not equal Decimal("0.1").
    assert t.upgrade_top_pct == Decimal("2.5")
    assert t.child_max_avg_amount == Decimal("0.1")
    # Keys the file does not set come from the preset it chose.
    assert t.child_min_txns == PRESETS["seed"].child_min_txns
    assert settings.sources["patterns.upgrade.min_merchant_txns"] == "file x.toml"
    assert settings.sources["patterns.child.min_txns"] == "preset seed"


def test_env_beats_file_and_flags_beat_env() -> None:
    env = {
        "TXP_PATTERNS_UPGRADE_MIN_MERCHANT_TXNS": "800",
        "TXP_PATTERNS_CHILD_MIN_TXNS": "5",
        "TXP_PRESET": "banksim",
        "TXP_UNRELATED_THING": "ignored",
    }
    flags = {"patterns.child.min_txns": "6", "patterns.preset": None}
    settings = build(file_text=FILE, env=env, flags=flags)
    t = settings.thresholds
    assert settings.preset == "banksim"  # env beats the file's "seed"
    assert t.upgrade_min_merchant_txns == 800  # env beats file
    assert t.child_min_txns == 6  # flag beats env
    assert t.child_max_avg_amount == Decimal("0.1")  # file beats the preset
    assert t.dei_min_female_customers == PRESETS["banksim"].dei_min_female_customers
    assert settings.sources["patterns.child.min_txns"] == "flag"
    assert settings.sources["patterns.upgrade.min_merchant_txns"] == (
        "env TXP_PATTERNS_UPGRADE_MIN_MERCHANT_TXNS"
    )


def test_long_env_name_wins_over_alias() -> None:
    settings = build(env={"TXP_PRESET": "seed", "TXP_PATTERNS_PRESET": "banksim"})
    assert settings.preset == "banksim"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[patterns.upgrade]\ntop_pc = 10\n", "unknown setting 'patterns.upgrade.top_pc'"),
        ("[patterns]\npreset = 'huge'\n", "unknown preset 'huge'"),
        ("[patterns.child]\nmin_txns = 2.5\n", "expected a whole number"),
        ("[patterns.child]\nmin_txns = -1\n", "must not be negative"),
        ("[patterns.upgrade]\ntop_pct = 101\n", "at most 100"),
        ("[patterns.child]\nmin_txns = true\n", "expected a whole number"),
        ("[patterns\n", "not valid TOML"),
    ],
)
def test_bad_files_are_rejected_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        build(file_text=text, file_name="bad.toml")


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="TXP_PATTERNS_DEI_MIN_FEMALE_CUSTOMERS"):
        build(env={"TXP_PATTERNS_DEI_MIN_FEMALE_CUSTOMERS": "many"})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", "1"), ("250ms", "0.25"), ("0", "0"), ("1.5", "1.5"), ("2m", "120"), (" 3 s ", "3")],
)
def test_durations(text: str, seconds: str) -> None:
    assert parse_duration(text) == Decimal(seconds)


@pytest.mark.parametrize("text", ["", "-1s", "1d", "fast", "1e3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://bob:s3cret@db:5432/x", "postgresql://bob:****@db:5432/x"),
        ("postgresql://bob@db/x", "postgresql://bob@db/x"),
        ("host=db user=bob password=s3cret dbname=x", "host=db user=bob password=**** dbname=x"),
        ("host=db password='s3 cret' dbname=x", "host=db password=**** dbname=x"),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


def test_render_masks_secrets_and_names_sources() -> None:
    env = {
        "TXP_POSTGRES_DSN": "postgresql://bob:hunter2@db/x",
        "TXP_S3_SECRET_ACCESS_KEY": "AKIAsecretvalue",
        "TXP_S3_ACCESS_KEY_ID": "AKIAPUBLIC",
    }
    text = render(build(file_text=FILE, file_name="x.toml", env=env))
    assert "hunter2" not in text
    assert "AKIAsecretvalue" not in text
    assert 'dsn = "postgresql://bob:****@db/x"  # env TXP_POSTGRES_DSN' in text
    assert 'access_key_id = "AKIAPUBLIC"' in text
    assert "min_merchant_txns = 700  # file x.toml" in text
    assert "top_pct = 2.5  # file x.toml" in text
    assert "min_txns = 2  # preset seed" in text
    assert "# endpoint_url is not set" in text


def test_rendered_settings_read_back_to_the_same_thresholds() -> None:
    settings = build(file_text=FILE, file_name="x.toml")
    again = build(file_text=render(settings), file_name="shown.toml")
    assert again.thresholds == settings.thresholds
    assert again.preset == settings.preset
