"""Which destructive and configuration actions on keys, secrets, certificates and identities the rule pack covers.

Issue 14 class 6: parsers normalize end actions (a key *deletion*) that no rule covered, only the preparatory step
(scheduling the deletion). ``rules health --coverage`` lists, per dataset, the sensitive actions that were seen in
the replayed logs or are known to be emitted by that dataset's parser, and which of them some rule selects.

"Covered" means a rule routed to the dataset has a selection (not a ``filter``) on the action field with a value
matching the action, or names the action in its ``tsiem_covers`` list (for rules that match on other fields, such
as a Vault path, so they do not depend on how a parser names the action). It says nothing about the rule's other
conditions: a covered action can still be filtered out, an uncovered one cannot alert at all.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sigma.rule import SigmaDetection, SigmaDetectionItem
from sigma.types import SigmaString

ACTION_FIELDS = frozenset({"event.action", "temporal.operation", "temporal.action"})

# Actions each parser emits (event.action) that delete or reconfigure keys, secrets, certificates or identities.
# Sources: docs/rule-authoring.md and the log-format reference (CloudTrail KMS/IAM/Secrets Manager/ACM event names,
# Temporal Cloud audit operations, Vault transit/PKI/sys paths as the vault parser names them, Okta event types).
KNOWN_SENSITIVE_ACTIONS: dict[str, tuple[str, ...]] = {
    "aws.cloudtrail": (
        "ScheduleKeyDeletion", "DeleteKey", "DisableKey", "DeleteImportedKeyMaterial", "PutKeyPolicy", "CreateGrant", "RevokeGrant",
        "DisableKeyRotation", "DeleteAlias", "UpdateAlias",
        "DeleteAccessKey", "CreateAccessKey", "UpdateAccessKey", "DeleteLoginProfile", "DeactivateMFADevice",
        "UpdateAssumeRolePolicy", "DeleteServerCertificate", "UploadServerCertificate", "DeleteSAMLProvider",
        "UpdateSAMLProvider", "DeleteOpenIDConnectProvider", "DeleteSecret", "PutSecretValue", "DeleteCertificate",
    ),
    "temporal_cloud.audit": (
        "DeleteAPIKey", "UpdateAPIKey", "CreateAPIKey", "CreateServiceAccountAPIKey", "DeleteServiceAccount",
        "UpdateServiceAccount", "DeleteUser", "UpdateUser", "DeleteUserGroup", "SetUserGroupNamespaceAccess",
        "UpdateUserNamespacePermissions", "SetUserNamespaceAccess", "UpdateNamespace", "DeleteNamespace",
        "UpdateAccount", "DeleteConnectivityRule", "DeleteNamespaceExportSink", "UpdateNamespaceExportSink",
    ),
    "hashicorp_vault.audit": (
        "transit.key_delete", "transit.trim", "transit.key_config", "transit.rotate", "transit.export", "transit.backup",
        "transit.restore", "transit.key_import", "pki.revoke", "pki.role_delete", "pki.role_write",
    ),
    "temporal.server": ("namespace-deleted", "certificates-reloaded"),
    "okta.system": (
        "user.lifecycle.delete.initiated", "user.lifecycle.deactivate", "user.mfa.factor.deactivate",
        "user.mfa.factor.reset_all", "system.api_token.revoke", "system.api_token.create", "application.lifecycle.delete",
        "policy.lifecycle.delete", "user.account.privilege.grant",
    ),
}
SENSITIVE_CATEGORIES = frozenset({"configuration", "iam"})
SENSITIVE_TYPES = frozenset({"deletion", "change", "creation"})


def normalized(action: str) -> str:
    """Temporal Cloud operations are matched with and without their ``API`` suffix (the parser strips it)."""
    lower = action.lower()
    return lower[:-3] if lower.endswith("api") and len(lower) > 3 else lower


def is_sensitive(event: dict[str, Any]) -> bool:
    """A configuration or IAM change, creation or deletion (what the coverage report tallies from replayed logs; any
    action named as a deletion counts too, whatever category a parser gives it)."""
    categories = event.get("event.category")
    types = event.get("event.type")
    categories = categories if isinstance(categories, list) else [categories]
    types = types if isinstance(types, list) else [types]
    return bool(SENSITIVE_CATEGORIES.intersection(c for c in categories if isinstance(c, str))
                and SENSITIVE_TYPES.intersection(t for t in types if isinstance(t, str)))


class ActionTally:
    """Counts the sensitive actions of the events it is shown, per dataset."""

    def __init__(self) -> None:
        self.seen: dict[str, Counter[str]] = {}

    def observe(self, event: dict[str, Any]) -> None:
        # Our finer action where a parser keeps Elastic's coarse one in event.action (Vault, Entra).
        dataset, action = event.get("event.dataset"), event.get("temporal.action") or event.get("event.action")
        if not isinstance(dataset, str) or not isinstance(action, str):
            return
        known = KNOWN_SENSITIVE_ACTIONS.get(dataset, ())
        lower = action.lower()
        deleting = lower.startswith("delete") or lower.endswith(("delete", "_delete", ".delete", "deletion"))
        if is_sensitive(event) or deleting or normalized(action) in {normalized(a) for a in known}:
            self.seen.setdefault(dataset, Counter())[action] += 1


@dataclass
class DatasetCoverage:
    dataset: str
    actions: dict[str, int] = field(default_factory=dict)  # action -> times seen (0: known, not seen)
    covered: dict[str, list[str]] = field(default_factory=dict)  # action -> names of the rules selecting it

    @property
    def uncovered(self) -> list[str]:
        return sorted(a for a in self.actions if a not in self.covered)

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "actions_seen": sorted(a for a, n in self.actions.items() if n),
                "actions_known": sorted(self.actions), "covered": {a: sorted(r) for a, r in sorted(self.covered.items())},
                "uncovered": self.uncovered}


def _values(node: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(node, SigmaDetection):
        for item in node.detection_items:
            _values(item, out)
    elif isinstance(node, SigmaDetectionItem) and node.field in ACTION_FIELDS:
        for value in node.value:
            out.append((node.field, value))


def _selected_actions(rule: Any) -> list[str]:
    """Glob patterns (lower-case) of the action values the rule's selections (not its filters) name."""
    patterns: list[str] = []
    for name, detection in rule.detection.detections.items():
        if name.startswith("filter"):
            continue
        found: list[tuple[str, Any]] = []
        _values(detection, found)
        for _, value in found:
            if isinstance(value, SigmaString):
                text = "".join(part if isinstance(part, str) else "*" for part in value.s)
                patterns.append(normalized(text) if not text.endswith("*") else text.lower())
    return patterns


def coverage(ruleset: Any, seen: dict[str, Counter[str]] | None = None) -> list[DatasetCoverage]:
    """Per dataset: the sensitive actions seen or known, and the rules whose selections name each one."""
    seen = seen or {}
    by_dataset: dict[str, DatasetCoverage] = {}
    for dataset in sorted(set(KNOWN_SENSITIVE_ACTIONS) | set(seen)):
        row = by_dataset[dataset] = DatasetCoverage(dataset)
        for action in KNOWN_SENSITIVE_ACTIONS.get(dataset, ()):
            row.actions[action] = 0
        for action, count in (seen.get(dataset) or {}).items():
            row.actions[action] = row.actions.get(action, 0) + count
    for compiled in ruleset.rules:
        if compiled.rule is None:
            # Loaded from the compiled-ruleset cache: its selections are unknown here, and skipping it would report
            # its actions as uncovered. Never silently: the caller loads without the cache.
            raise ValueError(f"coverage needs the parsed rules; {compiled.meta.title!r} came from the compiled-ruleset cache")
        patterns = _selected_actions(compiled.rule)
        declared = compiled.rule.custom_attributes.get("tsiem_covers") if compiled.rule.custom_attributes else None
        if isinstance(declared, list):
            patterns.extend(normalized(str(item)) for item in declared)
        if not patterns:
            continue
        datasets = compiled.datasets
        for dataset, row in by_dataset.items():
            if datasets is not None and not any(fnmatch.fnmatchcase(dataset, p) for p in datasets):
                continue
            for action in row.actions:
                if any(fnmatch.fnmatchcase(normalized(action), p) for p in patterns):
                    row.covered.setdefault(action, []).append(compiled.name or compiled.id)
    return list(by_dataset.values())
