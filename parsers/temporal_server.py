"""``temporal_server``: self-hosted Temporal server logs and the TLS lines around them (reference §2, §9.2).

Three shapes:

* zap JSON lines (``ts``, ``level``, ``msg``, ``logging-call-at`` and kebab-case tags); ``ts`` offsets may lack the
  colon (``+0100``); ``logging-call-at`` is a basename up to v1.24 and a full build path from v1.25;
* zap console lines (``format: console``): ``<ts>\\t<LEVEL>\\t<caller>\\t<msg>\\t{json tags}``;
* ``slog`` records of Go SDK workers (``log.NewStructuredLogger``) and of the CLI dev server: JSON (``time``,
  ``level``, ``msg`` + ``Namespace``/``TaskQueue``/``WorkerID``/``Error``, or server tags such as ``service``) or the
  TextHandler's logfmt (``time=... level=WARN msg="..." Namespace=...``); ``event.provider`` is ``temporal-sdk``
  when worker keys are present, else ``temporal-server``;
* plain text of grpc-go (server handshake failures: ``ServerHandshake("ip:port") failed: <tls error>``, old
  ``failed to complete security handshake from "ip:port"``) and of Go SDK workers / clients
  (``2025/03/04 10:17:11 ERROR Failed to poll for task. ... Error connection error: ... tls: ...``). These lines
  carry no zone: they are read as UTC.

Shapes of real deployments (issue 14), all into the same fields so the same rules fire:

* the Rust core SDK behind the Python, TypeScript, .NET and Ruby SDKs: tracing lines
  ``<time>Z  WARN [span{..}: ]temporal_client::retry: <message> error=Status { ... }`` (``log.logger`` = target,
  ``error.message`` = the ``error=`` field) and tracing-subscriber JSON (``timestamp``/``level``/``target``/``fields``);
* Java SDK workers: logback/log4j/Spring Boot text (``<date> <time> [thread] LEVEL logger - msg``, time-of-day only
  for logback's default), the exception lines under them (``io.grpc.StatusRuntimeException: UNAVAILABLE``,
  ``Caused by: javax.net.ssl.SSLHandshakeException: ...``; ``at ...`` frames become ``java-stack-frame`` events) and
  logstash JSON (``@timestamp``, ``logger_name``, ``stack_trace``);
* zap console with runs of spaces instead of tabs, or without a timestamp; ``temporal`` CLI / tctl / tcld errors
  (``Error: failed reaching server: ...``, ``tcld: error: ...``); Python/Node exception summaries naming tonic/grpc;
* collectors' prefixes (docker compose ``name  | ``, kubectl ``--timestamps``/``--prefix``, CRI, syslog/journald) are
  removed by the router (``parsers/envelopes.py``) before this parser sees the line.

A line without a time of its own takes the time of the previous record this parser read (a Java exception under its
log line), else the receive time; ``temporal_server.time_source`` says which. TLS causes are recognised in Go,
rustls (``UnknownIssuer``, ``received fatal alert: UnknownCA``, ``InvalidCertificate(Expired)``), JVM (``PKIX path
building failed``, ``Received fatal alert: bad_certificate``, ``CertificateExpiredException``), OpenSSL
(``CERTIFICATE_VERIFY_FAILED``, ``unable to get local issuer certificate``), Node and .NET wording. Text is claimed only
when it mentions Temporal, its gRPC/TLS stack or a TLS failure: other applications' lines stay dead letters.

Namespace lifecycle: ``Register namespace succeeded`` / ``Update namespace succeeded`` (frontend) and the deletion
workflow's lines (worker). The ``DeprecateNamespace`` RPC writes **no** log line (server ``namespace_handler.go``
updates persistence and returns) and a deprecation through ``UpdateNamespace`` logs the generic update line, so a
deprecation cannot be told apart in server logs; ``namespace-deprecated`` only comes from a
``Deprecate namespace succeeded``-style message, should a build log one.

Derived fields rules rely on:

* ``event.action``: the RPC (``operation`` tag) if present, else a name for known messages: ``authorization-error``,
  ``jwks-fetch-error``, ``jwt-permission-ignored``, ``namespace-registered``/``-updated``/``-deprecated``/``-deleted``,
  ``namespace-delete-failed``, ``certificate-expired``, ``certificate-expiring``, ``certificates-reloaded``,
  ``certificate-load-failed``, ``tls-connection-established``, ``tls-handshake-failed``, ``service-failure``;
  otherwise the message itself (truncated) so nothing is unnamed.
* ``error.type``: a normalized cause for TLS failures — ``unknown_authority``, ``expired``, ``not_yet_valid``,
  ``bad_certificate``, ``revoked``, ``name_mismatch``, ``handshake_failure``, ``no_certificate``, ``not_tls`` —
  and for JWT failures ``jwt_expired``, ``jwt_not_yet_valid``, ``jwt_invalid_signature``, ``jwt_malformed``,
  ``jwt_audience_mismatch``, ``jwt_key_not_found``, ``jwt_invalid_claims``, plus ``unauthorized`` for the authorizer's
  ``Request unauthorized.``. TLS failures also set ``tls.established: false`` and ``event.reason``:
  ``peer certificate rejected`` (this process refused the other side's certificate) or ``local certificate rejected
  by peer`` (``remote error: tls: ...``: the other side refused ours — a client whose cert the server refused).
  Payload-codec failures in worker/codec lines (wording of Temporal's encryption samples): ``codec_unknown_key``
  (``Unrecognized key ID <old>...``, the old key id then in ``temporal.key.id``), ``codec_missing_key_id``,
  ``codec_decrypt_failed`` (``cipher: message authentication failed`` / ``InvalidTag``).
* Certificate expiry lines: ``tls.server.x509.not_after``, ``tls.server.hash.md5`` (thumbprint, upper-case),
  ``tls.server.x509.alternative_names`` (from ``DNS=[...]``).

Redacted: bearer tokens/JWTs in any text (``msg``, ``error``, tags) and secret-named tags.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from temporal_siem.kernel.records import RecordError
from temporal_siem.parsers.base import Parser
from temporal_siem.parsers.common import (
    add_related,
    as_str,
    event_id_from_raw,
    format_timestamp,
    ip_and_port,
    namespaced,
    parse_timestamp,
    redact,
    redact_text,
    set_if,
)

PREFIX = "temporal_server"
LEVELS = {"debug", "info", "warn", "warning", "error", "dpanic", "panic", "fatal"}
FAILURE_LEVELS = {"error", "dpanic", "panic", "fatal"}

_CONSOLE = re.compile(r"^(\d{4}-\d{2}-\d{2}T[^\t ]+)\t([A-Za-z]+)\t")
_GO_LOG = re.compile(
    r"^(?:(?P<pre>INFO|WARNING|ERROR|FATAL|DEBUG|WARN): )?(?P<date>\d{4}/\d{2}/\d{2}) (?P<time>\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s+"
    r"(?:(?P<post>INFO|WARNING|ERROR|FATAL|DEBUG|WARN|DPANIC|PANIC)(?::|\s)\s*)?(?P<rest>.*)$",
    re.DOTALL,
)
_HANDSHAKE_PEER = re.compile(r'(?:ServerHandshake\(\\?"|security handshake from \\?")\[?([0-9A-Fa-f.:%\]]+)\\?"')
_EXPIRY = re.compile(
    r"certificate with thumbprint=(?P<thumb>[0-9A-Fa-f]+) (?P<state>has expired|will expire) on (?P<when>.+?), IsCA=(?P<ca>\w+), DNS=\[(?P<dns>[^\]]*)\]"
)
_CODEC_CAUSES: tuple[tuple[str, str], ...] = (
    ("unrecognized key id", "codec_unknown_key"),
    ("encryption key not found", "codec_unknown_key"),
    ("no encryption key id", "codec_missing_key_id"),
    ("cipher: message authentication failed", "codec_decrypt_failed"),
    ("invalidtag", "codec_decrypt_failed"),
)
_UNKNOWN_KEY = re.compile(r"Unrecognized key ID ([^\s.]+(?:\.[^\s.]+)*)\.?(?:\s|$)")
_LOGFMT_HEAD = re.compile(r'^time=\S+ level=\w+ msg=')
# logfmt is scanned token by token (see _logfmt): every regex below is anchored at the scan position and possessive,
# so each character is looked at a bounded number of times (a finditer over an unanchored pair pattern was
# quadratic on a long word without "=": 60,000 characters took > 20 s).
# A repeated group is made atomic with ``(?>(?:...)*)``, never with a possessive ``(?:...)*+``: CPython 3.11.0-3.11.4
# (Debian 12's python3 is 3.11.2) mis-match a possessive repeat of a group that backtracks inside (gh-100061,
# gh-106052), and failed every dotted Java class name. A possessive repeat of one character class is fine there.
_LOGFMT_KEY = re.compile(r"[A-Za-z_][\w.-]*+=")
_LOGFMT_QUOTED = re.compile(r'"(?>(?:[^"\\]++|\\.)*)"')
_LOGFMT_BARE = re.compile(r"\S*+")
_LOGFMT_SPACE = re.compile(r"\s++")
_SDK_KEYS = re.compile(r" (?:Namespace|TaskQueue|WorkerID|service|logging-call-at|wf-namespace)=")
SDK_KEYS = ("Namespace", "TaskQueue", "WorkerID")
# slog records (time/level/msg) are ours when they carry SDK worker keys or server tags (CLI dev server).
SLOG_MARKER_KEYS = (*SDK_KEYS, "service", "logging-call-at", "wf-namespace")
_SDK_TAGS = re.compile(r" (?:Namespace|TaskQueue|WorkerID|WorkerType|WorkflowID|RunID|Error) ")
# -- shapes of deployments (issue 14): SDK workers of every language, collectors' prefixes, CLI output ------------------
_LEVEL_WORDS = r"(?i:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL|DPANIC|PANIC|SEVERE|CRITICAL)"
# "<date>[T ]<time>[zone] [\[thread\]] LEVEL rest": zap console with tabs or spaces, Rust tracing (two spaces before
# a 4-letter level), log4j/logback/Spring Boot/Python logging. Every part is anchored or bounded: linear time.
_LEVEL_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"[ \t]++(?:\[(?P<thread>[^\]]{0,200})\][ \t]++)?\[?(?P<level>" + _LEVEL_WORDS + r")\b\]?:?[ \t]*+(?P<rest>.*)$",
    re.DOTALL,
)
# Ruby's Logger: "W, [2025-03-04T10:15:30.123456 #1234]  WARN -- temporalio: message".
_RUBY_LINE = re.compile(
    r"^[DIWEFA], \[(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?) #\d{1,10}\][ \t]++"
    r"(?P<level>" + _LEVEL_WORDS + r")[ \t]++-- (?P<prog>[^:]{0,200}): (?P<rest>.*)$",
    re.DOTALL,
)
# logback's default pattern has the time of day only: "10:15:30.123 [main] WARN  logger - msg".
_TIME_ONLY_LINE = re.compile(
    r"^(?P<time>\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?)[ \t]++(?:\[(?P<thread>[^\]]{0,200})\][ \t]++)?(?P<level>" + _LEVEL_WORDS
    + r")\b[ \t]*+(?P<rest>.*)$",
    re.DOTALL,
)
# zap console without a time encoder, or a pasted line whose time was cut: "ERROR<tab or spaces>rest".
# Also Python logging's default "WARNING:temporalio.worker._workflow:message" and .NET's "warn: Temporalio.Worker[0]".
_NO_TIME_LINE = re.compile(r"^(?P<level>" + _LEVEL_WORDS + r")(?:\t|  +|: |:(?=[A-Za-z_][\w.]*+:))(?P<rest>\S.*)$", re.DOTALL)
# Java: "[12345 --- ][\[thread\] ]logger - msg" (logback/log4j "-", Spring Boot ":").
_JAVA_LOGGER = re.compile(r"^(?:\d++[ \t]++---[ \t]++)?(?:\[[^\]]{0,200}\][ \t]++)?(?P<logger>[A-Za-z_$][\w$.]*+)[ \t]++[-:][ \t]++(?P<msg>.*)$", re.DOTALL)
# Rust tracing: "[span{fields}: ]*target::path: message field=value ...". Only token starts are tried.
_RUST_TARGET = re.compile(r"(?<![\w:])(?P<target>[a-z_]\w*+(?>(?:::\w++)+)): ")
_GO_CALLER = re.compile(r"^(?P<caller>\S+\.go:\d+)(?:\t|  +)")
_COLUMNS = re.compile(r"\t|  +")
# Java exception summaries and frames, printed on their own lines under the log line.
_JAVA_FRAME = re.compile(r"^\s*+(?:at [\w$./<>-]++\(.{0,300}\)|\.\.\. \d++ (?:more|common frames omitted))\s*$")
_EXCEPTION_LINE = re.compile(
    r"^(?:Caused by: |Suppressed: |Exception in thread \"[^\"]{0,200}\" )?"
    r"(?P<cls>(?>(?:[A-Za-z_$][\w$]*+\.)*)_?[A-Z][\w$]*?(?:Exception|Error|Throwable|Failure))"
    r"(?:: (?P<msg>.*))?$",
    re.DOTALL,
)
_EXCEPTION_SOURCES = ("io.grpc.", "io.temporal.", "javax.net.ssl.", "java.security.cert.", "io.netty.", "sun.security.", "temporalio",
                      "tonic", "grpc")
# `temporal` CLI, tctl and tcld error output: "Error: failed reaching server: ...", "tcld: error: ...".
_CLI_ERROR = re.compile(r"^(?:(?:temporal|tctl|tcld)(?:\[\d+\])?: )?(?:Error|error|ERROR)(?: Details)?: (?P<msg>\S.*)$", re.DOTALL)
_NAMESPACE_FIELD = re.compile(r'(?<![\w-])namespace[=:] ?"?(?P<ns>[\w.-]{1,200})')
_RUST_ERROR_FIELD = re.compile(r"(?<!\S)(?:error|err)=")
_NS_SUCCEEDED = re.compile(r"^(\w+?)(?:Namespace)? namespace succeeded", re.IGNORECASE)

# (substring, lower-cased, of the error text) -> cause. First match wins: specific before generic.
_TLS_CAUSES: tuple[tuple[str, str], ...] = (
    ("unknown certificate authority", "unknown_authority"),
    ("signed by unknown authority", "unknown_authority"),
    # Other stacks' wordings of the same causes: rustls (Rust core SDK behind the Python/TypeScript/.NET/Ruby SDKs),
    # the JVM (Java SDK), OpenSSL (Python ssl, grpcio), Node and .NET certificate validation.
    ("unknownissuer", "unknown_authority"),
    ("unknownca", "unknown_authority"),
    ("unknown_ca", "unknown_authority"),
    ("alert unknown ca", "unknown_authority"),
    ("unable to get local issuer certificate", "unknown_authority"),
    ("unable to get issuer certificate", "unknown_authority"),
    ("self signed certificate", "unknown_authority"),
    ("self-signed certificate", "unknown_authority"),
    ("pkix path building failed", "unknown_authority"),
    ("unable to find valid certification path", "unknown_authority"),
    ("unable_to_verify_leaf_signature", "unknown_authority"),
    ("unable to verify the first certificate", "unknown_authority"),
    ("self_signed_cert_in_chain", "unknown_authority"),
    ("depth_zero_self_signed_cert", "unknown_authority"),
    ("untrustedroot", "unknown_authority"),
    ("partialchain", "unknown_authority"),
    # Go prints "has expired or is not yet valid: current time X is after|before Y": the tail decides.
    ("is before", "not_yet_valid"),
    ("is after", "expired"),
    ("has expired or is not yet valid", "expired"),
    ("expired certificate", "expired"),
    ("certificate has expired", "expired"),
    ("certificateexpiredexception", "expired"),
    ("certificatenotyetvalidexception", "not_yet_valid"),
    ("certificate is not yet valid", "not_yet_valid"),
    ("cert_not_yet_valid", "not_yet_valid"),
    ("notvalidyet", "not_yet_valid"),
    ("cert_has_expired", "expired"),
    ("certificate_expired", "expired"),
    ("certificateexpired", "expired"),
    ("expiredcontext", "expired"),
    ("certificate: expired", "expired"),
    ("(expired)", "expired"),
    ("nottimevalid", "expired"),
    ("revoked certificate", "revoked"),
    ("certificate revoked", "revoked"),
    ("certificate_revoked", "revoked"),
    ("certificaterevoked", "revoked"),
    ("(revoked)", "revoked"),
    ("certificate is valid for", "name_mismatch"),
    ("doesn't contain any ip sans", "name_mismatch"),
    ("not valid for any names", "name_mismatch"),
    ("notvalidforname", "name_mismatch"),
    ("no subject alternative names", "name_mismatch"),
    ("no subject alternative dns name", "name_mismatch"),
    ("no name matching", "name_mismatch"),
    ("err_tls_cert_altname_invalid", "name_mismatch"),
    ("hostname mismatch", "name_mismatch"),
    ("remotecertificatenamemismatch", "name_mismatch"),
    ("didn't provide a certificate", "no_certificate"),
    ("certificate required", "no_certificate"),
    ("certificate_required", "no_certificate"),
    ("certificaterequired", "no_certificate"),
    ("alert(116)", "no_certificate"),
    ("but no certificate provided", "no_certificate"),
    ("bad certificate", "bad_certificate"),
    ("bad_certificate", "bad_certificate"),
    ("badcertificate", "bad_certificate"),
    ("incompatible key usage", "bad_certificate"),
    ("not authorized to sign other certificates", "bad_certificate"),
    ("unsupported certificate", "bad_certificate"),
    ("certificate unknown", "bad_certificate"),
    ("certificate_unknown", "bad_certificate"),
    ("first record does not look like a tls handshake", "not_tls"),
    ("wrong version number", "not_tls"),
    ("handshake failure", "handshake_failure"),
    ("handshake_failure", "handshake_failure"),
    ("handshakefailure", "handshake_failure"),
    ("authentication handshake failed", "handshake_failure"),
    ("failed to verify certificate", "bad_certificate"),
    ("failed to verify client's certificate", "bad_certificate"),
    ("certificate verify failed", "bad_certificate"),
    ("certificate_verify_failed", "bad_certificate"),
    ("invalidcertificate", "bad_certificate"),
    ("invalid peer certificate", "bad_certificate"),
    ("remote certificate is invalid", "bad_certificate"),
    ("sslhandshakeexception", "handshake_failure"),
)
# Wordings meaning the OTHER side sent the alert (it refused our certificate), per stack.
_PEER_REJECTED = ("remote error: tls:", "received fatal alert", "alertreceived(", "tlsv1 alert", "tlsv13 alert", "sslv3 alert")
_JWT_CAUSES: tuple[tuple[str, str], ...] = (
    ("token is expired", "jwt_expired"),
    ("token has invalid claims: token is expired", "jwt_expired"),
    ("token used before issued", "jwt_not_yet_valid"),
    ("token is not valid yet", "jwt_not_yet_valid"),
    ("verification error", "jwt_invalid_signature"),
    ("signature is invalid", "jwt_invalid_signature"),
    ("key not found for key id", "jwt_key_not_found"),
    ("no \"kid\" header", "jwt_malformed"),
    ("invalid number of segments", "jwt_malformed"),
    ("unexpected authorization token format", "jwt_malformed"),
    ("unexpected name in authorization token", "jwt_malformed"),
    ("should not contain 'bearer '", "jwt_malformed"),
    ("token is malformed", "jwt_malformed"),
    ("audience mismatch", "jwt_audience_mismatch"),
    ("signing method", "jwt_invalid_signature"),
    ("unexpected signing algorithm", "jwt_invalid_signature"),
    ("unsupported key type", "jwt_invalid_signature"),
    ("invalid token with no claims", "jwt_invalid_claims"),
    ("unexpected value type of \"sub\" claim", "jwt_invalid_claims"),
    ("request unauthorized", "unauthorized"),
)


def tls_cause(text: str) -> str | None:
    """Normalized TLS failure cause of a Go crypto/tls / x509 / grpc-go error text, or None if not a TLS error."""
    lower = text.lower()
    if not any(marker in lower for marker in ("tls", "x509", "handshake", "cert", "ssl", "unknownca", "unknown_ca", "pkix", "unknownissuer")):
        return None
    for needle, cause in _TLS_CAUSES:
        if needle in lower:
            return cause
    if "serverhandshake" in lower or "security handshake" in lower:
        return "handshake_failure"
    return None


def jwt_cause(text: str) -> str | None:
    lower = text.lower()
    for needle, cause in _JWT_CAUSES:
        if needle in lower:
            return cause
    return None


class TemporalServerParser(Parser):
    name = "temporal_server"
    dataset = "temporal.server"
    accept_keys = frozenset({"logger_name", "loggerName", "target", "msg"})  # accepts() says no without one
    logsource = {"product": "temporal", "service": "server"}

    def __init__(self) -> None:
        # Time of the last record that carried one: lines without a time of their own (a Java exception under its log
        # line, timestamp-less console output, CLI errors) take it, else the receive time (see _carried_time).
        self._last_when: datetime | None = None

    def accepts(self, record: dict[str, Any]) -> bool:
        if _is_logstash_java(record) or _is_rust_json(record):
            return True
        if "msg" not in record or "level" not in record:
            return False
        if "ts" in record:
            return "logging-call-at" in record or "service" in record or "wf-namespace" in record or "grpc_code" in record
        return "time" in record and any(key in record for key in SLOG_MARKER_KEYS)

    def accepts_text(self, line: str) -> bool:
        if _CONSOLE.match(line) or _GO_LOG.match(line):
            return True
        if _LOGFMT_HEAD.match(line):
            return bool(_SDK_KEYS.search(line)) or _mentions_temporal_or_tls(line)
        for shape in (_LEVEL_LINE, _RUBY_LINE, _TIME_ONLY_LINE, _NO_TIME_LINE):
            match = shape.match(line)
            if match:
                return _mentions_temporal_or_tls(match.group("rest"))
        if _JAVA_FRAME.match(line):
            return line.lstrip().startswith(("...", "at io.", "at java", "at jdk.", "at javax.", "at sun.", "at com.google."))
        exception = _EXCEPTION_LINE.match(line.strip())
        if exception:
            return exception.group("cls").startswith(_EXCEPTION_SOURCES) or _mentions_temporal_or_tls(line)
        cli = _CLI_ERROR.match(line.strip())
        return bool(cli) and _mentions_temporal_or_tls(line)

    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        if isinstance(record, str):
            console = _CONSOLE.match(record)
            if console:
                return [self._from_zap(self._console_fields(record), raw, shape="console")]
            if _LOGFMT_HEAD.match(record):
                return [self._from_zap(_sdk_fields(_logfmt(record)), raw, shape="slog-logfmt")]
            if _GO_LOG.match(record.strip()):
                return [self._from_text(record, raw)]
            return [self._from_other_text(record.rstrip("\r\n"), raw)]
        if not isinstance(record, dict):
            raise RecordError("not a JSON object", "Temporal server lines are JSON objects or text")
        if _is_logstash_java(record):
            return [self._from_zap(_logstash_fields(record), raw, shape="logstash-json", provider="temporal-sdk")]
        if _is_rust_json(record):
            return [self._from_zap(_rust_json_fields(record), raw, shape="rust-json", provider="temporal-sdk")]
        if "ts" not in record and "time" in record:
            return [self._from_zap(_sdk_fields(record), raw, shape="slog-json")]
        return [self._from_zap(record, raw, shape="json")]

    def _from_other_text(self, line: str, raw: bytes) -> dict[str, Any]:
        """SDK workers of every language, timestamp-less console output, Java exception lines and CLI errors."""
        match = _LEVEL_LINE.match(line)
        if match:
            fields, shape, provider = _line_fields(match.group("rest"), match.group("thread"))
            fields["ts"] = match.group("ts").replace(",", ".")
            fields["level"] = _level(match.group("level"))
            return self._from_zap(fields, raw, shape=shape, provider=provider)
        match = _RUBY_LINE.match(line)
        if match:
            fields, shape, provider = _line_fields(match.group("rest"))
            fields.setdefault("logger", match.group("prog").strip() or None)
            fields["ts"] = match.group("ts")
            fields["level"] = _level(match.group("level"))
            return self._from_zap(fields, raw, shape="ruby-logger" if shape == "text" else shape, provider=provider or "temporal-sdk")
        match = _TIME_ONLY_LINE.match(line)
        if match:
            fields, shape, provider = _line_fields(match.group("rest"), match.group("thread"))
            day = self._carried_time()[0].date().isoformat()
            fields["ts"] = f"{day}T{match.group('time').replace(',', '.')}Z"
            fields["level"] = _level(match.group("level"))
            return self._from_zap(fields, raw, shape=shape, provider=provider, time_source="time of day, date carried")
        if _JAVA_FRAME.match(line):
            fields = {"msg": line.strip(), "level": ""}
            event = self._timeless(fields, raw, "java-stack-frame", "temporal-sdk")
            event["event.action"] = "java-stack-frame"
            return event
        stripped = line.strip()
        exception = _EXCEPTION_LINE.match(stripped)
        if exception:
            fields = {"msg": stripped, "error": stripped.removeprefix("Caused by: ").removeprefix("Suppressed: "), "level": "error"}
            return self._timeless(fields, raw, "exception", "temporal-sdk")
        cli = _CLI_ERROR.match(stripped)
        if cli:
            fields = {"msg": stripped, "error": cli.group("msg"), "level": "error"}
            return self._timeless(fields, raw, "cli", "temporal-cli")
        match = _NO_TIME_LINE.match(line)
        if match:
            fields, shape, provider = _line_fields(match.group("rest"))
            fields["level"] = _level(match.group("level"))
            return self._timeless(fields, raw, shape, provider)
        raise RecordError("unrecognized text line", line[:120])

    def _carried_time(self) -> tuple[datetime, str]:
        if self._last_when is not None:
            return self._last_when, "previous record"
        return datetime.now(UTC), "received"

    def _timeless(self, fields: dict[str, Any], raw: bytes, shape: str, provider: str | None) -> dict[str, Any]:
        when, source = self._carried_time()
        fields["ts"] = format_timestamp(when)
        return self._from_zap(fields, raw, shape=shape, provider=provider, time_source=source)

    # -- zap ---------------------------------------------------------------------------------

    @staticmethod
    def _console_fields(line: str) -> dict[str, Any]:
        parts = line.rstrip("\r\n").split("\t")
        fields: dict[str, Any] = {}
        if parts and parts[-1].lstrip().startswith("{"):
            try:
                tags = orjson.loads(parts[-1])
            except orjson.JSONDecodeError:
                tags = None
            if isinstance(tags, dict):
                fields.update(tags)
                parts = parts[:-1]
        fields["ts"] = parts[0]
        fields["level"] = parts[1].lower() if len(parts) > 1 else ""
        rest = parts[2:]
        # With a caller configured the third column is "file.go:123"; then the message.
        if len(rest) >= 2 and re.search(r"\.go:\d+$", rest[0]):
            fields["logging-call-at"] = rest[0]
            rest = rest[1:]
        fields["msg"] = "\t".join(rest)
        return fields

    def _from_zap(self, record: dict[str, Any], raw: bytes, shape: str, provider: str | None = None,
                  time_source: str | None = None) -> dict[str, Any]:
        when = parse_timestamp(record.get("ts"))
        if when is None:
            raise RecordError("no timestamp", f"ts unparseable: {str(record.get('ts'))[:80]}")
        if time_source is None:
            self._last_when = when
        msg = redact_text(as_str(record.get("msg")) or "")
        level = (as_str(record.get("level")) or "").lower()
        error_text = as_str(record.get("error"))
        event: dict[str, Any] = {
            "@timestamp": format_timestamp(when),
            "event.id": event_id_from_raw(raw),
            "event.kind": "event",
            "event.dataset": self.dataset,
            "event.module": "temporal",
            "event.provider": "temporal-server",
            "message": redact_text(msg),
        }
        set_if(event, "log.level", level)
        set_if(event, "log.logger", as_str(record.get("logger")))
        self._caller(record.get("logging-call-at"), event)
        service = as_str(record.get("service"))
        if service:
            event["temporal.service"] = service
            event["service.name"] = f"temporal-{service}"
            event["service.type"] = "temporal"
        if error_text:
            event["error.message"] = redact_text(error_text)
        set_if(event, "error.stack_trace", as_str(record.get("stacktrace")))
        set_if(event, "temporal.namespace", as_str(record.get("wf-namespace")))
        set_if(event, "temporal.namespace_id", as_str(record.get("wf-namespace-id")))
        set_if(event, "temporal.workflow_id", as_str(record.get("wf-id")))
        set_if(event, "temporal.run_id", as_str(record.get("wf-run-id")))
        set_if(event, "temporal.request_id", as_str(record.get("request-id")))
        grpc_code = as_str(record.get("grpc_code"))
        set_if(event, "error.code", grpc_code)
        operation = as_str(record.get("operation"))
        if operation:
            event["temporal.operation"] = operation
        event["event.outcome"] = "failure" if level in FAILURE_LEVELS else "unknown"
        self._classify(msg, level, error_text, record, event)
        if operation and event.get("event.action") in (None, "service-failure"):
            event["event.action"] = operation
        event.setdefault("event.action", _message_action(msg))
        event.setdefault("event.category", ["host"])
        event.setdefault("event.type", ["error"] if level in FAILURE_LEVELS else ["info"])
        for key in ("address", "host"):
            ip, port = ip_and_port(as_str(record.get(key)))
            if ip:
                add_related(event, "ip", ip)
                if key == "address" and port:
                    event.setdefault("destination.ip", ip)
                    event.setdefault("destination.port", port)
        vendor = redact(record)
        vendor.pop("stacktrace", None)
        if shape != "json":
            vendor["format"] = shape
        if shape.startswith("slog") and any(key in record for key in SDK_KEYS):
            event["event.provider"] = "temporal-sdk"
        if provider:
            event["event.provider"] = provider
        namespaced(PREFIX, vendor, event)
        if time_source:
            event[f"{PREFIX}.time_source"] = time_source
        return event

    @staticmethod
    def _caller(value: Any, event: dict[str, Any]) -> None:
        text = as_str(value)
        if not text:
            return
        path, sep, line = text.rpartition(":")
        if not sep or not line.isdigit():
            path, line = text, ""
        event["log.origin.file.name"] = path.rsplit("/", 1)[-1]
        if "/" in path:
            event["log.origin.file.path"] = path
        if line:
            event["log.origin.file.line"] = int(line)

    def _classify(self, msg: str, level: str, error_text: str | None, record: dict[str, Any], event: dict[str, Any]) -> None:
        lower = msg.lower()
        if lower == "authorization error":
            event.update({"event.action": "authorization-error", "event.category": ["authentication"], "event.type": ["denied"],
                          "event.outcome": "failure"})
            cause = jwt_cause(error_text or "")
            if cause:
                event["error.type"] = cause
                if cause != "unauthorized":
                    event["temporal.auth_method"] = "jwt"
            return
        if lower.startswith(("error during initial retrieval of token keys", "error while refreshing token keys")):
            event.update({"event.action": "jwks-fetch-error", "event.category": ["authentication"], "event.type": ["error"],
                          "event.outcome": "failure", "temporal.auth_method": "jwt"})
            return
        if lower.startswith(("ignoring permission", "unexpected type of jwks public key")):
            event.update({"event.action": "jwt-permission-ignored" if lower.startswith("ignoring") else "jwks-key-ignored",
                          "event.category": ["authentication"], "event.type": ["info"], "temporal.auth_method": "jwt"})
            return
        ns = _NS_SUCCEEDED.match(msg)
        if ns:
            verb = ns.group(1).lower()
            kind = {"register": "creation", "deprecate": "change", "update": "change", "delete": "deletion"}.get(verb, "change")
            past = {"register": "registered", "deprecate": "deprecated", "update": "updated", "delete": "deleted"}.get(verb, verb + "d")
            event.update({"event.action": f"namespace-{past}", "event.category": ["configuration"], "event.type": [kind],
                          "event.outcome": "success"})
            return
        if lower.startswith("namespace is deleted"):
            event.update({"event.action": "namespace-deleted", "event.category": ["configuration"], "event.type": ["deletion"],
                          "event.outcome": "success"})
            return
        if lower.startswith(("unable to delete namespace", "unable to update namespace state to deleted")):
            event.update({"event.action": "namespace-delete-failed", "event.category": ["configuration"], "event.type": ["deletion"],
                          "event.outcome": "failure"})
            return
        if lower.startswith("generated new name for deleted namespace"):
            event.update({"event.action": "namespace-renamed-for-deletion", "event.category": ["configuration"], "event.type": ["deletion"]})
            set_if(event, "temporal.target", {"name": as_str(record.get("wf-new-namespace"))} if record.get("wf-new-namespace") else None)
            return
        expiry = _EXPIRY.search(msg)
        if expiry:
            self._expiry(expiry, event)
            return
        if lower.startswith("successfully established incoming tls connection"):
            event.update({"event.action": "tls-connection-established", "event.category": ["network"], "event.type": ["connection", "allowed"],
                          "event.outcome": "success", "tls.established": True})
            set_if(event, "tls.client.server_name", as_str(record.get("server-name")))
            name = as_str(record.get("name"))
            if name:
                event["tls.client.x509.subject.common_name"] = [name]
            return
        if lower.startswith("loaded new tls certificates"):
            event.update({"event.action": "certificates-reloaded", "event.category": ["configuration"], "event.type": ["change"], "event.outcome": "success"})
            return
        if lower.startswith(("failed to load certificates", "error while checking for certificate expiration", "loading server tls certificate failed",
                             "unable to config tls", "failed to fetch client cas")):
            event.update({"event.action": "certificate-load-failed", "event.category": ["configuration"], "event.type": ["error"], "event.outcome": "failure"})
            return
        if lower.startswith("loading certificate from file"):
            event.update({"event.action": "certificate-loaded", "event.category": ["configuration"], "event.type": ["info"]})
            return
        cause = tls_cause(error_text or "") or tls_cause(msg)
        if cause:
            self._tls_failure(cause, (error_text or msg), event)
            return
        if _codec_failure(error_text or msg, event):
            return
        if lower == "service failures":
            event.update({"event.action": "service-failure", "event.category": ["api"], "event.type": ["error"], "event.outcome": "failure"})

    @staticmethod
    def _expiry(match: re.Match[str], event: dict[str, Any]) -> None:
        expired = match.group("state") == "has expired"
        event.update({"event.action": "certificate-expired" if expired else "certificate-expiring", "event.category": ["configuration"],
                      "event.type": ["info"]})
        when_text = " ".join(match.group("when").split(" ")[:3])
        when = parse_timestamp(when_text) or parse_timestamp(" ".join(when_text.split(" ")[:2]))
        if when is not None:
            event["tls.server.x509.not_after"] = format_timestamp(when)
        event["tls.server.hash.md5"] = match.group("thumb").upper()
        names = [n for n in match.group("dns").split(" ") if n]
        if names:
            event["tls.server.x509.alternative_names"] = names

    @staticmethod
    def _tls_failure(cause: str, text: str, event: dict[str, Any]) -> None:
        event.update({"event.action": event.get("event.action") or "tls-handshake-failed", "event.category": ["network"],
                      "event.type": ["connection", "denied"], "event.outcome": "failure", "tls.established": False, "error.type": cause})
        lower = text.lower()
        rejected_by_peer = any(marker in lower for marker in _PEER_REJECTED)
        event["event.reason"] = "local certificate rejected by peer" if rejected_by_peer else "peer certificate rejected"
        event.setdefault("error.message", redact_text(text))

    # -- text lines ------------------------------------------------------------------------

    def _from_text(self, line: str, raw: bytes) -> dict[str, Any]:
        match = _GO_LOG.match(line.strip())
        if match is None:
            raise RecordError("unrecognized text line", line[:120])
        when = parse_timestamp(f"{match.group('date').replace('/', '-')}T{match.group('time')}Z")
        if when is None:
            raise RecordError("no timestamp", line[:80])
        level = (match.group("pre") or match.group("post") or "").lower()
        level = "warn" if level == "warning" else level
        rest = redact_text(match.group("rest").strip())
        event: dict[str, Any] = {
            "@timestamp": format_timestamp(when),
            "event.id": event_id_from_raw(raw),
            "event.kind": "event",
            "event.dataset": self.dataset,
            "event.module": "temporal",
            "message": redact_text(rest),
            "event.outcome": "failure" if level in FAILURE_LEVELS else "unknown",
        }
        set_if(event, "log.level", level)
        is_grpc = "grpc:" in rest or rest.startswith("[core]") or "[transport]" in rest
        event["event.provider"] = "grpc-go" if is_grpc else "temporal-sdk"
        cause = tls_cause(rest)
        if cause:
            event["event.action"] = "tls-handshake-failed"
            detail = _tls_error_text(rest)
            self._tls_failure(cause, detail, event)
            event["error.message"] = redact_text(detail)
            peer = _HANDSHAKE_PEER.search(rest)
            if peer:
                ip, port = ip_and_port(peer.group(1) if "]" not in peer.group(1) else "[" + peer.group(1))
                if ip is None:
                    ip, port = ip_and_port(peer.group(1).rstrip("]"))
                if ip:
                    event["source.ip"] = ip
                    set_if(event, "source.port", port)
                    add_related(event, "ip", ip)
        else:
            event["event.action"] = _message_action(_SDK_TAGS.split(rest, 1)[0])
            _codec_failure(rest, event)
            event["event.category"] = ["host"]
            event["event.type"] = ["error"] if level in FAILURE_LEVELS else ["info"]
        self._sdk_tags(rest, event)
        return event

    @staticmethod
    def _sdk_tags(rest: str, event: dict[str, Any]) -> None:
        """Go SDK default logger writes ``msg Key value Key value ...``; pick the keys rules need."""
        for key, field in (("Namespace", "temporal.namespace"), ("TaskQueue", None), ("WorkflowID", "temporal.workflow_id"),
                           ("RunID", "temporal.run_id")):
            match = re.search(rf"\b{key} (\S+)", rest)
            if match and field:
                set_if(event, field, match.group(1))


def _level(word: str) -> str:
    lower = word.lower()
    return {"warning": "warn", "severe": "error", "critical": "fatal"}.get(lower, lower)


_TEMPORAL_MARKERS = ("temporal", ".go:", "io.grpc", "i.g.", "i.t.", "io.netty", "tonic", "hyper", "rustls", "grpc", "failed reaching server")


def _mentions_temporal_or_tls(text: str) -> bool:
    """Claim a text line only when it is Temporal's (or its gRPC/TLS stack's): other apps' lines stay dead letters."""
    lower = text.lower()
    return any(marker in lower for marker in _TEMPORAL_MARKERS) or tls_cause(lower) is not None


def _line_fields(rest: str, thread: str | None = None) -> tuple[dict[str, Any], str, str | None]:
    """The columns after time and level: zap console (caller, msg, JSON tags; tabs or runs of spaces), Rust tracing
    (``target: message field=value error=Status {...}``), Java (``[thread] logger - message``) or a bare message."""
    fields: dict[str, Any] = {}
    rest = rest.rstrip("\r\n")
    shape = "text"
    provider: str | None = None
    start = 0
    for _ in range(3):  # zap's trailing JSON tags: the first '{"' after a column break that parses as an object
        index = rest.find('{"', start)
        if index <= 0:
            break
        start = index + 1
        if rest[index - 1] not in " \t":
            continue
        try:
            tags = orjson.loads(rest[index:])
        except orjson.JSONDecodeError:
            continue
        if isinstance(tags, dict):
            fields.update(tags)
            rest = rest[:index].rstrip()
            shape = "console"
            break
    caller = _GO_CALLER.match(rest)
    if caller:
        fields["logging-call-at"] = caller.group("caller")
        rest = rest[caller.end():]
        shape = "console"
    if shape == "console":
        fields["msg"] = _COLUMNS.sub(" ", rest.strip()) if "\t" in rest.strip() else rest.strip()
        return fields, shape, provider
    target = _RUST_TARGET.search(rest)
    if target and (target.start() == 0 or rest[: target.start()].endswith(": ")):
        fields["logger"] = target.group("target")
        body = rest[target.end():]
        error = _RUST_ERROR_FIELD.search(body)
        if error:
            fields["error"] = body[error.end():]
            body = body[: error.start()]
        fields["msg"] = body.strip()
        shape, provider = "rust-tracing", "temporal-sdk"
    else:
        java = _JAVA_LOGGER.match(rest)
        if java and "." in java.group("logger"):
            fields["logger"] = java.group("logger")
            fields["msg"] = java.group("msg").strip()
            shape, provider = "java-text", "temporal-sdk"
        else:
            fields["msg"] = rest.strip()
    namespace = _NAMESPACE_FIELD.search(rest) or (_NAMESPACE_FIELD.search(thread) if thread else None)
    if namespace and "wf-namespace" not in fields:
        fields["wf-namespace"] = namespace.group("ns")
    return fields, shape, provider


def _is_logstash_java(record: dict[str, Any]) -> bool:
    """logstash-logback-encoder / log4j JSON layout of a Java SDK worker."""
    logger = record.get("logger_name", record.get("loggerName"))
    if not isinstance(logger, str) or "level" not in record or not ("@timestamp" in record or "timestamp" in record):
        return False
    if logger.startswith(("io.temporal", "io.grpc", "io.netty")):
        return True
    trace = str(record.get("stack_trace", ""))[:65536] + " " + str(record.get("message", ""))[:65536]
    return _mentions_temporal_or_tls(trace)


def _is_rust_json(record: dict[str, Any]) -> bool:
    """tracing-subscriber's JSON format (Rust core SDK with JSON logging)."""
    target = record.get("target")
    return isinstance(target, str) and target.startswith("temporal") and isinstance(record.get("fields"), dict) and "timestamp" in record


def _exception_summary(stack: str) -> str:
    """The exception lines of a Java stack trace (class: message, Caused by: ...), without the frames."""
    lines = [line.strip() for line in stack.splitlines()[:400] if line.strip() and not _JAVA_FRAME.match(line)]
    return "\n".join(lines[:20])


def _logstash_fields(record: dict[str, Any]) -> dict[str, Any]:
    fields = dict(record)
    fields["ts"] = record.get("@timestamp", record.get("timestamp"))
    fields["level"] = _level(as_str(record.get("level")) or "")
    fields["msg"] = as_str(record.get("message")) or ""
    fields["logger"] = as_str(record.get("logger_name", record.get("loggerName")))
    stack = as_str(record.get("stack_trace", record.get("exception")))
    if stack:
        fields["error"] = _exception_summary(stack)
        fields["stacktrace"] = stack
    for sdk_key, zap_key in (("Namespace", "wf-namespace"), ("namespace", "wf-namespace"), ("WorkflowId", "wf-id"), ("RunId", "wf-run-id")):
        if sdk_key in record and zap_key not in fields:
            fields[zap_key] = record[sdk_key]
    return fields


def _rust_json_fields(record: dict[str, Any]) -> dict[str, Any]:
    found = record.get("fields")
    inner: dict[str, Any] = found if isinstance(found, dict) else {}
    fields: dict[str, Any] = {key: value for key, value in record.items() if key not in ("fields", "timestamp")}
    fields.update({key: value for key, value in inner.items() if key not in ("message",)})
    fields["ts"] = record.get("timestamp")
    fields["level"] = _level(as_str(record.get("level")) or "")
    fields["msg"] = as_str(inner.get("message")) or ""
    fields["logger"] = as_str(record.get("target"))
    if "namespace" in inner:
        fields["wf-namespace"] = inner["namespace"]
    return fields


def _codec_failure(text: str, event: dict[str, Any]) -> bool:
    """Payload-codec decryption failures (reference §8 sample wording): the visible trace of a key rotation."""
    lower = text.lower()
    for needle, cause in _CODEC_CAUSES:
        if needle in lower:
            event["error.type"] = cause
            event.setdefault("error.message", redact_text(text))
            event["event.outcome"] = "failure"
            match = _UNKNOWN_KEY.search(text)
            if match:
                event["temporal.key.id"] = match.group(1)
            return True
    return False


def _logfmt(line: str) -> dict[str, Any]:
    """slog TextHandler ``key=value key="quoted value"`` pairs (Go strconv.Quote escapes), in time linear in the line.

    A quoted value that never closes is read as a bare token; once one quote was found unclosed, later quotes are too
    (nothing closes after it), so no position is rescanned to the end of the line twice.
    """
    fields: dict[str, Any] = {}
    pos, size = 0, len(line)
    quotes_close = True
    while pos < size:
        space = _LOGFMT_SPACE.match(line, pos)
        if space:
            pos = space.end()
            continue
        key = _LOGFMT_KEY.match(line, pos)
        if key is None:  # a token that is no pair: skip it whole
            pos = _LOGFMT_BARE.match(line, pos).end()  # type: ignore[union-attr]
            continue
        pos = key.end()
        quoted = _LOGFMT_QUOTED.match(line, pos) if quotes_close and line.startswith('"', pos) else None
        if quoted is not None:
            text = quoted.group(0)
            try:
                value: Any = orjson.loads(text)
            except orjson.JSONDecodeError:
                value = text[1:-1]
            pos = quoted.end()
        else:
            if line.startswith('"', pos):
                quotes_close = False
            bare = _LOGFMT_BARE.match(line, pos)
            value = bare.group(0) if bare else ""
            pos = bare.end() if bare else pos
        fields[key.group(0)[:-1]] = value
    return fields


def _sdk_fields(record: dict[str, Any]) -> dict[str, Any]:
    """A Go SDK slog record (JSON or logfmt) in the zap shape the rest of the parser reads; original keys kept."""
    fields = dict(record)
    fields["ts"] = record.get("time")
    fields["level"] = (as_str(record.get("level")) or "").lower()
    for sdk_key, zap_key in (("Error", "error"), ("Namespace", "wf-namespace"), ("WorkflowID", "wf-id"), ("RunID", "wf-run-id")):
        if sdk_key in record and zap_key not in record:
            fields[zap_key] = record[sdk_key]
    return fields


def _tls_error_text(rest: str) -> str:
    """The TLS error part of a grpc-go/SDK line: from the innermost ``tls:``/``x509:``/``remote error`` onward."""
    lower = rest.lower()
    for marker in ("remote error: tls:", "tls: ", "x509: ", "transport: authentication handshake failed"):
        index = lower.find(marker)
        if index >= 0:
            return rest[index:].rstrip('"\\ ')
    return rest


def _message_action(msg: str) -> str:
    text = msg.strip().rstrip(".")
    return text[:80] if text else "none"
