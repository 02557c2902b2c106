"""``splunk_hec``: Splunk HTTP Event Collector, ``/services/collector/event``, batched JSON events.

A request carries many event objects back to back (HEC's batch format); the response code decides:
200 delivered (or, with indexer acknowledgement on, once ``/services/collector/ack`` reports the ackId
true), 503 "server busy" / 5xx / connection errors retried with backoff, a bad token or a bad index a
configuration error that holds the pipeline (SinkError) rather than losing alerts. HEC has no document
ids, so a request whose acknowledgement never comes is sent again (at-least-once); per-request progress
is kept so a retry does not repeat requests already acknowledged.
"""

from __future__ import annotations

import http.client
import itertools
import logging
import socket
import ssl
import time
import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import Field, SecretStr

from temporal_siem.kernel.backoff import Backoff
from temporal_siem.sinks.base import Sink, SinkError, to_json_line
from temporal_siem.sinks.delivery import PartialBatch, secret
from temporal_siem.sinks.options import SinkOptions, check_role, resolve

log = logging.getLogger("temporal_siem.sinks.splunk_hec")

EVENT_PATH = "/services/collector/event"
ACK_PATH = "/services/collector/ack"
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: HEC codes that blame the data (5 no data, 6 invalid data format, 12/13 event missing/blank, 15 indexed
#: fields); 7 "incorrect index" and the token codes blame the configuration instead.
CONTENT_CODES = frozenset({5, 6, 12, 13, 15})
#: Fields sent as HEC indexed fields (``fields``) when present, for fast tstats searches.
INDEXED_FIELDS = ("rule.id", "alert.level", "event.dataset")


def _valid(value: Any) -> Any:
    return value.encode("utf-8", "replace").decode("utf-8") if isinstance(value, str) else value


class HecError(Exception):
    def __init__(self, message: str, retryable: bool, content: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.content = content  # the events themselves were refused (not the token, index or server)


def epoch_seconds(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return round(moment.timestamp(), 3) if moment.tzinfo else None


class SplunkHecConfig(SinkOptions):
    """``splunk_hec`` sink options."""

    type: Literal["splunk_hec"] = "splunk_hec"
    url: str = Field("https://127.0.0.1:8088", description="`http(s)://host:port` of the HEC endpoint (a path prefix is kept).")
    token: SecretStr = Field(description="The HEC token's value (required).")
    index: str | None = Field(None, description="Splunk index; default: the token's default index.")
    source: str = Field("temporal-siem", description="HEC `source`.")
    sourcetype: str | None = Field(
        None, description="HEC `sourcetype`; default by role: `temporal-siem:alert`, `temporal-siem:event`, `temporal-siem:dead-letter`.")
    host: str | None = Field(None, description="HEC `host`; default: this machine's host name.")
    ack: bool = Field(False, description="Indexer acknowledgement: a batch counts as delivered once its ackId is confirmed.")
    channel: str | None = Field(None, description="`X-Splunk-Request-Channel` GUID; default: random per process.")
    ack_timeout: float = Field(60.0, description="Seconds to wait for acknowledgements before sending the batch again.")
    ack_poll_interval: float = Field(0.5, description="Seconds between acknowledgement queries.")
    max_batch_bytes: int = Field(1024 * 1024, ge=1, description="Bytes per request at most.")
    ca_file: str | None = Field(None, description="CA file to verify the server.")
    verify: bool = Field(True, description="Verify the server certificate.")
    timeout: float = Field(30.0, description="Seconds per request.")
    max_retries: int = Field(5, ge=0, description="Retries before `SinkError`.")
    initial_backoff: float = Field(0.5, description="First retry delay, seconds (doubling, with jitter).")
    max_backoff: float = Field(10.0, description="Longest retry delay, seconds.")


class SplunkHecSink(Sink):
    name: ClassVar[str] = "splunk_hec"

    def __init__(self, config: SplunkHecConfig | None = None, /, *, role: str = "alerts", **options: Any) -> None:
        c = resolve(SplunkHecConfig, config, options)
        check_role(self.name, role)
        token_text = secret(c.token)
        if not token_text:
            raise ValueError("splunk_hec: a token is required (the HEC token's value)")
        url = c.url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"splunk_hec: url must be http(s)://host:port, not {url!r}")
        self.url = url
        self._scheme, self._host = parts.scheme, parts.hostname
        self._port = parts.port or 8088
        self._base_path = parts.path.rstrip("/")
        self._token = token_text
        self.index = c.index
        self.source = c.source
        self.sourcetype = c.sourcetype or {"alerts": "temporal-siem:alert", "events": "temporal-siem:event"}.get(role, "temporal-siem:dead-letter")
        self.host = c.host or socket.gethostname()
        self.ack = c.ack
        self.channel = c.channel or str(uuid.uuid4())
        self.ack_timeout = c.ack_timeout
        self.ack_poll_interval = c.ack_poll_interval
        self.max_batch_bytes = c.max_batch_bytes
        self.ca_file = c.ca_file
        self.verify = c.verify
        self.timeout = c.timeout
        self.backoff = Backoff(c.max_retries, c.initial_backoff, c.max_backoff)
        self._connection: http.client.HTTPConnection | None = None
        self._progress = PartialBatch()
        self._documents: list[dict[str, Any]] = []
        self._rejected: list[tuple[dict[str, Any], str]] = []
        self.stats = {"requests": 0, "events": 0, "busy": 0, "ack_resends": 0}

    # -- encoding ----------------------------------------------------------------------------------

    def encode(self, document: dict[str, Any]) -> bytes:
        """One HEC event object, as Splunk documents it (time in epoch seconds, event = the nested document)."""
        envelope: dict[str, Any] = {"host": self.host, "source": self.source, "sourcetype": self.sourcetype}
        moment = epoch_seconds(document.get("@timestamp"))
        if moment is not None:
            envelope["time"] = moment
        if self.index:
            envelope["index"] = self.index
        fields = {key: _valid(document[key]) for key in INDEXED_FIELDS if isinstance(document.get(key), str | int | float)}
        if fields:
            envelope["fields"] = fields
        head = orjson.dumps(envelope)
        return head[:-1] + b',"event":' + to_json_line(document)[:-1] + b"}"

    def _batches(self, encoded: list[tuple[int, bytes]]) -> list[list[tuple[int, bytes]]]:
        batches: list[list[tuple[int, bytes]]] = []
        current: list[tuple[int, bytes]] = []
        size = 0
        for position, event in encoded:
            if current and size + len(event) > self.max_batch_bytes:
                batches.append(current)
                current, size = [], 0
            current.append((position, event))
            size += len(event)
        if current:
            batches.append(current)
        return batches

    # -- HTTP --------------------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._scheme == "http":
            return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout, context=context)

    def _request(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Splunk {self._token}", "Content-Type": "application/json",
                   "X-Splunk-Request-Channel": self.channel}
        if self._connection is None:
            self._connection = self._connect()
        try:
            self._connection.request("POST", self._base_path + path, body=body, headers=headers)
            response = self._connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            raise HecError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if response.getheader("Connection", "").lower() == "close":
            self._drop_connection()
        try:
            parsed = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            parsed = {"text": payload[:200].decode("utf-8", "replace")}
        return response.status, parsed if isinstance(parsed, dict) else {"text": str(parsed)}

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _post_events(self, body: bytes) -> int | None:
        """Send one batch; the ackId when acknowledgement is on. Raises HecError."""
        status, reply = self._request(EVENT_PATH, body)
        self.stats["requests"] += 1
        if status == 200:
            ack_id = reply.get("ackId")
            return int(ack_id) if self.ack and ack_id is not None else None
        text = f"HTTP {status} code {reply.get('code')}: {reply.get('text')}"
        if status == 503:
            self.stats["busy"] += 1
        if status in RETRYABLE_STATUS:
            raise HecError(text, retryable=True)
        if status in (401, 403):
            raise HecError(f"{text} (check the HEC token and that it is enabled)", retryable=False)
        content = status == 413 or (status == 400 and reply.get("code") in CONTENT_CODES)
        raise HecError(f"{text} (invalid-event-number {reply.get('invalid-event-number')})", retryable=False, content=content)

    def _acknowledged(self, ack_ids: list[int]) -> set[int]:
        """ackIds the indexers confirm; waits up to ack_timeout."""
        deadline = time.monotonic() + self.ack_timeout
        confirmed: set[int] = set()
        while True:
            waiting = [ack for ack in ack_ids if ack not in confirmed]
            if not waiting:
                return confirmed
            status, reply = self._request(ACK_PATH, orjson.dumps({"acks": waiting}))
            if status != 200:
                raise HecError(f"ack query: HTTP {status} code {reply.get('code')}: {reply.get('text')}",
                               retryable=status in RETRYABLE_STATUS)
            acks = reply.get("acks") or {}
            confirmed.update(int(key) for key, done in acks.items() if done is True)
            if time.monotonic() >= deadline:
                return confirmed
            if len(confirmed) < len(ack_ids):
                time.sleep(self.ack_poll_interval)

    # -- Sink --------------------------------------------------------------------------------------

    def write(self, documents: list[dict[str, Any]]) -> None:
        if not documents:
            return
        self._documents = documents
        encoded = [(position, self.encode(documents[position])) for position in self._progress.pending(documents)]
        delays = self.backoff.delays()
        while True:
            try:
                self._deliver(self._batches(encoded))
                self._progress.complete()
                return
            except HecError as exc:
                if not exc.retryable:
                    raise SinkError(f"splunk_hec {self.url}: {exc}") from exc
                remaining = set(self._progress.pending(documents))
                encoded = [(p, e) for p, e in encoded if p in remaining]
                delay = next(delays, None)
                if delay is None:
                    raise SinkError(f"splunk_hec {self.url}: {exc}") from exc
                log.info("splunk_hec: %s; retrying %d events in %.2fs", exc, len(encoded), delay)
                self.backoff.pause(delay)

    def _post_batch(self, batch: list[tuple[int, bytes]]) -> list[tuple[int | None, list[tuple[int, bytes]]]]:
        """Post a batch; if Splunk refuses its content, halve it until the offending event stands alone,
        which goes to the dead letters (an oversized or malformed alert must not hold the stream)."""
        try:
            return [(self._post_events(b"".join(event for _, event in batch)), batch)]
        except HecError as exc:
            if not exc.content:
                raise
            if len(batch) == 1:
                position = batch[0][0]
                self._rejected.append((self._documents[position], f"splunk_hec_rejected: {exc}"))
                self._progress.delivered(position)
                return []
            middle = len(batch) // 2
            return self._post_batch(batch[:middle]) + self._post_batch(batch[middle:])

    def take_rejected(self) -> list[tuple[dict[str, Any], str]]:
        rejected, self._rejected = self._rejected, []
        return rejected

    def _deliver(self, batches: list[list[tuple[int, bytes]]]) -> None:
        sent: dict[int, list[tuple[int, bytes]]] = {}
        for whole in batches:
            for ack_id, batch in self._post_batch(whole):
                if ack_id is None:
                    for position, _ in batch:
                        self._progress.delivered(position)
                    self.stats["events"] += len(batch)
                else:
                    sent[ack_id] = batch
        if not sent:
            return
        confirmed = self._acknowledged(list(sent))
        for ack_id, batch in sent.items():
            if ack_id in confirmed:
                for position, _ in batch:
                    self._progress.delivered(position)
                self.stats["events"] += len(batch)
        if len(confirmed) < len(sent):
            self.stats["ack_resends"] += len(sent) - len(confirmed)
            raise HecError(f"{len(sent) - len(confirmed)} batches not acknowledged within {self.ack_timeout}s", retryable=True)

    def close(self) -> None:
        self._drop_connection()
