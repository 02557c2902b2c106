"""Sinks by name. Adding a sink: one module in sinks/ (the sink and its config model) and one entry here.

The entry names the sink class and its config model; everything else follows from it: the union of the
models tagged on ``type`` that validates the ``sinks:`` config (temporal_siem.settings), the factory
(sinks/factory.py), the option reference in docs/sinks.md and the contract tests in tests/sinks/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field, TypeAdapter

from temporal_siem.kernel.config import SinkConfig, SinksConfig
from temporal_siem.sinks.base import Sink
from temporal_siem.sinks.elasticsearch import ElasticsearchConfig, ElasticsearchSink
from temporal_siem.sinks.file import FileConfig, FileSink
from temporal_siem.sinks.kafka import KafkaSink, KafkaSinkConfig
from temporal_siem.sinks.opensearch import OpenSearchConfig, OpenSearchSink
from temporal_siem.sinks.options import SinkOptions
from temporal_siem.sinks.splunk_hec import SplunkHecConfig, SplunkHecSink
from temporal_siem.sinks.syslog import SyslogConfig, SyslogSink


@dataclass(frozen=True)
class SinkEntry:
    #: The Sink class, called as ``sink(config, role=role)``.
    sink: Callable[..., Sink]
    config: type[SinkOptions]


SINKS: dict[str, SinkEntry] = {
    "file": SinkEntry(FileSink, FileConfig),
    "elasticsearch": SinkEntry(ElasticsearchSink, ElasticsearchConfig),
    "opensearch": SinkEntry(OpenSearchSink, OpenSearchConfig),
    "splunk_hec": SinkEntry(SplunkHecSink, SplunkHecConfig),
    "syslog": SinkEntry(SyslogSink, SyslogConfig),
    "kafka": SinkEntry(KafkaSink, KafkaSinkConfig),
}

if TYPE_CHECKING:
    AnySinkConfig = SinkOptions
else:
    #: One sink entry of the config: the registered models, told apart by ``type``.
    AnySinkConfig = Annotated[Union[tuple(entry.config for entry in SINKS.values())], Field(discriminator="type")]  # noqa: UP007

_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnySinkConfig)


def sink_config(config: SinkConfig | dict[str, Any]) -> SinkOptions:
    """A sink entry validated against its sink's model (an already typed one is returned as it is).

    Raises pydantic's ValidationError: an unknown ``type`` or option, or a bad value.
    """
    if isinstance(config, SinkOptions):
        return config
    data = config if isinstance(config, dict) else {"type": config.type, "required": config.required, **config.given_options()}
    typed: SinkOptions = _ADAPTER.validate_python(data)
    return typed


def _typed_defaults(name: str) -> Any:
    """The kernel's default for a ``sinks`` field, typed (the defaults are written once, in kernel/config.py)."""
    default = SinksConfig.model_fields[name].get_default(call_default_factory=True)
    return [sink_config(item) for item in default] if isinstance(default, list) else sink_config(default)


class TypedSinksConfig(SinksConfig):
    """``sinks:`` with every entry validated against its sink's model: an unknown option is an error with its path."""

    alerts: list[AnySinkConfig] = Field(default_factory=lambda: _typed_defaults("alerts"))  # type: ignore[assignment]
    events: list[AnySinkConfig] = Field(default_factory=lambda: _typed_defaults("events"))  # type: ignore[assignment]
    dead_letter: AnySinkConfig = Field(default_factory=lambda: _typed_defaults("dead_letter"))
