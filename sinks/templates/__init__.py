"""Index templates for Elasticsearch / OpenSearch, with mappings derived from the schema contract.

The mappings are generated from :mod:`temporal_siem.kernel.schema` so they cannot drift from what parsers
emit. Unmodelled (vendor) fields map dynamically, strings as ``keyword``. Index settings favour keeping
every alert: a malformed value (say a non-IP in an ``ip`` field) is ignored for indexing but kept in
``_source``, and fields past the mapping limit stay in ``_source`` unindexed; only a structural
conflict (an object where a value was mapped) rejects a document, which then goes to the dead letters.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

#: ECS fields that hold addresses (ECS type ``ip``).
IP_FIELDS = frozenset({"source.ip", "client.ip", "destination.ip", "related.ip", "host.ip", "server.ip"})
#: Free text (ECS ``match_only_text``; plain ``text`` works on every server version).
TEXT_FIELDS = frozenset({"message", "rule.description", "error.message"})
#: Vendor leftovers (parsers keep what ECS has no field for under the vendor's name). Their shapes differ
#: between API versions and envelopes (CloudTrail ``resources`` as objects or as ARNs), so they are one
#: ``flattened`` field each: every leaf searchable as a keyword, no mapping conflicts, no field explosion.
#: OpenSearch (2.7+) has the same idea under another name, ``flat_object`` (and without its parameters).
VENDOR_NAMESPACES = ("aws", "azure", "gcp", "google_workspace", "hashicorp_vault", "okta", "temporal_cloud", "temporal_server")
KEYWORD_LIMIT = 8191  # Lucene's term byte limit / 4: longer strings are kept in _source, not indexed.


FLAT_TYPES = ("flattened", "flat_object")


def _flat(flat_type: str) -> dict[str, Any]:
    if flat_type not in FLAT_TYPES:
        raise ValueError(f"flat_type must be one of {FLAT_TYPES}, not {flat_type!r}")
    return {"type": "flattened", "ignore_above": KEYWORD_LIMIT} if flat_type == "flattened" else {"type": "flat_object"}


def _es_type(field: str, type_name: str, flat_type: str) -> dict[str, Any]:
    if field in IP_FIELDS:
        return {"type": "ip"}
    if field in TEXT_FIELDS:
        return {"type": "text"}
    if "datetime" in type_name:
        return {"type": "date"}
    if type_name.startswith("dict[str, Any]"):
        # Values of any type under arbitrary keys (correlation group-by): one field, no mapping explosion.
        return {"type": flat_type}
    if type_name.startswith("dict["):
        return {"type": "object"}
    if "bool" in type_name:
        return {"type": "boolean"}
    if type_name in ("int", "list[int]"):
        return {"type": "long"}
    if type_name in ("float", "list[float]"):
        return {"type": "double"}
    return {"type": "keyword", "ignore_above": KEYWORD_LIMIT}


@cache
def _schema_properties(flat_type: str) -> dict[str, Any]:
    # Imported here: the schema's pydantic models cost every start ~60 ms, and only a search sink's open needs them.
    from temporal_siem.kernel.schema import field_reference

    properties: dict[str, Any] = {}
    for field, type_name, _ in field_reference():
        *parents, leaf = field.split(".")
        node = properties
        for parent in parents:
            node = node.setdefault(parent, {"properties": {}}).setdefault("properties", {})
        node[leaf] = _es_type(field, type_name, flat_type)
    # Correlation windows are bounds in time; user_agent.original also searchable as text (as in ECS).
    properties.setdefault("alert", {"properties": {}})["properties"]["window"] = {
        "properties": {"start": {"type": "date"}, "end": {"type": "date"}}}
    user_agent = properties.setdefault("user_agent", {"properties": {}})["properties"]
    user_agent["original"] = {"type": "keyword", "ignore_above": KEYWORD_LIMIT, "fields": {"text": {"type": "text"}}}
    # The raw record (and a document that did not fit the mapping): stored, not indexed, as in ECS.
    properties.setdefault("event", {"properties": {}})["properties"]["original"] = {
        "type": "keyword", "index": False, "doc_values": False}
    for namespace in VENDOR_NAMESPACES:
        properties.setdefault(namespace, _flat(flat_type))
    return properties


def ecs_mappings(flat_type: str = "flattened") -> dict[str, Any]:
    """Mappings for alerts and events alike (an alert carries its event's fields); ``flat_type`` is the
    server's name for a one-field object of any shape (Elasticsearch ``flattened``, OpenSearch ``flat_object``)."""
    return {
        "date_detection": False,
        "numeric_detection": False,
        "dynamic_templates": [
            {"strings_as_keyword": {"match_mapping_type": "string",
                                    "mapping": {"type": "keyword", "ignore_above": KEYWORD_LIMIT}}},
        ],
        "properties": copy.deepcopy(_schema_properties(flat_type)),
    }


def index_settings(shards: int | None = None, replicas: int | None = None, total_fields_limit: int = 10000) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "index.mapping.ignore_malformed": True,
        "index.mapping.total_fields.limit": total_fields_limit,
    }
    if shards is not None:
        settings["index.number_of_shards"] = shards
    if replicas is not None:
        settings["index.number_of_replicas"] = replicas
    return settings


def index_template(patterns: list[str], *, data_stream: bool = False, priority: int = 200,
                   shards: int | None = None, replicas: int | None = None,
                   extra_settings: dict[str, Any] | None = None, version: int = 1,
                   flat_type: str = "flattened") -> dict[str, Any]:
    """A composable index template (``PUT _index_template/<name>``) for the given index patterns."""
    settings = index_settings(shards, replicas)
    settings.update(extra_settings or {})
    body: dict[str, Any] = {
        "index_patterns": patterns,
        "priority": priority,
        "version": version,
        "template": {"settings": settings, "mappings": ecs_mappings(flat_type)},
        "_meta": {"managed_by": "temporal-siem", "description": "ECS mappings for temporal-siem documents"},
    }
    if data_stream:
        body["data_stream"] = {}
    return body


def dead_letter_template(patterns: list[str], *, data_stream: bool = False, priority: int = 200) -> dict[str, Any]:
    """Dead letters: the reason, the origin and an excerpt of the raw bytes; nothing parsed."""
    body: dict[str, Any] = {
        "index_patterns": patterns,
        "priority": priority,
        "template": {
            "settings": {"index.mapping.ignore_malformed": True},
            "mappings": {
                "dynamic": False,
                "properties": {
                    "@timestamp": {"type": "date"},
                    "reason": {"type": "keyword"}, "stage": {"type": "keyword"},
                    "detail": {"type": "text"}, "origin_text": {"type": "keyword"},
                    "origin": {"type": "object", "enabled": False},
                    "raw_bytes": {"type": "long"}, "raw_truncated": {"type": "boolean"},
                    "raw": {"type": "text"}, "raw_base64": {"type": "binary"},
                },
            },
        },
        "_meta": {"managed_by": "temporal-siem"},
    }
    if data_stream:
        body["data_stream"] = {}
    return body
