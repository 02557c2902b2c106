"""Charts drawn in Python as inline SVG: they show without JavaScript and cost nothing to open."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from temporal_siem.report.model import LEVELS, OTHER_LEVEL, Timeline

LEVEL_COLORS = {
    "critical": "#b3261e", "high": "#e8590c", "medium": "#e0a800", "low": "#3b82c4", "informational": "#8a99a8",
    OTHER_LEVEL: "#b9b9b9",
}


def _step_label(step: int) -> str:
    if step == 2592000:
        return "30 days"
    for size, unit in ((31536000, "year"), (604800, "week"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if step >= size and step % size == 0:
            count = step // size
            return f"{count} {unit}" + ("s" if count > 1 else "")
    return f"{step} second" + ("s" if step != 1 else "")


def _time_label(moment: float, step: int) -> str:
    when = datetime.fromtimestamp(moment, UTC)
    if step >= 86400:
        return when.strftime("%Y-%m-%d")
    if step >= 60:
        return when.strftime("%m-%d %H:%M")
    return when.strftime("%H:%M:%S")


def timeline_svg(timeline: Timeline, width: int = 960, height: int = 240) -> str:
    """Stacked bars of alerts per severity per time bucket (event time, UTC)."""
    buckets = timeline.buckets
    if buckets == 0:
        return '<p class="muted">No alert had a usable @timestamp.</p>'
    left, right, top, bottom = 48, 10, 10, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    order = [lvl for lvl in (*LEVELS, OTHER_LEVEL) if lvl in timeline.series]
    totals = [sum(timeline.series[lvl][i] for lvl in order) for i in range(buckets)]
    peak = max(totals) or 1
    bar_w = plot_w / buckets
    gap = 1.0 if bar_w > 4 else 0.0
    parts = [f'<svg id="timeline-chart" class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Alerts per severity over event time" data-buckets="{buckets}" data-total="{sum(totals)}" '
             f'data-start="{timeline.start:.0f}" data-step="{timeline.step}" data-left="{left}" data-plot-width="{plot_w}" data-width="{width}">']
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_h - fraction * plot_h
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{round(peak * fraction)}</text>')
    for i in range(buckets):
        if totals[i] == 0:
            continue
        x = left + i * bar_w
        y = top + plot_h
        start = _time_label(timeline.start + i * timeline.step, timeline.step)
        for lvl in reversed(order):
            count = timeline.series[lvl][i]
            if not count:
                continue
            h = count / peak * plot_h
            y -= h
            parts.append(f'<rect class="bar" x="{x + gap / 2:.2f}" y="{y:.2f}" width="{max(bar_w - gap, 0.5):.2f}" height="{h:.2f}" '
                         f'fill="{LEVEL_COLORS[lvl]}" data-level="{lvl}" data-count="{count}"><title>{escape(start)}: {count} {lvl}</title></rect>')
    label_every = max(1, buckets // 6)
    for i in range(0, buckets, label_every):
        x = left + i * bar_w + bar_w / 2
        label = escape(_time_label(timeline.start + i * timeline.step, timeline.step))
        anchor = "middle"
        if x > width - right - 40:
            x, anchor = width - right, "end"
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="{anchor}" class="axis">{label}</text>')
    legend_x = left
    for lvl in order:
        parts.append(f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{LEVEL_COLORS[lvl]}"/>'
                     f'<text x="{legend_x + 14}" y="{height - 5}" class="axis">{lvl} ({sum(timeline.series[lvl])})</text>')
        legend_x += 30 + 7 * (len(lvl) + len(str(sum(timeline.series[lvl]))))
    parts.append(f'<text x="{width - right}" y="{height - 5}" text-anchor="end" class="axis">bucket: {_step_label(timeline.step)}, UTC</text>')
    parts.append(f'<rect id="timeline-brush" x="0" y="{top}" width="0" height="{plot_h}" class="brush"/>')
    parts.append("</svg>")
    return "".join(parts)
