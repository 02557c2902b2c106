"""The self-contained HTML report of a replay (``temporal-siem replay --report FILE.html``)."""

from temporal_siem.report.collect import EventRecorder
from temporal_siem.report.render import render_html, write_report

__all__ = ["EventRecorder", "render_html", "write_report"]
