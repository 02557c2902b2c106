"""Configuration: one YAML file mirrored by pydantic-settings models.

Precedence, highest first: explicit overrides (CLI flags) > environment variables
(``TSIEM_`` prefix, ``__`` between levels, e.g. ``TSIEM_INGEST__KAFKA__GROUP_ID``) > the YAML file >
defaults. Secrets are ``SecretStr`` and masked by ``temporal-siem config show``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidatorFunctionWrapHandler, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from temporal_siem.kernel.secrets import REDACTED, is_secret_key, mask_text

MASK = "***"


class KafkaTopic(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    pattern: str | None = Field(None, description="Regex of topic names, instead of name.")
    format: str = "auto"
    grace_seconds: float | None = Field(
        None, description="How late (event time) this source's records may arrive; default detection.correlation.allowed_lateness_seconds.")


class StreamConfig(BaseModel):
    """The daemon's stream engine (Quix Streams): keyed state, internal topics, delivery (docs/operations.md)."""

    model_config = ConfigDict(extra="forbid")
    processing_guarantee: Literal["at-least-once", "exactly-once"] = Field(
        "at-least-once", description="exactly-once: Kafka transactions over scope messages, state changelogs, alerts_topic and offsets.")
    state_dir: str = Field(".temporal-siem-state", description="Local RocksDB state (a cache: rebuilt from the changelog topics).")
    scope_partitions: int | None = Field(None, ge=1, description="Partitions of the scopes topic; default: the most of any input topic.")
    replication_factor: int | None = Field(None, ge=1, description="Of the internal topics; default: that of the input topics.")
    commit_interval_seconds: float = Field(1.0, gt=0, description="Checkpoint: flush sinks, commit offsets and state this often.")
    alerts_topic: str | None = Field(None, description="Also produce alerts to this topic (inside the transaction with exactly-once).")
    tick_interval_seconds: float = Field(0.5, gt=0, description="How often each input partition's event-time mark is sent to every scope.")
    source_idle_seconds: float = Field(30.0, gt=0, description="An input partition silent this long stops holding the watermark back.")

    @model_validator(mode="after")
    def _silence_is_repeated_in_time(self) -> StreamConfig:
        """A member repeats a partition's silent flag every half of ``source_idle_seconds``, at its ticks, and scope
        partitions let a flag lapse after ``source_idle_seconds``: ticks rarer than that would make every flag lapse
        (silent partitions would hold every window), silently."""
        if self.tick_interval_seconds * 2 > self.source_idle_seconds:
            raise ValueError(f"stream.tick_interval_seconds ({self.tick_interval_seconds}) must be at most half of "
                             f"stream.source_idle_seconds ({self.source_idle_seconds})")
        return self


class KafkaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bootstrap_servers: list[str] = ["127.0.0.1:9092"]
    group_id: str = "temporal-siem"
    client_id: str = "temporal-siem"
    topics: list[KafkaTopic] = []
    dead_letter_topic: str | None = "temporal-siem-dead-letter"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = 1000
    poll_timeout_ms: int = 500
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # Daemon (docs/operations.md): the stream engine, group liveness, bounded shutdown.
    stream: StreamConfig = StreamConfig()
    session_timeout_ms: int = 10_000
    shutdown_timeout_seconds: float = 30.0


class IngestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: int = 1000
    kafka: KafkaConfig = KafkaConfig()


class GeoIPConfig(BaseModel):
    """MaxMind-format databases (GeoLite2/GeoIP2) for ``source.geo.*`` / ``source.as.*``; unset or unreadable = no geo fields."""

    model_config = ConfigDict(extra="forbid")
    city_database: Path | None = Field(None, description="City or Country .mmdb (GeoLite2-City.mmdb).")
    asn_database: Path | None = Field(None, description="ASN .mmdb (GeoLite2-ASN.mmdb).")


class ParsingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = "auto"
    max_record_bytes: int = 8 * 1024 * 1024
    keep_original: bool = False
    geoip: GeoIPConfig = GeoIPConfig()


class CorrelationConfig(BaseModel):
    """The correlation engine's options; the engine reads its defaults from here (detections/correlation/engine.py)."""

    model_config = ConfigDict(extra="forbid")
    allowed_lateness_seconds: float = Field(
        300.0, description="Event-time lateness before a window is decided; negative: unbounded (what a replay uses).")
    max_groups: int = 1_000_000
    max_events_per_group: int = 10_000
    max_alert_event_ids: int = 100
    max_pending_events: int = Field(1_000_000, description="Matched events waiting for the watermark; beyond it the oldest are applied early.")
    max_future_seconds: float = Field(
        86_400.0, description="Events this far ahead of the wall clock are rejected (a hostile timestamp would stall every window)."
    )
    max_rejected_events: int = Field(10_000, description="Late/unusable events held for the caller to dead-letter; beyond it they are only counted.")


class DetectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[str] = []
    builtin_rules: bool = True
    pipelines: list[str] = Field([], description="Extra pySigma processing pipeline YAML files.")
    filters: list[str] = Field([], description="Directories of Sigma meta-filter rules.")
    allow_rule_errors: bool = Field(False, description="Run even when a rule fails to load (replay and run otherwise stop with exit 3).")
    correlation: CorrelationConfig = CorrelationConfig()


class SinkConfig(BaseModel):
    """One sink as the kernel sees it: ``type`` names it in sinks/registry.py, ``required`` is its failure
    policy, every other key is an option of that sink.

    The kernel imports no stage, so it cannot know a sink's options: this envelope accepts any. Each sink
    declares its own model beside it (a subclass with ``extra="forbid"``, sinks/options.py), and the
    application loads settings whose sink lists are a union of those models tagged on ``type``
    (temporal_siem.settings), so an unknown option is refused at load with its path.
    """

    model_config = ConfigDict(extra="allow")
    type: str
    required: bool = Field(True, description="Required sinks apply backpressure when down; optional ones drop with a metric.")
    _given: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _remember_given_keys(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        model = handler(data)
        if isinstance(data, dict) and isinstance(model, SinkConfig):
            model._given = tuple(str(key) for key in data)
        return model

    def given_options(self) -> dict[str, Any]:
        """The options written in the config (not the defaults), in the order written: what ``config show`` prints."""
        names = [key for key in self._given if key not in ("type", "required")]
        names += [key for key in (self.model_extra or {}) if key not in names]
        return {name: getattr(self, name) for name in names if name in self.model_fields_set or name in (self.model_extra or {})}


class SinksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alerts: list[SinkConfig] = [SinkConfig(type="file", path="-")]
    events: list[SinkConfig] = []
    dead_letter: SinkConfig = SinkConfig(type="file", path="dead-letter.jsonl")


class MetricsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9108


class Settings(BaseSettings):
    """The whole effective configuration."""

    model_config = SettingsConfigDict(env_prefix="TSIEM_", env_nested_delimiter="__", extra="forbid")

    ingest: IngestConfig = IngestConfig()
    parsing: ParsingConfig = ParsingConfig()
    detection: DetectionConfig = DetectionConfig()
    sinks: SinksConfig = SinksConfig()
    metrics: MetricsConfig = MetricsConfig()
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls), file_secret_settings


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by ``load_settings`` (held in a class attribute for the call)."""

    path: Path | None = None

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if _YamlSource.path is None:
            return {}
        with open(_YamlSource.path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{_YamlSource.path}: the top level must be a mapping")
        return data


S = TypeVar("S", bound=Settings)


@overload
def load_settings(path: str | Path | None = None, *, settings_class: type[S], **overrides: Any) -> S: ...
@overload
def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings: ...
def load_settings(path: str | Path | None = None, *, settings_class: type[Settings] = Settings, **overrides: Any) -> Settings:
    """Load the YAML file (optional), apply environment variables, then explicit overrides.

    ``settings_class``: the application passes its subclass whose sink lists are typed (temporal_siem.settings).
    """
    _YamlSource.path = Path(path) if path else None
    try:
        return settings_class(**overrides)
    finally:
        _YamlSource.path = None


def masked(settings: BaseModel) -> dict[str, Any]:
    """The effective config as plain data with every secret masked: ``SecretStr`` values by their type;
    in free-form maps (a sink's options as the kernel's envelope holds them) values under secret-named keys;
    and credentials inside any text (``mask_config_text``)."""
    data: dict[str, Any] = _plain(settings)
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, SinkConfig):
        typed = type(value).model_config.get("extra") == "forbid"
        options = value.given_options()
        shown = options if typed else _free_form(options)
        return {"type": value.type, "required": value.required, **{k: _plain(v) for k, v in shown.items()}}
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in _free_form(value).items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return mask_config_text(value)
    return value


def _free_form(mapping: dict[Any, Any]) -> dict[Any, Any]:
    """A map whose keys no model declares: secret-named keys (``token``, ``password``...) are masked, at any depth."""
    return {k: (MASK if is_secret_key(str(k)) and v else _mask_named(v)) for k, v in mapping.items()}


def _mask_named(value: Any) -> Any:
    if isinstance(value, dict):
        return _free_form(value)
    if isinstance(value, list):
        return [_mask_named(v) for v in value]
    return value


# ``user:password@host`` with no scheme (a Kafka bootstrap server written with credentials).
_BARE_USERINFO = re.compile(r"^([^:/@\s]{1,256}):([^@/\s]{1,512})@")


def mask_config_text(text: str) -> str:
    """Credentials inside a value whose key is not secret-named: URL passwords (``https://user:pw@``,
    ``user:pw@broker``), secret query parameters (``?token=``), auth schemes (``Bearer ...``), token shapes."""
    if len(text) < 6:
        return text
    masked = mask_text(text).replace(REDACTED, MASK)
    return _BARE_USERINFO.sub(lambda m: f"{m.group(1)}:{MASK}@", masked)
