"""Terminal output: the alert table, the run summary, the progress bar (rich).

rich is imported on first use, not with this module: a quiet run (``replay --quiet``, every worker of
``--workers``) never draws a table, and importing rich cost each start ~60 ms (issue 19).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from temporal_siem.pipeline import RunStats

    err: Console
    out: Console

LEVEL_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan", "informational": "dim"}
MAX_TABLE_ROWS = 50

_CONSOLES: dict[str, Console] = {}


def __getattr__(name: str) -> Any:
    """``console.err`` and ``console.out``, made on first use."""
    if name not in ("err", "out"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _console(name)


def _console(name: str) -> Console:
    made = _CONSOLES.get(name)
    if made is None:
        from rich.console import Console

        # Piped or captured output (CI logs, `| less`) gets a wide fixed width instead of rich's 80 columns.
        stream = sys.stderr if name == "err" else sys.stdout
        made = _CONSOLES[name] = Console(stderr=name == "err", width=None if stream.isatty() else 150)
    return made


_LEVEL_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "informational": 4}


def most_important(alerts: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The alerts the table shows: highest level first, then by time."""
    return sorted(alerts, key=lambda a: (_LEVEL_ORDER.get(str(a.get("alert.level")), 5), str(a.get("@timestamp"))))[:limit]


def alert_table(alerts: list[dict[str, Any]], limit: int = MAX_TABLE_ROWS, total: int | None = None) -> Table:
    from rich.table import Table

    total = len(alerts) if total is None else total
    table = Table(title=f"Alerts ({total})", show_lines=False, expand=True)
    table.add_column("time", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("rule", overflow="fold", ratio=3)
    table.add_column("user", overflow="fold", ratio=2)
    table.add_column("source.ip", no_wrap=True)
    table.add_column("action", overflow="fold", ratio=2)
    shown = most_important(alerts, limit)
    for alert in shown:
        level = str(alert.get("alert.level", ""))
        table.add_row(
            str(alert.get("@timestamp", ""))[:19],
            f"[{LEVEL_STYLE.get(level, '')}]{level}[/]",
            str(alert.get("rule.name", "")),
            str(alert.get("user.name") or alert.get("user.email") or _group_user(alert) or ""),
            str(alert.get("source.ip", "")),
            str(alert.get("event.action", alert.get("alert.correlation_type", ""))),
        )
    if total > len(shown):
        table.caption = f"{total - len(shown)} more in the alerts file"
    return table


def _group_user(alert: dict[str, Any]) -> str | None:
    group = alert.get("alert.group_by")
    if isinstance(group, dict):
        return ", ".join(f"{k}={v}" for k, v in group.items())
    return None


def summary_table(stats: RunStats, dead_letter_path: str | None) -> Table:
    from rich.table import Table

    table = Table(title="Summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("records read", str(stats.records_read))
    table.add_row("records parsed", str(stats.records_parsed))
    table.add_row("events", str(stats.events))
    dead = sum(stats.dead_lettered.values())
    table.add_row("dead-lettered", f"{dead}" + (f" -> {dead_letter_path}" if dead and dead_letter_path else ""))
    for reason, count in stats.dead_lettered.most_common(8):
        table.add_row(f"  {reason}", str(count))
    table.add_row("alerts", str(stats.alerts))
    for rule_id, count in stats.alerts_by_rule.most_common(20):
        table.add_row(f"  {stats.rule_titles.get(rule_id, rule_id)}", str(count))
    if len(stats.alerts_by_rule) > 20:
        rest = stats.alerts_by_rule.most_common()[20:]
        table.add_row(f"  … {len(rest)} more rules", str(sum(count for _, count in rest)))
    table.add_row("elapsed", f"{stats.elapsed:.2f} s")
    table.add_row("events/s", f"{stats.events_per_second:,.0f}")
    return table


@contextmanager
def progress_bar(total_bytes: int, enabled: bool) -> Iterator[Any]:
    """A byte-based progress bar on stderr when it is a terminal; a no-op callback otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield lambda read: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=_console("err"), transient=True)
    with progress:
        task = progress.add_task("replay", total=max(total_bytes, 1))
        yield lambda read: progress.update(task, completed=read)
