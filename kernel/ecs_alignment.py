"""Where our ECS values differ on purpose from what Elastic's own integrations write (issue 17).

Users index our events next to Elastic's integrations and run Elastic's rules and dashboards on them, so the key
fields (``@timestamp``, ``event.outcome``, ``event.action``, ``event.category``, ``source.ip``, ``user.*``,
``user_agent.original``, ``cloud.account.id``) follow Elastic's ``okta``, ``azure`` (signinlogs),
``google_workspace``, ``aws`` (cloudtrail) and ``hashicorp_vault`` pipelines. This table lists every deliberate
difference, and the fields we fill where Elastic leaves them empty; ``docs/schema.md`` renders it and
``tests/parsers/test_elastic_agreement.py`` measures the agreement.
"""

from __future__ import annotations

# (format, field, our value, Elastic's value, why)
DIFFERENCES: tuple[tuple[str, str, str, str, str], ...] = (
    ("okta", "user.name",
     "`actor.alternateId` before the `@`, or all of it when it has none (`Temporal Cloud`)",
     "the first run of `[A-Za-z0-9._-]` in it (`Temporal`)",
     "a name cut at the first space names a different principal; ECS `user.name` is the short name or login"),
    ("google_workspace", "event.outcome",
     "challenge events: success when `login_challenge_status` starts with `Challenge Passed` (any case) or is `passed`",
     "success only for exactly `Challenge Passed`, else failure",
     "Google writes `Challenge Passed.` and `passed` too (log-format reference §5.3); a passed challenge is no failure"),
    ("vault_audit", "event.outcome",
     "success when the top-level `error` is absent or blank",
     "failure whenever `error` is present, blank included",
     "an empty error string reports no error"),
    ("all", "user_agent.version",
     "`major.minor.patch` up to the first missing part (`24.0`)",
     "sometimes a trailing dot (`24.0.`)",
     "the same uap-core rules; ours does not append an empty part"),
    ("all", "event.type",
     "adds `denied` on refusals (Entra error codes, Okta DENY, Vault permission denied, CloudTrail access errors)",
     "no `denied`",
     "ECS `denied` lets rules select refusals without vendor fields; not a key field"),
)

# Fields we fill where Elastic leaves them empty (not counted as disagreements): (format, field, source).
ADDITIONS: tuple[tuple[str, str, str], ...] = (
    ("okta", "user.email, user.domain, user.id", "`actor.alternateId` when it is an e-mail; `actor.id`"),
    ("entra_signin", "user.email", "`userPrincipalName` when it is an e-mail"),
    ("entra_signin", "cloud.account.id", "`tenantId`"),
    ("entra_signin", "source.ip", "`callerIpAddress` with its port stripped (Elastic drops an `ip:port` value)"),
    ("entra_signin", "user.name, user.id", "service principal / managed identity name and id when there is no UPN"),
    ("entra_signin", "temporal.action", "the diagnostic `category` (`SignInLogs`, `NonInteractiveUserSignInLogs`...)"),
    ("google_workspace", "user.email", "`actor.email` (Elastic: `source.user.email` only, except saml)"),
    ("aws_cloudtrail", "user.name",
     "the name in `userIdentity.arn` (`user/NAME`, the role of `assumed-role/ROLE/session`, `federated-user/NAME`, "
     "`root`) when `userName` and the session issuer are absent; an IAM Identity Center user's "
     "`additionalEventData.UserName`; never `invokedBy`"),
    ("aws_cloudtrail", "user.id", "`onBehalfOf.userId` for IAM Identity Center users (no `principalId`)"),
    ("aws_cloudtrail", "event.category", "api / iam / configuration by service and verb for names outside Elastic's table"),
    ("vault_audit", "user.name, user.id, user.roles", "`auth.display_name`, `auth.entity_id` (no OIDC account id), `auth.policies`"),
    ("vault_audit", "temporal.action", "`transit.decrypt`, `pki.issue`, `<method>.login`... (rules match on it)"),
    ("all", "user_agent.*", "parsed from `user_agent.original` for every format, as Elastic's `user_agent` processor"),
    ("all", "source.geo.*, source.as.*", "from the MaxMind databases in `parsing.geoip`, as Elastic's `geoip` processor"),
)


def markdown() -> list[str]:
    """The docs/schema.md section (lines)."""
    lines = [
        "",
        "## Elastic integration alignment",
        "",
        "The key fields follow Elastic's integrations (`okta`, `azure` signinlogs, `google_workspace`, `aws` cloudtrail,",
        "`hashicorp_vault`); tests/parsers/test_elastic_agreement.py measures the agreement on the samples. Deliberate",
        "differences:",
        "",
        "| format | field | ours | Elastic's | why |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {fmt} | `{field}` | {ours} | {theirs} | {why} |" for fmt, field, ours, theirs, why in DIFFERENCES]
    lines += ["", "Filled where Elastic leaves the field empty:", "", "| format | field | from |", "|---|---|---|"]
    lines += [f"| {fmt} | `{field}` | {source} |" for fmt, field, source in ADDITIONS]
    return lines
