"""Parsers by name. Adding a format: one module in parsers/ and one line here (its place in the
dict is its place in auto-detection)."""

from __future__ import annotations

import importlib
from functools import cache

from temporal_siem.parsers.base import Parser

#: Name -> "module:Parser class", in auto-detection order: the first parser that accepts a record parses it,
#: so specific formats come first and the generic ``ecs`` and ``json`` last.
PARSERS: dict[str, str] = {
    "aws_cloudtrail": "temporal_siem.parsers.aws_cloudtrail:CloudTrailParser",
    "entra_signin": "temporal_siem.parsers.entra_signin:EntraSigninParser",
    "google_workspace": "temporal_siem.parsers.google_workspace:GoogleWorkspaceParser",
    "okta": "temporal_siem.parsers.okta:OktaParser",
    "vault_audit": "temporal_siem.parsers.vault_audit:VaultAuditParser",
    "temporal_cloud_audit": "temporal_siem.parsers.temporal_cloud_audit:TemporalCloudAuditParser",
    "temporal_server": "temporal_siem.parsers.temporal_server:TemporalServerParser",
    "ecs": "temporal_siem.parsers.ecs:EcsParser",
    "json": "temporal_siem.parsers.generic_json:JsonParser",
}


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


def detection_chain() -> list[Parser]:
    return [get_parser(name) for name in PARSERS]
