"""Settings as the application loads them: the kernel's models, with every sink entry typed.

The kernel cannot know the sinks (it imports no stage), so its ``SinkConfig`` is an envelope that accepts
any option. Here the ``sinks:`` lists become the union of the registered sink models tagged on ``type``
(sinks/registry.py), so ``config show``, ``run`` and ``replay --config`` refuse an unknown key at any depth,
named by its path (``sinks.alerts[0].bulk_sizee``, ``detection.correlation.allowed_latenes_seconds``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from temporal_siem.kernel import config as kernel_config
from temporal_siem.kernel.config import Settings
from temporal_siem.sinks.factory import describe_errors
from temporal_siem.sinks.registry import TypedSinksConfig


class AppSettings(Settings):
    sinks: TypedSinksConfig = TypedSinksConfig()


class ConfigError(ValueError):
    """The configuration is invalid; the message names each key at fault by its path."""


def load_settings(path: str | Path | None = None, **overrides: Any) -> AppSettings:
    """The YAML file (optional), then TSIEM_* environment variables, then overrides, all validated."""
    try:
        return kernel_config.load_settings(path, settings_class=AppSettings, **overrides)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None
