"""Sinks by name. Adding a sink: one module in sinks/ and one line here."""

from __future__ import annotations

import importlib
from typing import Any

from temporal_siem.sinks.base import Sink

SINKS: dict[str, str] = {
    "file": "temporal_siem.sinks.file:FileSink",
    "elasticsearch": "temporal_siem.sinks.elasticsearch:ElasticsearchSink",
    "opensearch": "temporal_siem.sinks.opensearch:OpenSearchSink",
    "splunk_hec": "temporal_siem.sinks.splunk_hec:SplunkHecSink",
    "syslog": "temporal_siem.sinks.syslog:SyslogSink",
    "kafka": "temporal_siem.sinks.kafka:KafkaSink",
}


def create_sink(kind: str, **options: Any) -> Sink:
    try:
        target = SINKS[kind]
    except KeyError:
        raise KeyError(f"unknown sink {kind!r}; known: {', '.join(sorted(SINKS))}") from None
    module_name, _, class_name = target.partition(":")
    sink_class = getattr(importlib.import_module(module_name), class_name)
    sink: Sink = sink_class(**options)
    return sink


def sink_names() -> list[str]:
    return sorted(SINKS)
