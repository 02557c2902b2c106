"""Operator dashboards, generated from one definition so they cannot drift from what we emit.

* Grafana: one dashboard over the daemon's Prometheus metrics (names from :mod:`temporal_siem.kernel.metrics`).
* Kibana / OpenSearch Dashboards: saved objects (NDJSON) over the alerts index: a data view, agg-based
  visualizations (the format both Kibana 8 and OpenSearch Dashboards import), a saved search and a dashboard.

``dashboards/`` in the repository holds the rendered files for manual import; ``temporal-siem setup
dashboards`` renders them again with the operator's index pattern and loads them through the APIs.
"""

from __future__ import annotations

import json
from typing import Any

from temporal_siem.sinks.elasticsearch import ROLE_DEFAULTS

# The Elasticsearch/OpenSearch sink's default alerts index (sinks/elasticsearch.py), and the rollover/suffixed names after it.
DEFAULT_INDEX_PATTERN = ROLE_DEFAULTS["alerts"][0] + "*"
INDEX_PATTERN_ID = "temporal-siem-alerts"
KIBANA_DASHBOARD_ID = "temporal-siem-alerts-dashboard"
GRAFANA_UID = "temporal-siem"

# --------------------------------------------------------------------------------------------- Grafana

_DS = {"type": "prometheus", "uid": "${datasource}"}
_SEL = '{job=~"$job"}'


def _target(expr: str, legend: str = "", ref: str = "A", instant: bool = False, fmt: str = "time_series") -> dict[str, Any]:
    target: dict[str, Any] = {"datasource": _DS, "expr": expr, "legendFormat": legend, "refId": ref, "format": fmt}
    if instant:
        target["instant"] = True
        target["range"] = False
    return target


def _panel(title: str, kind: str, targets: list[dict[str, Any]], grid: tuple[int, int, int, int], unit: str = "short",
           description: str = "", stack: bool = False, draw: str = "line") -> dict[str, Any]:
    x, y, w, h = grid
    panel: dict[str, Any] = {
        "title": title, "type": kind, "datasource": _DS, "targets": targets, "description": description,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}, "tooltip": {"mode": "multi", "sort": "desc"}},
    }
    if kind == "timeseries":
        panel["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": draw, "fillOpacity": 20 if stack or draw == "bars" else 5, "lineWidth": 1,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"}, "showPoints": "never",
        }
    elif kind == "stat":
        panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value",
                            "graphMode": "area", "textMode": "auto", "justifyMode": "auto", "orientation": "auto"}
    elif kind == "table":
        panel["options"] = {"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]}
        panel["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True}}}]
    return panel


def _row(title: str, y: int) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def _q(quantile: float, metric: str, by: str = "le") -> str:
    return f"histogram_quantile({quantile}, sum by ({by}) (rate({metric}_bucket{_SEL}[$__rate_interval])))"


def grafana_dashboard() -> dict[str, Any]:
    rate = "[$__rate_interval]"
    panels: list[dict[str, Any]] = [
        _row("Health and throughput", 0),
        _panel("Up", "stat", [_target(f"min(tsiem_up{_SEL})", "up")], (0, 1, 4, 5),
               description="1 while the daemon runs and its sources and required sinks are healthy."),
        _panel("Records consumed / s", "timeseries", [_target(f"sum by (source) (rate(tsiem_records_consumed_total{_SEL}{rate}))", "{{source}}")],
               (4, 1, 10, 8), unit="reqps"),
        _panel("Events / s by dataset", "timeseries", [_target(f"sum by (dataset) (rate(tsiem_events_total{_SEL}{rate}))", "{{dataset}}")],
               (14, 1, 10, 8), unit="reqps", stack=True),
        _panel("Consumer lag (records)", "timeseries", [_target(f"sum by (topic) (tsiem_consumer_lag{_SEL})", "{{topic}}"),
                                                         _target(f"max by (topic, partition) (tsiem_consumer_lag{_SEL})", "{{topic}}/{{partition}}", "B")],
               (0, 9, 12, 8), description="Kafka records not yet consumed: growing lag means the engine or a sink cannot keep up."),
        _panel("Batch latency", "timeseries", [_target(_q(0.5, "tsiem_batch_seconds"), "p50"), _target(_q(0.95, "tsiem_batch_seconds"), "p95", "B"),
                                               _target(_q(0.99, "tsiem_batch_seconds"), "p99", "C")], (12, 9, 12, 8), unit="s"),
        _row("Dead letters", 17),
        _panel("Dead letters / s by reason", "timeseries",
               [_target(f"sum by (reason, stage) (rate(tsiem_dead_letters_total{_SEL}{rate}))", "{{stage}}: {{reason}}")],
               (0, 18, 16, 8), unit="reqps", stack=True),
        _panel("Dead letters in range", "stat", [_target(f"sum(increase(tsiem_dead_letters_total{_SEL}[$__range]))", "dead letters")],
               (16, 18, 8, 8)),
        _row("Alerts", 26),
        _panel("Alerts by rule", "timeseries",
               [_target(f"sum by (rule_name) (increase(tsiem_alerts_total{_SEL}{rate}))", "{{rule_name}}")],
               (0, 27, 14, 9), stack=True, draw="bars"),
        _panel("Alerts by level", "timeseries", [_target(f"sum by (level) (increase(tsiem_alerts_total{_SEL}{rate}))", "{{level}}")],
               (14, 27, 10, 9), stack=True, draw="bars"),
        _panel("Top rules in range", "table",
               [_target(f"topk(20, sum by (rule_id, rule_name, level) (increase(tsiem_alerts_total{_SEL}[$__range])))", "", instant=True, fmt="table")],
               (0, 36, 12, 9)),
        _panel("Rule evaluations and matches / s (top 10)", "timeseries",
               [_target(f"topk(10, sum by (rule_id) (rate(tsiem_rule_evaluations_total{_SEL}{rate})))", "eval {{rule_id}}"),
                _target(f"topk(10, sum by (rule_id) (rate(tsiem_rule_matches_total{_SEL}{rate})))", "match {{rule_id}}", "B")],
               (12, 36, 12, 9), unit="reqps"),
        _row("Sinks", 45),
        _panel("Sink write latency p95", "timeseries", [_target(_q(0.95, "tsiem_sink_write_seconds", "le, sink"), "{{sink}}")],
               (0, 46, 8, 8), unit="s"),
        _panel("Sink failures / s (batches retried)", "timeseries",
               [_target(f"sum by (sink) (rate(tsiem_sink_failures_total{_SEL}{rate}))", "{{sink}}")], (8, 46, 8, 8), unit="reqps",
               description="Batches a sink refused: the pipeline retries with backoff, so these mean backpressure, not loss."),
        _panel("Documents rejected / s (dead-lettered)", "timeseries",
               [_target(f"sum by (sink) (rate(tsiem_sink_rejected_total{_SEL}{rate}))", "{{sink}}")], (16, 46, 8, 8), unit="reqps"),
        _row("Correlation state", 54),
        _panel("Open correlation groups", "timeseries", [_target(f"sum(tsiem_correlation_groups{_SEL})", "groups")], (0, 55, 8, 8)),
        _panel("Correlation evictions / s", "timeseries", [_target(f"sum(rate(tsiem_correlation_evictions_total{_SEL}{rate}))", "evictions")],
               (8, 55, 8, 8), unit="reqps", description="Groups dropped by the memory cap: correlations may be missed."),
        _panel("Late events / s", "timeseries", [_target(f"sum(rate(tsiem_late_events_total{_SEL}{rate}))", "late")], (16, 55, 8, 8), unit="reqps"),
    ]
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    return {
        "uid": GRAFANA_UID, "title": "temporal-siem", "tags": ["temporal-siem", "security"], "timezone": "utc",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0},
            {"name": "job", "label": "job", "type": "query", "datasource": _DS, "query": {"query": "label_values(tsiem_up, job)", "refId": "job"},
             "definition": "label_values(tsiem_up, job)", "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "refresh": 2, "hide": 0},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


# --------------------------------------------------------------------------------------------- Kibana

_QUERY = {"query": {"query": "", "language": "kuery"}, "filter": []}
_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"

LEVEL_FIELD = "alert.level"
ENTITY_TERMS = (("user.name", "Top users in alerts"), ("source.ip", "Top source IPs in alerts"),
                ("temporal.namespace", "Top Temporal namespaces in alerts"), ("threat.technique.id", "ATT&CK techniques"))
SEARCH_COLUMNS = ("rule.name", "alert.level", "alert.type", "user.name", "source.ip", "temporal.namespace", "event.action")


def _count() -> dict[str, Any]:
    return {"id": "1", "enabled": True, "type": "count", "params": {}, "schema": "metric"}


def _terms(agg_id: str, field: str, schema: str, size: int) -> dict[str, Any]:
    return {"id": agg_id, "enabled": True, "type": "terms", "schema": schema,
            "params": {"field": field, "orderBy": "1", "order": "desc", "size": size, "otherBucket": False, "otherBucketLabel": "Other",
                       "missingBucket": False, "missingBucketLabel": "Missing"}}


def _histogram_params() -> dict[str, Any]:
    return {
        "type": "histogram", "grid": {"categoryLines": False}, "addTooltip": True, "addLegend": True, "legendPosition": "right",
        "times": [], "addTimeMarker": False, "labels": {"show": False},
        "categoryAxes": [{"id": "CategoryAxis-1", "type": "category", "position": "bottom", "show": True, "style": {}, "scale": {"type": "linear"},
                          "labels": {"show": True, "filter": True, "truncate": 100}, "title": {}}],
        "valueAxes": [{"id": "ValueAxis-1", "name": "LeftAxis-1", "type": "value", "position": "left", "show": True, "style": {},
                       "scale": {"type": "linear", "mode": "normal"}, "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 100},
                       "title": {"text": "Alerts"}}],
        "seriesParams": [{"show": True, "type": "histogram", "mode": "stacked", "data": {"label": "Alerts", "id": "1"}, "valueAxis": "ValueAxis-1",
                          "drawLinesBetweenPoints": True, "lineWidth": 2, "showCircles": True}],
        "thresholdLine": {"show": False, "value": 10, "width": 1, "style": "full", "color": "#E7664C"},
    }


def _table_params() -> dict[str, Any]:
    return {"perPage": 10, "showPartialRows": False, "showMetricsAtAllLevels": False, "showTotal": False, "totalFunc": "sum", "percentageCol": ""}


def _visualization(vis_id: str, title: str, vis_type: str, params: dict[str, Any], aggs: list[dict[str, Any]]) -> dict[str, Any]:
    vis_state = {"title": title, "type": vis_type, "params": params, "aggs": aggs}
    return {
        "id": vis_id, "type": "visualization",
        "attributes": {"title": title, "description": "", "version": 1, "uiStateJSON": "{}", "visState": json.dumps(vis_state),
                       "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({**_QUERY, "indexRefName": _INDEX_REF})}},
        "references": [{"id": INDEX_PATTERN_ID, "name": _INDEX_REF, "type": "index-pattern"}],
    }


def kibana_objects(index_pattern: str = DEFAULT_INDEX_PATTERN) -> list[dict[str, Any]]:
    """Saved objects in import order: data view first, dashboard last."""
    time_histogram = {"id": "2", "enabled": True, "type": "date_histogram", "schema": "segment",
                      "params": {"field": "@timestamp", "useNormalizedEsInterval": True, "scaleMetricValues": False, "interval": "auto",
                                 "drop_partials": False, "min_doc_count": 1, "extended_bounds": {}}}
    visualizations = [
        _visualization("temporal-siem-alerts-over-time", "Alerts over time by severity", "histogram", _histogram_params(),
                       [_count(), time_histogram, _terms("3", LEVEL_FIELD, "group", 5)]),
        _visualization("temporal-siem-alerts-by-rule", "Alerts by rule", "table", _table_params(),
                       [_count(), _terms("2", "rule.name", "bucket", 50), _terms("3", LEVEL_FIELD, "bucket", 5)]),
        _visualization("temporal-siem-alerts-by-severity", "Alerts by severity", "pie",
                       {"type": "pie", "addTooltip": True, "addLegend": True, "legendPosition": "right", "isDonut": True,
                        "labels": {"show": True, "values": True, "last_level": True, "truncate": 100}},
                       [_count(), _terms("2", LEVEL_FIELD, "segment", 5)]),
    ]
    for field, title in ENTITY_TERMS:
        vis_id = "temporal-siem-top-" + field.replace(".", "-")
        visualizations.append(_visualization(vis_id, title, "table", _table_params(), [_count(), _terms("2", field, "bucket", 20)]))
    search = {
        "id": "temporal-siem-alerts-search", "type": "search",
        "attributes": {"title": "temporal-siem alerts", "description": "", "columns": list(SEARCH_COLUMNS), "sort": [["@timestamp", "desc"]],
                       "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({**_QUERY, "indexRefName": _INDEX_REF})}},
        "references": [{"id": INDEX_PATTERN_ID, "name": _INDEX_REF, "type": "index-pattern"}],
    }
    layout = [(0, 0, 48, 12)] + [(0, 12, 24, 15), (24, 12, 24, 15)] + [(x, 27 + 15 * (i // 2), 24, 15) for i, x in enumerate((0, 24, 0, 24))]
    panels, references = [], []
    for number, (vis, (x, y, w, h)) in enumerate(zip(visualizations, layout, strict=True)):
        panels.append({"version": "8.0.0", "type": "visualization", "gridData": {"x": x, "y": y, "w": w, "h": h, "i": str(number + 1)},
                       "panelIndex": str(number + 1), "embeddableConfig": {}, "panelRefName": f"panel_{number}"})
        references.append({"name": f"panel_{number}", "type": "visualization", "id": vis["id"]})
    panels.append({"version": "8.0.0", "type": "search", "gridData": {"x": 0, "y": 57, "w": 48, "h": 20, "i": str(len(panels) + 1)},
                   "panelIndex": str(len(panels) + 1), "embeddableConfig": {}, "panelRefName": f"panel_{len(panels)}"})
    references.append({"name": f"panel_{len(panels) - 1}", "type": "search", "id": search["id"]})
    dashboard = {
        "id": KIBANA_DASHBOARD_ID, "type": "dashboard",
        "attributes": {"title": "temporal-siem alerts", "description": "Alerts raised by temporal-siem: over time, by rule, by severity, by entity.",
                       "panelsJSON": json.dumps(panels), "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
                       "timeRestore": True, "timeFrom": "now-7d", "timeTo": "now", "refreshInterval": {"pause": True, "value": 0}, "version": 1,
                       "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(_QUERY)}},
        "references": references,
    }
    data_view = {"id": INDEX_PATTERN_ID, "type": "index-pattern",
                 "attributes": {"title": index_pattern, "timeFieldName": "@timestamp", "name": "temporal-siem alerts"}, "references": []}
    return [data_view, *visualizations, search, dashboard]


def kibana_ndjson(index_pattern: str = DEFAULT_INDEX_PATTERN) -> str:
    return "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in kibana_objects(index_pattern))


def grafana_json() -> str:
    return json.dumps(grafana_dashboard(), indent=2, sort_keys=True) + "\n"


def kibana_fields(objects: list[dict[str, Any]]) -> set[str]:
    """Every document field the saved objects query (aggregation fields, search columns and sort, time field)."""
    fields: set[str] = set()
    for obj in objects:
        attributes = obj["attributes"]
        if obj["type"] == "index-pattern":
            fields.add(attributes["timeFieldName"])
        elif obj["type"] == "visualization":
            for agg in json.loads(attributes["visState"])["aggs"]:
                if "field" in agg.get("params", {}):
                    fields.add(agg["params"]["field"])
        elif obj["type"] == "search":
            fields.update(attributes["columns"])
            fields.update(column for column, _ in attributes["sort"])
    return fields
