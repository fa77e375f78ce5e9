"""One frozen Settings object, merged from defaults < settings file < TXP_* variables < flags.

The library never reads the environment or opens the settings file itself: the CLI hands over
the file's text and a copy of the environment.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Final, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from txpatterns.errors import ConfigError
from txpatterns.patterns import DEFAULT_PRESET, PRESETS, Thresholds

ENV_PREFIX: Final = "TXP_"
MASK: Final = "****"


def _as_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
        return int(value)
    raise ValueError("expected a whole number")


def _as_decimal(value: object) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("expected a decimal number")
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("expected a decimal number") from None
        if parsed.is_finite():
            return parsed
    raise ValueError("expected a decimal number")


def _as_str(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("expected a string")


_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_SECONDS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}


def parse_duration(value: object) -> Decimal:
    """Parse a duration such as "1s", "250ms", "1.5s", "2m" or a bare number of seconds."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool) and value >= 0:
        return Decimal(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError('expected a duration such as "1s", "250ms" or "0"')
    return Decimal(match.group(1)) * _SECONDS[match.group(2) or "s"]


def _as_positive_int(value: object) -> int:
    number = _as_int(value)
    if number < 1:
        raise ValueError("expected a whole number of at least 1")
    return number


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _as_zone(value: object) -> str:
    name = _as_str(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Asia/Kolkata)"
        ) from None
    return name


def _as_namespace(value: object) -> str:
    name = _as_str(value)
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
        raise ValueError("use 1-40 lower-case letters, digits or '_', starting with a letter")
    return name


def _as_non_negative_int(value: object) -> int:
    number = _as_int(value)
    if number < 0:
        raise ValueError("expected a whole number of at least 0")
    return number


def _as_reader(value: object) -> str:
    name = _as_str(value).strip()
    if name not in ("python", "native"):
        raise ValueError("expected python (fsspec on the executors) or native (Spark's reader)")
    return name


def _as_preset(value: object) -> str:
    name = _as_str(value).strip()
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return name


@dataclass(frozen=True)
class Key:
    """One setting: its dotted name in the file, how to parse it, and whether it is secret."""

    name: str
    parse: Callable[[object], Any]
    secret: bool = False
    # Where the value feeds a Thresholds field, that field's name.
    threshold: str | None = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.replace(".", "_").upper()


KEYS: Final = (
    Key("patterns.preset", _as_preset),
    Key("patterns.upgrade.min_merchant_txns", _as_int, threshold="upgrade_min_merchant_txns"),
    Key("patterns.upgrade.top_pct", _as_decimal, threshold="upgrade_top_pct"),
    Key("patterns.upgrade.bottom_pct", _as_decimal, threshold="upgrade_bottom_pct"),
    Key("patterns.child.min_txns", _as_int, threshold="child_min_txns"),
    Key("patterns.child.max_avg_amount", _as_decimal, threshold="child_max_avg_amount"),
    Key("patterns.dei.min_female_customers", _as_int, threshold="dei_min_female_customers"),
    Key("publish.chunk_rows", _as_positive_int),
    Key("publish.interval", parse_duration),
    Key("publish.drive_download_url", _as_str),
    Key("postgres.dsn", _as_str, secret=True),
    Key("detect.input", _as_str),
    Key("detect.output", _as_str),
    Key("detect.importance", _as_str),
    Key("detect.quarantine", _as_str),
    Key("detect.namespace", _as_namespace),
    Key("detect.workdir", _as_str),
    Key("detect.checkpoint", _as_str),
    Key("detect.master", _as_str),
    Key("detect.trigger", parse_duration),
    Key("detect.max_chunks_per_batch", _as_non_negative_int),
    Key("detect.spark_ui", _as_bool),
    Key("detect.reader", _as_reader),
    Key("output.batch_size", _as_positive_int),
    Key("output.max_wait", parse_duration),
    Key("output.timezone", _as_zone),
    Key("s3.endpoint_url", _as_str),
    Key("s3.region", _as_str),
    Key("s3.access_key_id", _as_str),
    Key("s3.secret_access_key", _as_str, secret=True),
)
KEYS_BY_NAME: Final = {k.name: k for k in KEYS}
# Defaults of the settings that are not thresholds (those come from the preset).
DEFAULTS: Final[Mapping[str, object]] = {
    "publish.chunk_rows": 10_000,
    "publish.interval": Decimal(1),
    "detect.namespace": "default",
    "detect.workdir": "./txp-data",
    "detect.master": "local[*]",
    "detect.trigger": Decimal("0.25"),
    "detect.max_chunks_per_batch": 16,
    "detect.spark_ui": False,
    "detect.reader": "python",
    "output.batch_size": 50,
    "output.max_wait": Decimal(5),
    "output.timezone": "Asia/Kolkata",
}
# Short spellings people reach for first; the long form wins when both are set.
ENV_ALIASES: Final = {"TXP_PRESET": "patterns.preset"}


@dataclass(frozen=True)
class DetectSettings:
    """Where the detector reads and writes, and how it runs."""

    input: str | None = None
    output: str | None = None
    importance: str | None = None
    quarantine: str | None = None
    namespace: str = "default"
    workdir: str = "./txp-data"
    checkpoint: str | None = None
    master: str = "local[*]"
    trigger: Decimal = Decimal("0.25")
    max_chunks_per_batch: int = 16
    spark_ui: bool = False
    reader: str = "python"
    batch_size: int = 50
    max_wait: Decimal = Decimal(5)
    timezone: str = "Asia/Kolkata"


@dataclass(frozen=True)
class Settings:
    """The effective settings of one command, with where each value came from."""

    preset: str = DEFAULT_PRESET
    thresholds: Thresholds = PRESETS[DEFAULT_PRESET]
    postgres_dsn: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    publish_chunk_rows: int = 10_000
    publish_interval: Decimal = Decimal(1)
    drive_download_url: str | None = None
    detect: DetectSettings = field(default_factory=DetectSettings)
    values: Mapping[str, object] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _parse(key: Key, value: object, origin: str) -> object:
    try:
        return key.parse(value)
    except ValueError as exc:
        raise ConfigError(f"{key.name} from {origin}: {exc} (got {value!r})") from None


def parse_file(text: str, name: str) -> dict[str, object]:
    """Parse a txpatterns.toml text into {dotted key: value}, rejecting unknown keys."""
    try:
        table = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    values: dict[str, object] = {}
    for dotted, value in _flatten(table).items():
        key = KEYS_BY_NAME.get(dotted)
        if key is None:
            known = "\n  ".join(KEYS_BY_NAME)
            raise ConfigError(f"{name}: unknown setting {dotted!r}; known settings:\n  {known}")
        values[dotted] = _parse(key, value, name)
    return values


def parse_env(env: Mapping[str, str]) -> dict[str, tuple[object, str]]:
    """Pick the TXP_* variables that name settings: {dotted key: (value, variable name)}."""
    picked: dict[str, tuple[object, str]] = {}
    for variable, dotted in ENV_ALIASES.items():
        if variable in env:
            picked[dotted] = (_parse(KEYS_BY_NAME[dotted], env[variable], variable), variable)
    for key in KEYS:
        if key.env in env:
            picked[key.name] = (_parse(key, env[key.env], key.env), key.env)
    return picked


def build(
    *,
    file_text: str | None = None,
    file_name: str = "txpatterns.toml",
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object | None] | None = None,
) -> Settings:
    """Merge the layers, lowest first, into one Settings; flags whose value is None are unset."""
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    if file_text is not None:
        for dotted, value in parse_file(file_text, file_name).items():
            values[dotted], sources[dotted] = value, f"file {file_name}"
    for dotted, (value, variable) in parse_env(env or {}).items():
        values[dotted], sources[dotted] = value, f"env {variable}"
    for dotted, raw in (flags or {}).items():
        if raw is None:
            continue
        key = KEYS_BY_NAME[dotted]
        values[dotted], sources[dotted] = _parse(key, raw, "flag"), "flag"

    preset = str(values.get("patterns.preset", DEFAULT_PRESET))
    sources.setdefault("patterns.preset", "default")
    overrides: dict[str, Any] = {
        k.threshold: values[k.name] for k in KEYS if k.threshold and k.name in values
    }
    try:
        thresholds = replace(PRESETS[preset], **overrides)
    except ValueError as exc:
        raise ConfigError(f"patterns: {exc}") from None
    effective: dict[str, object] = {"patterns.preset": preset, **DEFAULTS}
    for key in KEYS:
        if key.threshold:
            effective[key.name] = getattr(thresholds, key.threshold)
            sources.setdefault(key.name, f"preset {preset}")
        elif key.name in values:
            effective[key.name] = values[key.name]

    def optional(name: str) -> str | None:
        value = values.get(name)
        return None if value is None else str(value)

    return Settings(
        preset=preset,
        thresholds=thresholds,
        postgres_dsn=optional("postgres.dsn"),
        s3_endpoint_url=optional("s3.endpoint_url"),
        s3_region=optional("s3.region"),
        s3_access_key_id=optional("s3.access_key_id"),
        s3_secret_access_key=optional("s3.secret_access_key"),
        publish_chunk_rows=cast(int, effective["publish.chunk_rows"]),
        publish_interval=cast(Decimal, effective["publish.interval"]),
        drive_download_url=optional("publish.drive_download_url"),
        detect=DetectSettings(
            input=optional("detect.input"),
            output=optional("detect.output"),
            importance=optional("detect.importance"),
            quarantine=optional("detect.quarantine"),
            namespace=cast(str, effective["detect.namespace"]),
            workdir=cast(str, effective["detect.workdir"]),
            checkpoint=optional("detect.checkpoint"),
            master=cast(str, effective["detect.master"]),
            trigger=cast(Decimal, effective["detect.trigger"]),
            max_chunks_per_batch=cast(int, effective["detect.max_chunks_per_batch"]),
            spark_ui=cast(bool, effective["detect.spark_ui"]),
            reader=cast(str, effective["detect.reader"]),
            batch_size=cast(int, effective["output.batch_size"]),
            max_wait=cast(Decimal, effective["output.max_wait"]),
            timezone=cast(str, effective["output.timezone"]),
        ),
        values=effective,
        sources=sources,
    )


def mask_dsn(dsn: str) -> str:
    """Hide the password in a PostgreSQL URL or keyword DSN."""
    masked = re.sub(r"(://[^:/@]*:)[^@]*@", rf"\g<1>{MASK}@", dsn)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", rf"\g<1>{MASK}", masked)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return str(value)


def render(settings: Settings) -> str:
    """Render the effective settings as TOML, secrets masked, each value's source as a comment."""
    lines = ["# Effective settings; precedence: flag > env TXP_* > settings file > preset/default."]
    section = None
    for key in KEYS:
        table, _, leaf = key.name.rpartition(".")
        if table != section:
            lines += ["", f"[{table}]"]
            section = table
        value = settings.values.get(key.name)
        if value is None:
            lines.append(f"# {leaf} is not set")
            continue
        if key.secret:
            value = mask_dsn(str(value)) if key.name == "postgres.dsn" else MASK
        lines.append(
            f"{leaf} = {_toml_value(value)}  # {settings.sources.get(key.name, 'default')}"
        )
    return "\n".join(lines) + "\n"
