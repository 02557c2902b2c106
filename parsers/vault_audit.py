"""``vault_audit``: HashiCorp Vault audit device entries, request and response (reference §7, §9.7).

File/socket lines are JSON; a device with the ``prefix`` option (or a syslog header) writes text before the
``{`` — stripped. Request and response entries share ``request.id``, so ``event.id`` is ``<request.id>:<type>``
and ``trace.id`` is the bare ``request.id`` (join the two entries on it).

ECS as Elastic's ``hashicorp_vault`` integration writes it: ``event.action`` is Vault's ``request.operation``
(``update``, ``read``...), ``event.category`` is ``authentication`` on every entry and ``event.type`` follows the
operation (``delete`` → info/end, ``update`` → info, ``read``/``list``/``create`` → info/start; plus ``denied`` on
a permission error). Our finer action, which rules match on, is ``temporal.action``.

Actions: transit, PKI and auth logins get a derived ``temporal.action`` from the mount type and the path suffix
(the mount may be renamed, so the suffix is taken after ``mount_point``, or after the first known verb):
``transit.encrypt|decrypt|rewrap|datakey|rotate|key_config|key_create|key_delete|key_read|trim|export|backup|restore|...``,
``pki.issue|sign|sign_verbatim|revoke|root_generate|intermediate_generate|role_write|...``, ``<auth type>.login``
(``auth/<mount>/login[/<name>]`` and the OIDC/JWT ``.../callback``).
Everything else keeps Vault's ``request.operation`` (``update``, ``read``...) there too. Transit keys go to ``temporal.key.*``
(``id``/``name`` = key name, ``type: vault_transit``, ``deletion_allowed``/``exportable`` from a config request,
``version`` from ``latest_version`` when a response shows it); the PKI role to ``temporal.target`` (``type: pki_role``);
a revoked serial to ``temporal.target.id``; certificates in a response (when the mount does not HMAC them) to
``temporal.certificates.*`` with the issued ``certificate`` (not its CA) in ``x509.*``; the client certificate serial (decimal in Vault) to
``tls.client.x509.serial_number`` as upper-case hex.

Outcome: ``failure`` when the entry has a top-level ``error`` (``permission denied`` is logged on the request entry
already), else ``success`` — on request entries too, as Elastic writes it.
``error.message`` is the inner text of Vault's multierror (``permission denied``, ``invalid request``), or the
clear ``response.data.error`` when the mount is tuned not to HMAC it.

Redacted: clear values of ``client_token``, ``accessor``, ``client_token_accessor``, ``wrapped_accessor``, any
``token``/``secret``/``password``-like key and bearer/JWT/Vault tokens in text (``log_raw`` deployments write them
clear). ``hmac-sha256:`` values are kept as they are: they are not secrets and let rules correlate one token.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from temporal_siem.kernel.flatten import MAX_DEPTH, flatten
from temporal_siem.kernel.records import RecordError
from temporal_siem.parsers.base import Parser
from temporal_siem.parsers.common import (
    REDACTED,
    add_related,
    as_str,
    event_id_from_raw,
    format_timestamp,
    ip_and_port,
    is_secret_key,
    parse_timestamp,
    redact_text,
    set_if,
)
from temporal_siem.parsers.x509 import add_certificates, certificates_in, serial_hex

PREFIX = "hashicorp_vault.audit"
TYPES = frozenset({"request", "response", "kmip-request", "kmip-response"})
HMAC_PREFIX = "hmac-sha256:"
ACCESSOR_KEYS = frozenset({"accessor", "client_token_accessor", "wrapped_accessor"})
_MULTIERROR_ITEM = re.compile(r"^\s*\*\s*(.+?)\s*$", re.MULTILINE)

TRANSIT_VERBS = frozenset({
    "encrypt", "decrypt", "rewrap", "datakey", "keys", "export", "backup", "restore", "hmac", "sign", "verify", "random",
    "hash", "cache-config", "wrapping_key", "byok-export", "config",
})
PKI_VERBS = frozenset({
    "issue", "sign", "sign-verbatim", "revoke", "revoke-with-key", "root", "intermediate", "config", "issuers", "issuer",
    "roles", "crl", "tidy", "cert", "certs", "ca", "ca_chain", "acme", "keys", "key",
})
# event.type by request operation, as Elastic's hashicorp_vault pipeline writes it (category is always authentication).
ELASTIC_TYPES: dict[str, tuple[str, ...]] = {
    "delete": ("info", "end"), "update": ("info",), "read": ("info", "start"), "list": ("info", "start"),
    "create": ("info", "start"),
}
INFORMATIONAL_OPERATIONS = frozenset({"help", "alias-lookahead", "resolve-role", "header"})
KEY_CONFIG_BOOLS = ("deletion_allowed", "exportable", "allow_plaintext_backup")


def vault_redact(value: Any, depth: int = 0) -> Any:
    """Like parsers.common.redact, but HMAC'd values survive and accessors count as secrets."""
    if depth > 64:
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            masked = _masked(item) if _SENSITIVE[str(key)] else None
            out[key] = vault_redact(item, depth + 1) if masked is None else masked
        return out
    if isinstance(value, list):
        return [vault_redact(v, depth + 1) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def vault_flatten(record: dict[str, Any], prefix: str, out: dict[str, Any], depth: int = 0) -> None:
    """``flatten(vault_redact(record), prefix)`` into ``out`` in one pass: the same keys, values and order.

    Why: every Vault entry's whole body is kept under ``hashicorp_vault.audit.*``; building the redacted copy first
    and then flattening it walked and allocated every object twice. Objects are redacted while they are
    flattened; a list (or anything else) takes the two-step path for that one value.
    """
    for key, item in record.items():
        text_key = key if type(key) is str else str(key)
        if _SENSITIVE[text_key] and (masked := _masked(item)) is not None:
            out[prefix + text_key] = masked
        elif type(item) is dict and item and depth < MAX_DEPTH:
            vault_flatten(item, prefix + text_key + ".", out, depth + 1)
        elif type(item) is str:
            out[prefix + text_key] = redact_text(item)
        else:
            flatten({key: vault_redact(item, depth + 1)}, prefix, out, depth)


class _SensitiveKeys(dict[str, bool]):
    """Whether Vault's value under a key is masked: a secret key name or an accessor. A dict, so a key seen before
    costs one probe (both walks ask for every key of every entry); keys over 64 characters and keys past the
    first 8,192 are answered but not remembered (keys are data)."""

    def __missing__(self, name: str) -> bool:
        sensitive = is_secret_key(name) or name in ACCESSOR_KEYS
        if len(name) <= 64 and len(self) < 8192:
            self[name] = sensitive
        return sensitive


_SENSITIVE = _SensitiveKeys()


def _masked(item: Any) -> str | None:
    """What a value under a sensitive key is written as (an HMAC'd value stays: it is already a digest), or None
    when there is nothing to mask. The one rule of :func:`vault_redact` and :func:`vault_flatten`."""
    if item in (None, "", [], {}):
        return None
    return item if isinstance(item, str) and item.startswith(HMAC_PREFIX) else REDACTED


def multierror_items(text: str) -> list[str]:
    """``1 error occurred:\\n\\t* permission denied\\n\\n`` → ``["permission denied"]``; plain text → itself."""
    items = [m.strip() for m in _MULTIERROR_ITEM.findall(text)]
    return items or [text.strip()]


def hashed_keys(data: Any) -> list[str]:
    """Keys of request data whose values Vault HMAC'd (issue 14 class 5).

    Vault HMACs every string value in request data unless the mount lists the key as non-HMAC'd, and the CLI
    sends booleans as strings: ``deletion_allowed: true`` arrives as ``hmac-sha256:...``. The value is then
    unknown, so rules use the presence of a sensitive key (listed here) instead of its value.
    """
    if not isinstance(data, dict):
        return []
    return [str(key) for key, value in data.items() if isinstance(value, str) and value.startswith(HMAC_PREFIX)]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _clear(value: Any) -> str | None:
    """A string value that Vault did not HMAC."""
    if isinstance(value, str) and value and not value.startswith(HMAC_PREFIX):
        return value
    return None


class VaultAuditParser(Parser):
    name = "vault_audit"
    dataset = "hashicorp_vault.audit"
    accept_keys = frozenset({"type"})  # accepts() says no without one
    logsource = {"product": "hashicorp", "service": "vault"}

    def accepts(self, record: dict[str, Any]) -> bool:
        entry_type = record.get("type")
        return isinstance(entry_type, str) and entry_type in TYPES and isinstance(record.get("request"), dict) and "time" in record

    def accepts_text(self, line: str) -> bool:
        brace = line.find("{")
        return 0 < brace < 1024 and '"request"' in line and '"type"' in line and '"time"' in line

    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        if isinstance(record, str):
            record = self._strip_prefix(record)
        if not isinstance(record, dict):
            raise RecordError("not a JSON object", "Vault audit entries are JSON objects")
        entry_type = record.get("type")
        if not isinstance(entry_type, str) or entry_type not in TYPES:
            raise RecordError("bad record", f"type is {str(entry_type)[:40]!r}, not request/response")
        when = parse_timestamp(record.get("time"))
        if when is None:
            raise RecordError("no timestamp", f"time unparseable: {str(record.get('time'))[:80]}")
        request = _dict(record.get("request"))
        response = _dict(record.get("response"))
        auth = _dict(record.get("auth"))
        request_id = as_str(request.get("id"))
        event: dict[str, Any] = {
            "@timestamp": format_timestamp(when),
            "event.id": f"{request_id}:{entry_type}" if request_id else event_id_from_raw(raw),
            "event.kind": "event",
            "event.dataset": self.dataset,
            "event.module": "hashicorp_vault",
            "event.provider": "vault",
        }
        set_if(event, "trace.id", request_id)
        self._outcome(str(entry_type), record, response, event)
        self._identity(auth, _dict(response.get("auth")), request, event)
        self._action(str(entry_type), request, response, event)
        vendor: dict[str, Any] = {}
        vault_flatten(record, PREFIX + ".", vendor)
        event.update({k: v for k, v in vendor.items() if k not in event})
        hashed = hashed_keys(request.get("data"))
        if hashed:
            event[f"{PREFIX}.request.hashed_keys"] = hashed
        return [event]

    @staticmethod
    def _strip_prefix(line: str) -> dict[str, Any]:
        brace = line.find("{")
        if brace < 0:
            raise RecordError("unrecognized text line", line[:120])
        try:
            value = orjson.loads(line[brace:])
        except orjson.JSONDecodeError as exc:
            raise RecordError("invalid JSON", f"after prefix {line[:brace][:40]!r}: {exc}") from exc
        if not isinstance(value, dict):
            raise RecordError("not a JSON object", "after the audit prefix")
        return value

    @staticmethod
    def _outcome(entry_type: str, record: dict[str, Any], response: dict[str, Any], event: dict[str, Any]) -> None:
        error = as_str(record.get("error"))
        if error and error.strip():
            event["event.outcome"] = "failure"
            items = multierror_items(error)
            specific = _clear(_dict(response.get("data")).get("error"))
            event["error.message"] = redact_text(specific or "; ".join(items))
        else:
            event["event.outcome"] = "success"  # Elastic: every entry without an error (the request entry too)

    @staticmethod
    def _identity(auth: dict[str, Any], response_auth: dict[str, Any], request: dict[str, Any], event: dict[str, Any]) -> None:
        who = auth if auth.get("display_name") or auth.get("entity_id") else response_auth
        name = as_str(who.get("display_name"))
        set_if(event, "user.name", name)
        metadata = _dict(who.get("metadata"))
        # Elastic: the auth method's account id (OIDC metadata) when there is one; else Vault's identity entity.
        set_if(event, "user.id", as_str(metadata.get("account_id")) or as_str(who.get("entity_id")))
        policies = who.get("policies")
        if isinstance(policies, list):
            set_if(event, "user.roles", [str(p) for p in policies if isinstance(p, (str, int))])
        email = as_str(metadata.get("email"))
        if email and "@" in email:
            event["user.email"] = email
        add_related(event, "user", name, email)
        ip, inline_port = ip_and_port(as_str(request.get("remote_address")))  # KMIP entries write "ip:port"
        if ip:
            event["source.ip"] = ip
            add_related(event, "ip", ip)
            port = request.get("remote_port", inline_port)
            if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
                event["source.port"] = port
        elif as_str(request.get("remote_address")):
            event["source.address"] = as_str(request.get("remote_address"))
        headers = _dict(request.get("headers"))
        agent = headers.get("user-agent", headers.get("User-Agent"))
        agent = agent[0] if isinstance(agent, list) and agent else agent
        if _clear(agent):
            event["user_agent.original"] = agent
        serial = as_str(request.get("client_certificate_serial_number"))
        if serial and serial.isdigit() and len(serial) < 100:
            event["tls.client.x509.serial_number"] = serial_hex(int(serial))

    def _action(self, entry_type: str, request: dict[str, Any], response: dict[str, Any], event: dict[str, Any]) -> None:
        """ECS fields as Elastic's pipeline writes them; our finer action (``transit.decrypt``) in ``temporal.action``."""
        self._own_action(entry_type, request, response, event)
        event["temporal.action"] = event.pop("event.action")
        del event["event.category"]
        denied = "denied" in event.pop("event.type")
        operation = as_str(request.get("operation"))
        set_if(event, "event.action", operation)
        event["event.category"] = ["authentication"]
        types = list(ELASTIC_TYPES.get(operation or "", ("info",)))
        if denied:
            types.append("denied")
        event["event.type"] = types

    def _own_action(self, entry_type: str, request: dict[str, Any], response: dict[str, Any], event: dict[str, Any]) -> None:
        operation = as_str(request.get("operation")) or "unknown"
        path = as_str(request.get("path")) or ""
        mount_type = as_str(request.get("mount_type")) or as_str(response.get("mount_type")) or ""
        failed = event["event.outcome"] == "failure"
        denied = failed and "permission denied" in (event.get("error.message") or "").lower()
        segments = [s for s in path.split("/") if s]
        if entry_type.startswith("kmip"):  # Enterprise KMIP: no path, the operation is inside the KMIP message
            event.update({"event.action": "kmip", "event.category": ["api"], "event.type": ["access"]})
            return self._finish_types(event, denied)
        if operation in INFORMATIONAL_OPERATIONS:  # help / lookahead requests read no data and change nothing
            event.update({"event.action": operation, "event.category": ["api"], "event.type": ["info"]})
            return self._finish_types(event, denied)
        if segments[:1] == ["auth"] and len(segments) >= 3 and (segments[2] == "login" or segments[-1] == "callback"):
            method = mount_type or segments[1]
            event.update({"event.action": f"{method}.login", "event.category": ["authentication"], "event.type": ["start"]})
            event["temporal.auth_method"] = method
            return self._finish_types(event, denied)
        suffix = self._suffix(path, as_str(request.get("mount_point")), TRANSIT_VERBS if mount_type == "transit" else PKI_VERBS)
        if mount_type == "transit":
            self._transit(suffix, operation, request, response, event)
        elif mount_type == "pki":
            self._pki(suffix, operation, request, response, event)
        elif segments[:1] == ["sys"]:
            change = operation in ("create", "update", "patch", "delete")
            event.update({"event.action": operation, "event.category": ["configuration"] if change else ["api"],
                          "event.type": ["deletion" if operation == "delete" else "change"] if change else ["access"]})
        else:
            event.update({"event.action": operation, "event.category": ["api"], "event.type": ["access"]})
        return self._finish_types(event, denied)

    @staticmethod
    def _finish_types(event: dict[str, Any], denied: bool) -> None:
        types: list[str] = event["event.type"]
        if "access" not in types and event["event.category"] != ["authentication"]:
            types.append("access")
        if denied:
            types.append("denied")

    @staticmethod
    def _suffix(path: str, mount_point: str | None, verbs: frozenset[str]) -> list[str]:
        if mount_point and path.startswith(mount_point):
            return [s for s in path[len(mount_point):].split("/") if s]
        segments = [s for s in path.split("/") if s]
        for index in range(1, len(segments)):
            if segments[index] in verbs:
                return segments[index:]
        return segments[1:]

    @staticmethod
    def _transit(suffix: list[str], operation: str, request: dict[str, Any], response: dict[str, Any], event: dict[str, Any]) -> None:
        verb = suffix[0] if suffix else ""
        key: str | None = None
        category, etype = "api", "access"
        if verb == "keys" and len(suffix) >= 2:
            key = suffix[1]
            sub = suffix[2] if len(suffix) > 2 else ""
            if sub == "rotate":
                action, category, etype = "rotate", "configuration", "change"
            elif sub == "config":
                action, category, etype = "key_config", "configuration", "change"
            elif sub == "trim":
                action, category, etype = "trim", "configuration", "deletion"
            elif sub.startswith("import"):
                action, category, etype = "key_import", "configuration", "creation"
            elif operation == "delete":
                action, category, etype = "key_delete", "configuration", "deletion"
            elif operation in ("create", "update"):
                action, category, etype = "key_create", "configuration", "creation"
            else:
                action = "key_read"
        elif verb == "keys":
            action = "key_list"
        elif verb == "datakey":
            action, key = "datakey", suffix[-1] if len(suffix) >= 3 else None
        elif verb == "export":
            action, key = "export", suffix[2] if len(suffix) >= 3 else None
        elif verb == "restore":
            action, category, etype = "restore", "configuration", "creation"
            key = suffix[1] if len(suffix) >= 2 else None
        elif verb in ("encrypt", "decrypt", "rewrap", "hmac", "sign", "verify", "backup"):
            action, key = verb, suffix[1] if len(suffix) >= 2 else None
        else:
            action = verb.replace("-", "_") or operation
        event.update({"event.action": f"transit.{action}", "event.category": [category], "event.type": [etype]})
        if key:
            event.update({"temporal.key.id": key, "temporal.key.name": key, "temporal.key.type": "vault_transit"})
        data = _dict(request.get("data"))
        if action == "key_config":
            for flag in KEY_CONFIG_BOOLS[:2]:
                value = data.get(flag)
                if isinstance(value, bool):
                    event[f"temporal.key.{flag}"] = value
                elif isinstance(value, str) and value.lower() in ("true", "false"):
                    event[f"temporal.key.{flag}"] = value.lower() == "true"
        latest = _dict(response.get("data")).get("latest_version")
        if isinstance(latest, int) and not isinstance(latest, bool):
            event["temporal.key.version"] = latest

    @staticmethod
    def _pki(suffix: list[str], operation: str, request: dict[str, Any], response: dict[str, Any], event: dict[str, Any]) -> None:
        if len(suffix) >= 3 and suffix[0] == "issuer":
            suffix = suffix[2:]  # issuer/<ref>/issue/<role> behaves as issue/<role>
        verb = suffix[0] if suffix else operation
        category, etype = "api", "access"
        role = None
        if verb in ("issue", "sign") and len(suffix) >= 2:
            action, role, etype = verb, suffix[1], "creation"
        elif verb in ("revoke", "revoke-with-key"):
            action, category, etype = "revoke", "configuration", "deletion"
        elif verb == "roles" and len(suffix) >= 2:
            role = suffix[1]
            action = {"delete": "role_delete", "read": "role_read", "list": "role_list"}.get(operation, "role_write")
            if operation in ("create", "update", "patch", "delete"):
                category, etype = "configuration", "deletion" if operation == "delete" else "change"
        elif verb in ("root", "intermediate") and len(suffix) >= 2:
            action, category, etype = f"{verb}_{suffix[1].replace('-', '_')}", "configuration", "creation"
        else:
            action = "_".join(suffix[:2]).replace("-", "_") or operation
            if operation in ("create", "update", "patch", "delete") and verb not in ("sign-verbatim",):
                category, etype = "configuration", "deletion" if operation == "delete" else "change"
            if verb == "sign-verbatim":
                etype = "creation"
        event.update({"event.action": f"pki.{action}", "event.category": [category], "event.type": [etype]})
        if role:
            event["temporal.target.type"] = "pki_role"
            event["temporal.target.name"] = role
        data = _dict(request.get("data"))
        serial = _clear(data.get("serial_number"))
        if action == "revoke" and serial:
            event["temporal.target.type"] = "certificate"
            event["temporal.target.id"] = serial.replace(":", "").replace("-", "").upper()
        common_name = _clear(data.get("common_name"))
        if common_name:
            event.setdefault("temporal.target.common_name", common_name)
        rdata = _dict(response.get("data"))
        texts = [v for k in ("certificate", "issuing_ca", "ca_chain") for v in ([rdata.get(k)] if not isinstance(rdata.get(k), list) else rdata[k])
                 if _clear(v)]
        certs = certificates_in(texts)
        if certs:
            issued = certificates_in(rdata.get("certificate")) if _clear(rdata.get("certificate")) else []
            add_certificates(event, certs, at=parse_timestamp(event["@timestamp"]), primary=issued[0] if issued else None)
