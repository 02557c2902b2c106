"""Parsers by name. Adding a format: one module in parsers/ and one line here.

Order matters for auto-detection: specific formats first, the generic ``ecs`` and ``json`` last.
"""

from __future__ import annotations

import importlib
from functools import cache

from temporal_siem.parsers.base import Parser

PARSERS: dict[str, str] = {
    "json": "temporal_siem.parsers.generic_json:JsonParser",
    "temporal_cloud_audit": "temporal_siem.parsers.temporal_cloud_audit:TemporalCloudAuditParser",
    "temporal_server": "temporal_siem.parsers.temporal_server:TemporalServerParser",
    "vault_audit": "temporal_siem.parsers.vault_audit:VaultAuditParser",
    "ecs": "temporal_siem.parsers.ecs:EcsParser",
    "okta": "temporal_siem.parsers.okta:OktaParser",
    "aws_cloudtrail": "temporal_siem.parsers.aws_cloudtrail:CloudTrailParser",
    "entra_signin": "temporal_siem.parsers.entra_signin:EntraSigninParser",
    "google_workspace": "temporal_siem.parsers.google_workspace:GoogleWorkspaceParser",
}

# Auto-detection order; names missing from PARSERS are ignored.
DETECTION_ORDER: tuple[str, ...] = (
    "aws_cloudtrail",
    "entra_signin",
    "google_workspace",
    "okta",
    "vault_audit",
    "temporal_cloud_audit",
    "temporal_server",
    "ecs",
    "json",
)


@cache
def get_parser(name: str) -> Parser:
    try:
        target = PARSERS[name]
    except KeyError:
        raise KeyError(f"unknown format {name!r}; known: {', '.join(sorted(PARSERS))}") from None
    module_name, _, class_name = target.partition(":")
    parser_class = getattr(importlib.import_module(module_name), class_name)
    parser: Parser = parser_class()
    return parser


def parser_names() -> list[str]:
    return sorted(PARSERS)


def detection_chain() -> list[Parser]:
    return [get_parser(name) for name in DETECTION_ORDER if name in PARSERS]
