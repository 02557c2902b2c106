"""What every sink's config model shares.

Each sink module defines its options as a pydantic model beside the sink (``FileConfig`` beside ``FileSink``):
a subclass of ``SinkOptions`` with ``type`` fixed to the sink's registry name, ``extra="forbid"`` so a
misspelt option is an error with its path, and ``SecretStr`` for secrets so ``config show`` masks them by
type. The model is the one place a default is written: the sink reads every option from it, whether it was
built from the YAML config (sinks/factory.py) or in code with keyword options (``FileSink(path="x")``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ConfigDict

from temporal_siem.kernel.config import SinkConfig

ROLES = ("alerts", "events", "dead_letter")


class SinkOptions(SinkConfig):
    """A sink's typed config: the kernel's envelope (type, required) plus the sink's own options, nothing else."""

    model_config = ConfigDict(extra="forbid")


C = TypeVar("C", bound=SinkOptions)


def resolve(model: type[C], config: C | None, options: dict[str, Any]) -> C:
    """The sink's config: the one given, or one validated from keyword options (library use, tests)."""
    if config is None:
        return model.model_validate(options)
    if options:
        raise TypeError(f"{model.__name__}: pass a config or keyword options, not both")
    if not isinstance(config, model):
        raise TypeError(f"expected a {model.__name__}, not {type(config).__name__}")
    return config


def check_role(sink: str, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"{sink}: role must be one of {sorted(ROLES)}, not {role!r}")
