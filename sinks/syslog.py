"""``syslog``: RFC 5424 messages over TCP (RFC 6587 octet counting), TLS (RFC 5425) or UDP (RFC 5426).

Each document becomes one message: PRI from the alert level, TIMESTAMP from ``@timestamp``, a
structured-data element with the ids a SOC filters on, and the document as JSON (or as a CEF record,
``payload: cef``) in MSG. TCP has no application-level acknowledgement, so a message counts as sent
once the kernel took it; before each batch the connection is probed for a peer that hung up, which is
how a restarted server would otherwise silently swallow the first batch. A batch that fails half-way is
resumed where it stopped (PartialBatch), so a retry does not repeat what went through.
"""

from __future__ import annotations

import itertools
import logging
import os
import select
import socket
import ssl
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from temporal_siem.kernel.backoff import Backoff
from temporal_siem.sinks.base import Sink, SinkError, to_json_line
from temporal_siem.sinks.delivery import PartialBatch
from temporal_siem.sinks.options import SinkOptions, check_role, resolve

log = logging.getLogger("temporal_siem.sinks.syslog")

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8,
    "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14, "solaris-cron": 15,
    **{f"local{i}": 16 + i for i in range(8)},
}
#: Sigma level -> syslog severity (RFC 5424 table 2) and CEF severity (0-10).
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "informational": 6}
CEF_SEVERITY = {"critical": 10, "high": 8, "medium": 5, "low": 3, "informational": 1}
NILVALUE = "-"
BOM = b"\xef\xbb\xbf"

#: CEF extension key -> flat document field (ArcSight "Common Event Format" v25 dictionary names).
CEF_EXTENSIONS: tuple[tuple[str, str], ...] = (
    ("externalId", "alert.id"),
    ("act", "event.action"),
    ("outcome", "event.outcome"),
    ("cat", "event.dataset"),
    ("src", "source.ip"),
    ("spt", "source.port"),
    ("dst", "destination.ip"),
    ("suser", "user.name"),
    ("suid", "user.id"),
    ("duser", "user.target.name"),
    ("requestClientApplication", "user_agent.original"),
    ("msg", "rule.description"),
)
CEF_CUSTOM_STRINGS: tuple[tuple[str, str], ...] = (
    ("ruleTags", "tags"),
    ("threatTechniques", "threat.technique.id"),
    ("sourceEventIds", "alert.source_event_ids"),
    ("cloudAccount", "cloud.account.id"),
    ("temporalNamespace", "temporal.namespace"),
    ("alertType", "alert.type"),
)


def _printable(text: str, limit: int) -> str:
    """RFC 5424 header fields: PRINTUSASCII (33-126), bounded; empty becomes NILVALUE."""
    cleaned = "".join(ch if 33 <= ord(ch) <= 126 else "_" for ch in text)[:limit]
    return cleaned or NILVALUE


def _sd_name(text: str) -> str:
    """SD-NAME: printable, no '=', ' ', ']', '"', at most 32 characters."""
    return "".join(ch for ch in _printable(text, 64) if ch not in '=]"')[:32] or "x"


def _sd_value(value: Any) -> str:
    text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def rfc5424_timestamp(value: Any) -> str:
    """RFC 3339 with at most 6 fractional digits (RFC 5424 TIME-SECFRAC), in UTC; NILVALUE if unusable."""
    if not isinstance(value, str) or len(value) < 19:
        return NILVALUE
    text = value.strip().replace(" ", "T")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return NILVALUE
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds").replace("+00:00", "Z")


def _cef_header(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _cef_value(value: Any) -> str:
    text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return (text.replace("\\", "\\\\").replace("=", "\\=").replace("\r\n", "\\n")
            .replace("\n", "\\n").replace("\r", "\\r"))


def cef_record(document: dict[str, Any], vendor: str, product: str, version: str) -> str:
    """One CEF:0 record: header from the rule, extensions from the ECS fields present."""
    level = str(document.get("alert.level", "medium"))
    signature = document.get("rule.id") or document.get("event.action") or "event"
    name = document.get("rule.name") or document.get("event.action") or "event"
    header = "|".join(["CEF:0", _cef_header(vendor), _cef_header(product), _cef_header(version),
                       _cef_header(signature), _cef_header(name), str(CEF_SEVERITY.get(level, 5))])
    extensions: list[str] = []
    timestamp = rfc5424_timestamp(document.get("@timestamp"))
    if timestamp != NILVALUE:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        extensions.append(f"rt={int(moment.timestamp() * 1000)}")
    for key, field in CEF_EXTENSIONS:
        value = document.get(field)
        if value not in (None, "", []):
            extensions.append(f"{key}={_cef_value(value)}")
    for number, (label, field) in enumerate(CEF_CUSTOM_STRINGS, start=1):
        value = document.get(field)
        if value not in (None, "", []):
            extensions.append(f"cs{number}Label={label} cs{number}={_cef_value(value)}")
    return header + "|" + " ".join(extensions)


class SyslogConfig(SinkOptions):
    """``syslog`` sink options."""

    type: Literal["syslog"] = "syslog"
    host: str = Field("127.0.0.1", description="Collector host.")
    port: int | None = Field(None, description="Collector port; default by protocol: 514 (tcp, udp), 6514 (tls).")
    protocol: Literal["tcp", "tls", "udp"] = Field("tcp", description="`tcp` (RFC 6587), `tls` (RFC 5425) or `udp` (RFC 5426).")
    facility: str | int = Field("local0", description="Facility by name (`local0`, `authpriv`, `security`...) or number 0-23.")
    app_name: str = Field("temporal-siem", description="RFC 5424 APP-NAME.")
    hostname: str | None = Field(None, description="RFC 5424 HOSTNAME; default: this machine's host name.")
    msgid: str | None = Field(None, description="RFC 5424 MSGID; default by role: `alert`, `event`, `dead-letter`.")
    sd_id: str = Field("tsiem@32473", description="Structured-data element id (32473 is the documentation enterprise number; use your own).")
    payload: Literal["json", "cef"] = Field("json", description="MSG as the nested JSON document, or as a CEF:0 record.")
    cef_vendor: str = Field("temporal-siem", description="CEF device vendor.")
    cef_product: str = Field("temporal-siem", description="CEF device product.")
    cef_version: str = Field("0.1", description="CEF device version.")
    bom: bool = Field(False, description="Prefix MSG with the UTF-8 BOM (RFC 5424 says so; many collectors mishandle it).")
    framing: Literal["octet-counting", "lf"] = Field("octet-counting", description="TCP framing: RFC 6587 octet counting, or a newline after each message.")
    max_message_bytes: int | None = Field(None, description="Longer messages are truncated; default 256 KiB (tcp, tls), 8 KiB (udp, at most 65000).")
    ca_file: str | None = Field(None, description="TLS: CA file to verify the collector.")
    cert_file: str | None = Field(None, description="TLS: client certificate.")
    key_file: str | None = Field(None, description="TLS: client certificate key.")
    verify: bool = Field(True, description="TLS: verify the collector's certificate and host name.")
    server_name: str | None = Field(None, description="TLS: the name to verify; default: `host`.")
    timeout: float = Field(10.0, description="Seconds to connect and send.")
    max_retries: int = Field(3, ge=0, description="Retries (reconnecting) before `SinkError`.")
    initial_backoff: float = Field(0.2, description="First retry delay, seconds (doubling, with jitter).")
    max_backoff: float = Field(5.0, description="Longest retry delay, seconds.")

    @field_validator("protocol", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class SyslogSink(Sink):
    name: ClassVar[str] = "syslog"

    def __init__(self, config: SyslogConfig | None = None, /, *, role: str = "alerts", **options: Any) -> None:
        c = resolve(SyslogConfig, config, options)
        check_role(self.name, role)
        protocol, facility, host = c.protocol, c.facility, c.host
        if isinstance(facility, str) and facility not in FACILITIES:
            raise ValueError(f"syslog: unknown facility {facility!r}; known: {', '.join(FACILITIES)}")
        self.host = host
        self.protocol = protocol
        self.port = c.port or {"tcp": 514, "tls": 6514, "udp": 514}[protocol]
        self.facility = FACILITIES[facility] if isinstance(facility, str) else int(facility)
        if not 0 <= self.facility <= 23:
            raise ValueError(f"syslog: facility must be 0-23, not {self.facility}")
        self.app_name = _printable(c.app_name, 48)
        self.hostname = _printable(c.hostname or socket.gethostname(), 255)
        self.msgid = _printable(c.msgid or {"alerts": "alert", "events": "event", "dead_letter": "dead-letter"}.get(role, role), 32)
        self.procid = str(os.getpid())
        self.sd_id = _sd_name(c.sd_id)
        self.payload = c.payload
        self.cef = (c.cef_vendor, c.cef_product, c.cef_version)
        self.bom = c.bom
        self.framing = c.framing
        self.max_message_bytes = c.max_message_bytes or (8192 if protocol == "udp" else 256 * 1024)
        if protocol == "udp":
            self.max_message_bytes = min(self.max_message_bytes, 65000)  # one IPv4/IPv6 datagram
        self.tls = (c.ca_file, c.cert_file, c.key_file, c.verify, c.server_name)
        self.timeout = c.timeout
        self.backoff = Backoff(c.max_retries, c.initial_backoff, c.max_backoff)
        self._socket: socket.socket | None = None
        self._progress = PartialBatch()
        self.sent = 0

    # -- formatting --------------------------------------------------------------------------------

    def format(self, document: dict[str, Any]) -> bytes:
        """One RFC 5424 message (without transport framing)."""
        level = str(document.get("alert.level", ""))
        severity = SYSLOG_SEVERITY.get(level, 6 if "alert.id" not in document else 4)
        params = [("alert_id", document.get("alert.id")), ("rule_id", document.get("rule.id")),
                  ("rule_name", document.get("rule.name")), ("level", document.get("alert.level")),
                  ("event_id", document.get("event.id")), ("dataset", document.get("event.dataset"))]
        sd_params = " ".join(f'{name}="{_sd_value(value)}"' for name, value in params if value not in (None, "", []))
        structured = f"[{self.sd_id} {sd_params}]" if sd_params else NILVALUE
        header = (f"<{self.facility * 8 + severity}>1 {rfc5424_timestamp(document.get('@timestamp'))} {self.hostname} "
                  f"{self.app_name} {self.procid} {self.msgid} {structured} ").encode("utf-8", "replace")
        cef = self.payload == "cef"
        body = cef_record(document, *self.cef).encode("utf-8", "replace") if cef else to_json_line(document)[:-1]
        if self.framing == "lf" and self.protocol != "udp":
            body = body.replace(b"\n", b"\\n")  # JSON has no raw newlines; CEF escapes them; belt and braces
        message = header + (BOM if self.bom else b"") + body
        if len(message) > self.max_message_bytes:
            message = message[: self.max_message_bytes]
        return message

    def frame(self, message: bytes) -> bytes:
        if self.protocol == "udp":
            return message
        if self.framing == "lf":
            return message + b"\n"
        return str(len(message)).encode() + b" " + message

    # -- transport ---------------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        if self.protocol == "udp":
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.connect((self.host, self.port))
            return udp
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if self.protocol == "tcp":
            return raw
        ca_file, cert_file, key_file, verify, server_name = self.tls
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
        try:
            return context.wrap_socket(raw, server_hostname=server_name or self.host)
        except (ssl.SSLError, OSError):
            raw.close()
            raise

    def _peer_closed(self, sock: socket.socket) -> bool:
        """A TCP peer that restarted leaves a socket that accepts writes and drops them: detect it first."""
        if self.protocol == "udp":
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            if isinstance(sock, ssl.SSLSocket):
                return sock.recv(1) == b""  # servers send nothing: readable means close_notify/EOF
            return sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def open(self) -> None:
        try:
            self._socket = self._socket or self._connect()
        except OSError as exc:
            log.warning("syslog: %s:%s unavailable at start (%s); retried on write", self.host, self.port, exc)

    def _close_socket(self) -> None:
        if self._socket is not None:
            try:
                self._socket.close()
            except OSError:
                pass
            self._socket = None

    def write(self, documents: list[dict[str, Any]]) -> None:
        if not documents:
            return
        pending = self._progress.pending(documents)
        frames = [(position, self.frame(self.format(documents[position]))) for position in pending]
        delays = self.backoff.delays()
        while True:
            try:
                self._send(frames)
                self._progress.complete()
                return
            except (OSError, ssl.SSLError) as exc:
                self._close_socket()
                remaining = set(self._progress.pending(documents))
                frames = [(p, f) for p, f in frames if p in remaining]
                delay = next(delays, None)
                if delay is None:
                    raise SinkError(f"syslog {self.protocol}://{self.host}:{self.port}: {exc}") from exc
                self.backoff.pause(delay)

    def _send(self, frames: list[tuple[int, bytes]]) -> None:
        if self._socket is not None and self._peer_closed(self._socket):
            log.info("syslog: %s:%s closed the connection; reconnecting", self.host, self.port)
            self._close_socket()
        if self._socket is None:
            self._socket = self._connect()
        sock = self._socket
        if self.protocol == "udp":
            for position, frame in frames:
                sock.send(frame)
                self._progress.delivered(position)
                self.sent += 1
            return
        # Whole frames in writes of ~64 KiB: a frame is marked sent only once all its bytes are.
        buffer: list[bytes] = []
        positions: list[int] = []
        size = 0
        for position, frame in frames:
            buffer.append(frame)
            positions.append(position)
            size += len(frame)
            if size >= 65536:
                self._flush(sock, buffer, positions)
                buffer, positions, size = [], [], 0
        if buffer:
            self._flush(sock, buffer, positions)

    def _flush(self, sock: socket.socket, buffer: list[bytes], positions: list[int]) -> None:
        sock.sendall(b"".join(buffer))
        for position in positions:
            self._progress.delivered(position)
        self.sent += len(positions)

    def close(self) -> None:
        if self._socket is not None and self.protocol != "udp":
            try:
                if isinstance(self._socket, ssl.SSLSocket):
                    self._socket = self._socket.unwrap()
                self._socket.shutdown(socket.SHUT_WR)
            except (OSError, ValueError):
                pass
        self._close_socket()
