"""The self-contained HTML page: inline CSS and script, SVG charts, the alerts embedded as data.

Nothing on the page is fetched when it opens. All text that came from logs is escaped here (server side)
or set with textContent (client side): a hostile user name or rule title is shown, never executed.
"""

from __future__ import annotations

from html import escape
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import orjson

from temporal_siem.report.model import ENTITY_FIELDS, LEVELS, OTHER_LEVEL, HealthRow, ReportModel, build_model, text
from temporal_siem.report.payload import build_payload, clean_event, encode_payload
from temporal_siem.report.svg import LEVEL_COLORS, timeline_svg

MAX_CORRELATIONS_SHOWN = 100
MAX_EVENTS_PER_CORRELATION = 25
MAX_HEALTH_ROWS = 5_000
ENTITY_TITLES = {"user": "Users", "source.ip": "Source IPs", "namespace": "Namespaces", "key": "Keys (KMS, Vault, API keys)"}


def _version() -> str:
    try:
        return metadata.version("temporal-siem")
    except metadata.PackageNotFoundError:
        return "unknown"


def _static(name: str) -> str:
    return resources.files("temporal_siem.report").joinpath("static", name).read_text(encoding="utf-8")


def _e(value: Any) -> str:
    return escape(text(value, 10_000), quote=True)


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _e(value) if value not in (None, "") else "&ndash;"
    if isinstance(value, float) and not value.is_integer():
        # Enough digits to show a short run (0.043 s), not "0.0".
        return f"{value:,.3f}" if abs(value) < 1 else f"{value:,.2f}" if abs(value) < 100 else f"{value:,.1f}"
    return f"{int(value):,}"


def _level_badge(level: str) -> str:
    color = LEVEL_COLORS.get(level, LEVEL_COLORS[OTHER_LEVEL])
    return f'<span class="badge" style="background:{color}">{_e(level)}</span>'


def _summary(model: ReportModel) -> str:
    run = model.run
    cards = [
        ("records read", run.get("records_read")), ("records parsed", run.get("records_parsed")), ("events", run.get("events")),
        ("dead-lettered", run.get("dead_lettered")), ("alerts", model.alerts_total), ("events/s", run.get("events_per_second")),
        ("elapsed (s)", run.get("elapsed_seconds")),
    ]
    html = []
    if model.health.load_errors:
        # Where everybody looks first: a rule that did not load is detection the reader believes they have.
        files = ", ".join(f"<code>{_e(f)}</code>" for f, _ in model.health.load_errors[:10])
        more = f" and {len(model.health.load_errors) - 10:,} more" if len(model.health.load_errors) > 10 else ""
        html.append(f'<div class="banner" id="load-error-banner"><strong>{len(model.health.load_errors):,} rule file(s) failed to load and did not run:'
                    f'</strong> {files}{more}. <a href="#health">Details in Rule health</a>.</div>')
    html.append('<div class="cards" id="summary-cards">')
    for label, value in cards:
        key = label.split(" ")[0].replace("/", "_").replace("-", "_")
        html.append(f'<div class="card" data-metric="{_e(key)}"><div class="value">{_num(value)}</div><div class="label">{_e(label)}</div></div>')
    html.append("</div>")
    levels = "".join(f'<li>{_level_badge(lvl)} <span data-level-count="{lvl}">{model.by_level[lvl]:,}</span></li>'
                     for lvl in (*LEVELS, OTHER_LEVEL) if model.by_level.get(lvl))
    types = ", ".join(f"{_e(k)}: {v:,}" for k, v in sorted(model.by_type.items()))
    html.append(f'<ul class="levels">{levels}</ul><p class="muted">Alert types: {types or "none"}.</p>')
    reasons = run.get("dead_lettered_by_reason")
    if isinstance(reasons, dict) and reasons:
        rows = "".join(f"<tr><td><code>{_e(reason)}</code></td><td class='num'>{_num(count)}</td></tr>"
                       for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1] if isinstance(kv[1], int) else 0))
        html.append(f'<h3>Dead-lettered by reason</h3><table id="dead-letter-table" class="compact"><thead><tr><th>reason</th>'
                    f'<th class="num">records</th></tr></thead><tbody>{rows}</tbody></table>')
    return "".join(html)


def _rules(model: ReportModel) -> str:
    if not model.rules:
        return '<p class="muted">No alerts.</p>'
    peak = max(r.count for r in model.rules)
    rows = []
    for rule in model.rules:
        width = max(1.0, rule.count / peak * 100)
        attack = " ".join(f'<span class="tag">{_e(t)}</span>' for t in rule.attack) or '<span class="muted">&ndash;</span>'
        kind = '<span class="tag corr">correlation</span>' if rule.alert_type == "correlation" else ""
        rows.append(
            f'<tr data-rule-id="{_e(rule.id)}"><td><a href="#alerts" class="rule-link" data-rule="{_e(rule.id)}">{_e(rule.name)}</a> {kind}'
            f'<div class="muted small">{_e(rule.id)}</div></td><td>{_level_badge(rule.level)}</td><td>{attack}</td>'
            f'<td class="num" data-count="{rule.count}">{rule.count:,}</td><td class="barcell"><div class="hbar" style="width:{width:.1f}%;'
            f'background:{LEVEL_COLORS.get(rule.level, LEVEL_COLORS[OTHER_LEVEL])}"></div></td></tr>')
    return ('<table id="rules-table"><thead><tr><th>rule</th><th>level</th><th>ATT&amp;CK</th><th class="num">alerts</th><th></th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _attack(model: ReportModel) -> str:
    if not model.attack:
        return '<p class="muted">No alert carries ATT&amp;CK tags.</p>'
    peak = max((n for row in model.attack.values() for n in row.values()), default=1) or 1
    cells = []
    for tactic, techniques in model.attack.items():
        items = "".join(
            f'<li style="background:rgba(232,89,12,{0.12 + 0.6 * count / peak:.2f})" data-technique="{_e(tech)}">'
            f'<span>{_e(tech)}</span> <span class="num">{count:,}</span></li>' for tech, count in techniques.items())
        total = sum(techniques.values())
        cells.append(f'<div class="tactic" data-tactic="{_e(tactic)}"><h3>{_e(tactic.replace("_", " "))}'
                     f' <span class="muted small">{total:,}</span></h3><ul>{items}</ul></div>')
    return f'<div class="attack-matrix" id="attack-matrix">{"".join(cells)}</div>'


def _entities(model: ReportModel) -> str:
    blocks = []
    for kind in ENTITY_FIELDS:
        top = model.entities.get(kind, [])
        if top:
            peak = top[0][1]
            rows = "".join(
                f'<tr><td><a href="#alerts" class="entity-link" data-entity="{_e(value)}">{_e(value)}</a></td>'
                f'<td class="num">{count:,}</td><td class="barcell"><div class="hbar" style="width:{max(1.0, count / peak * 100):.1f}%"></div></td></tr>'
                for value, count in top)
            body = f'<table class="compact" data-entity-kind="{_e(kind)}"><tbody>{rows}</tbody></table>'
        else:
            body = '<p class="muted">none in the alerts</p>'
        fields = ", ".join(ENTITY_FIELDS[kind][0])
        blocks.append(f'<div class="entity-block"><h3>{_e(ENTITY_TITLES.get(kind, kind))}</h3><div class="muted small">{_e(fields)}</div>{body}</div>')
    return f'<div class="entities">{"".join(blocks)}</div>'


def _correlations(model: ReportModel, retained: dict[str, dict[str, Any]]) -> str:
    if not model.correlations:
        return '<p class="muted">No correlation alerts.</p>'
    shown = model.correlations[:MAX_CORRELATIONS_SHOWN]
    alert_titles = {text(a.get("alert.id"), 200): text(a.get("rule.name")) for a in model.correlations}
    html = []
    if len(model.correlations) > len(shown):
        html.append(f'<p class="muted">The first {len(shown):,} of {len(model.correlations):,}; all are in the alerts table below.</p>')
    for alert in shown:
        ids = alert.get("alert.source_event_ids")
        ids = ids if isinstance(ids, list) else []
        group = alert.get("alert.group_by")
        group_text = ", ".join(f"{text(k)}={text(v)}" for k, v in group.items()) if isinstance(group, dict) else ""
        window = alert.get("alert.window")
        window_text = f'{text(window.get("start"))} → {text(window.get("end"))}' if isinstance(window, dict) else ""
        count = alert.get("alert.source_event_count", len(ids))
        rows = []
        kept = 0
        for event_id in ids[:MAX_EVENTS_PER_CORRELATION]:
            event = retained.get(text(event_id, 200))
            if event is None:
                alert_title = alert_titles.get(text(event_id, 200))
                note = f"the alert “{_e(alert_title)}” (a referenced correlation)" if alert_title else "not retained by the replay"
                rows.append(f'<tr class="missing"><td colspan="5"><code>{_e(event_id)}</code> {note}</td></tr>')
                continue
            kept += 1
            event = clean_event(event)
            user = event.get("user.name") or event.get("user.email") or event.get("user.id")
            rows.append(f"<tr><td>{_e(event.get('@timestamp'))}</td><td><code>{_e(event_id)}</code></td><td>{_e(event.get('event.action'))}</td>"
                        f"<td>{_e(user)}</td><td>{_e(event.get('source.ip') or event.get('client.ip'))}</td></tr>")
        extra_ids = len(ids) - MAX_EVENTS_PER_CORRELATION
        more = f'<p class="muted small">{extra_ids} more ids in the table detail.</p>' if extra_ids > 0 else ""
        html.append(
            f'<details class="correlation" data-alert-id="{_e(alert.get("alert.id"))}"><summary>{_level_badge(text(alert.get("alert.level")))} '
            f'<strong>{_e(alert.get("rule.name"))}</strong> <span class="muted">{_e(alert.get("@timestamp"))}</span> · '
            f'{_e(alert.get("alert.correlation_type"))} · {_num(count)} events · {_e(group_text)}</summary>'
            f'<p class="small">window {_e(window_text)}; value {_e(alert.get("alert.value"))}; rules {_e(alert.get("alert.rules"))}</p>'
            f'<table class="compact contributing"><thead><tr><th>@timestamp</th><th>event.id</th><th>event.action</th><th>user</th><th>source ip</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>{more}</details>')
    return "".join(html)


def _health_row(row: HealthRow) -> str:
    missing = ", ".join(f"<code>{_e(f)}</code>" for f in row.missing_fields) or '<span class="muted">&ndash;</span>'
    notes = "".join(f'<div class="small muted">{_e(w)}</div>' for w in row.warnings[:5])
    return (f'<tr><td>{_e(row.title)}<div class="muted small">{_e(row.id)}</div>{notes}</td><td>{_e(row.level)}</td>'
            f'<td class="num">{_num(row.routed)}</td><td class="num">{_num(row.evaluated)}</td><td class="num">{_num(row.matched)}</td>'
            f'<td class="num">{_num(row.errors)}</td><td>{missing}</td><td class="small">{_e(row.source)}</td></tr>')


def _health(model: ReportModel) -> str:
    health = model.health
    if not health.reported:
        return '<p class="muted" id="health-absent">The detector reported no rule statistics for this run.</p>'
    html = []
    never = health.never_routed
    missing = health.with_missing_fields
    html.append(f'<ul><li><span id="health-never-routed">{len(never):,}</span> of {len(health.rules):,} rules never saw a routed event</li>'
                f'<li><span id="health-missing-fields">{len(missing):,}</span> rules reference fields never present in the events</li>'
                f'<li><span id="health-load-errors">{len(health.load_errors):,}</span> rule files failed to load</li>'
                f'<li><span id="health-rule-errors">{len(health.with_errors):,}</span> rules raised errors while evaluating events</li></ul>')
    if health.extra:
        html.append('<p class="small muted">' + "; ".join(f"{_e(k)}: {_num(v)}" for k, v in health.extra.items()) + "</p>")
    if health.load_errors:
        rows = "".join(f"<tr><td><code>{_e(f)}</code></td><td>{_e(err)}</td></tr>" for f, err in health.load_errors[:MAX_HEALTH_ROWS])
        html.append('<h3>Load errors</h3><table class="compact" id="load-errors-table"><thead><tr><th>file</th><th>error</th></tr></thead>'
                    f'<tbody>{rows}</tbody></table>')
    header = ('<thead><tr><th>rule</th><th>level</th><th class="num">routed</th><th class="num">evaluated</th><th class="num">matched</th>'
              '<th class="num">errors</th><th>missing fields</th><th>source</th></tr></thead>')
    flagged = health.to_look_at
    if flagged:
        rows = "".join(_health_row(r) for r in flagged[:MAX_HEALTH_ROWS])
        html.append(f'<h3>Rules to look at</h3><table class="compact" id="health-table">{header}<tbody>{rows}</tbody></table>')
    if health.rules:
        rows = "".join(_health_row(r) for r in health.rules[:MAX_HEALTH_ROWS])
        html.append(f'<details><summary>All {len(health.rules):,} rules</summary><table class="compact" id="health-all-table">{header}'
                    f'<tbody>{rows}</tbody></table></details>')
    return "".join(html)


def render_html(alerts: list[dict[str, Any]], run: dict[str, Any] | None = None, detector_stats: dict[str, Any] | None = None,
                retained: dict[str, dict[str, Any]] | None = None, inputs: list[str] | None = None, title: str = "temporal-siem replay report") -> str:
    retained = retained or {}
    model = build_model(alerts, run, detector_stats, inputs)
    blob = encode_payload(build_payload(alerts, retained))
    inputs_text = ", ".join(text(p, 300) for p in model.inputs[:20]) + (f" and {len(model.inputs) - 20} more" if len(model.inputs) > 20 else "")
    meta = orjson.dumps({"total": model.alerts_total}).decode()
    sections = [
        ("summary", "Run summary", _summary(model)),
        ("timeline", "Alert timeline", timeline_svg(model.timeline)
         + (f'<p class="muted small">{model.timeline.untimed:,} alerts without a usable @timestamp are not drawn.</p>' if model.timeline.untimed else "")
         + (f'<p class="muted small" id="timeline-outside">Drawn: the busy range. Outside it: {model.timeline.before:,} earlier and '
            f'{model.timeline.after:,} later alerts (in the table).</p>' if model.timeline.before or model.timeline.after else "")
         + '<p class="muted small">Drag across the chart to narrow the alerts table to that time range.</p>'),
        ("rules", "Alerts per rule (by severity)", _rules(model)),
        ("attack", "ATT&CK tactics and techniques", _attack(model)),
        ("entities", "Top entities", _entities(model)),
        ("correlations", f"Correlation alerts ({len(model.correlations):,})", _correlations(model, retained)),
        ("alerts", "All alerts", _alerts_table_shell()),
        ("health", "Rule health", _health(model)),
    ]
    nav = "".join(f'<a href="#{sid}">{escape(label.split(" (")[0])}</a>' for sid, label, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{escape(label)}</h2>{content}</section>' for sid, label, content in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{_static('report.css')}</style></head><body>"
        f'<header><h1>{escape(title)}</h1><p class="muted">Generated {escape(model.generated)} by temporal-siem {escape(_version())}'
        f'{" from " + escape(inputs_text) if inputs_text else ""}.</p><nav>{nav}</nav></header><main>{body}</main>'
        f'<script type="application/json" id="report-meta">{meta}</script>'
        f'<script type="application/octet-stream" id="report-data">{blob}</script>'
        f"<script>{_static('report.js')}</script></body></html>\n"
    )


def _alerts_table_shell() -> str:
    return (
        '<div class="filters"><label>rule <select id="filter-rule"><option value="">all rules</option></select></label>'
        '<label>severity <select id="filter-level"><option value="">all</option></select></label>'
        '<label>type <select id="filter-type"><option value="">all</option><option value="0">rule</option>'
        '<option value="1">correlation</option></select></label>'
        '<label>entity <input id="filter-entity" type="search" placeholder="user, IP, namespace, key…" size="28"></label>'
        '<label>order <select id="sort-order"><option value="asc">oldest first</option><option value="desc">newest first</option></select></label>'
        '<span id="filter-time" class="chip" hidden></span>'
        '<button id="filter-clear" type="button">clear</button>'
        '<button id="export-csv" type="button">export CSV</button><button id="export-json" type="button">export JSON</button></div>'
        '<p id="alerts-status" class="muted">Loading alerts…</p>'
        '<table id="alerts-table"><thead><tr><th>@timestamp</th><th>level</th><th>rule</th><th>type</th><th>action</th><th>outcome</th>'
        '<th>namespace</th><th>entities</th></tr></thead><tbody></tbody></table>'
        '<div class="pager"><button id="page-prev" type="button">&lsaquo; previous</button> <span id="page-info"></span> '
        '<button id="page-next" type="button">next &rsaquo;</button></div>'
        '<div id="alert-detail" class="detail" hidden></div>'
    )


def write_report(path: str | Path, alerts: list[dict[str, Any]], run: dict[str, Any] | None = None, detector_stats: dict[str, Any] | None = None,
                 retained: dict[str, dict[str, Any]] | None = None, inputs: list[str] | None = None) -> int:
    """Render and write the report; returns its size in bytes."""
    data = render_html(alerts, run, detector_stats, retained, inputs).encode("utf-8", "replace")
    Path(path).write_bytes(data)
    return len(data)
