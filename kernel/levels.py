"""Sigma rule levels and the ECS ``event.severity`` each maps to.

Its own module, not ``kernel.schema``: alerts, replay and the report need only this table, and importing the
schema's pydantic models for it cost every command ~0.1 s of start-up (issue 19: the serial start before
``replay --workers`` forks)."""

from __future__ import annotations

SEVERITY_BY_LEVEL: dict[str, int] = {"informational": 1, "low": 21, "medium": 47, "high": 73, "critical": 99}
