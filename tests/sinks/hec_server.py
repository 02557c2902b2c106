"""A Splunk HTTP Event Collector stand-in for the tests (Splunk itself cannot run here).

It enforces the protocol as Splunk documents it ("Format events for HTTP Event Collector", "HTTP Event
Collector REST API endpoints", "About HTTP Event Collector Indexer Acknowledgment"):
- POST /services/collector/event with ``Authorization: Splunk <token>``; no header -> 401 code 2
  "Token is required"; a wrong token -> 403 code 4 "Invalid token";
- the body is one or more JSON event objects back to back (optionally whitespace-separated); each
  must have a non-empty ``event``; ``time`` if present is epoch seconds (number or numeric string);
  ``fields`` is a flat object of scalars or arrays of scalars; a malformed body -> 400 code 6 "Invalid
  data format" with ``invalid-event-number``; a missing/blank event -> 400 code 12 / 13;
- with indexer acknowledgement on: the ``X-Splunk-Request-Channel`` header (a GUID) is required
  (400 code 10 "Data channel is missing", 400 code 11 "Invalid data channel"), success returns
  ``{"text":"Success","code":0,"ackId":N}``, and POST /services/collector/ack ``{"acks":[...]}``
  answers ``{"acks":{"N":true|false}}``;
- a request over ``max_content_length`` -> 413; an event for an index the token may not use -> 400
  code 7 "Incorrect index";
- a busy server answers 503 ``{"text":"Server is busy","code":9}``.
Every accepted event is stored per channel for the assertions.
"""

from __future__ import annotations

import json
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HecState:
    def __init__(self, token: str, ack: bool) -> None:
        self.token = token
        self.ack = ack
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self.busy_responses = 0  # answer 503 to this many event requests, then recover
        self.withhold_acks = 0  # report this many pending ackIds as false before confirming them
        self.lose_acks: set[int] = set()  # ackIds never confirmed (an indexer lost the data)
        self.pending: dict[int, list[dict[str, Any]]] = {}
        self.next_ack = 0
        self.lock = threading.Lock()
        self.protocol_errors: list[str] = []
        self.max_content_length = 800 * 1024 * 1024  # Splunk's default limits.conf [http_input] max_content_length
        self.indexes: set[str] | None = None  # indexes the token may write to (None: any)


def _reply(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=UTF-8")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def parse_events(body: str) -> tuple[list[dict[str, Any]], tuple[int, int, str] | None]:
    """Concatenated JSON objects -> (events, None) or (events so far, (status, code, text) error)."""
    decoder = json.JSONDecoder()
    events: list[dict[str, Any]] = []
    index = 0
    while True:
        while index < len(body) and body[index] in " \t\r\n":
            index += 1
        if index >= len(body):
            break
        try:
            obj, index = decoder.raw_decode(body, index)
        except json.JSONDecodeError:
            return events, (400, 6, "Invalid data format")
        if not isinstance(obj, dict):
            return events, (400, 6, "Invalid data format")
        if "event" not in obj:
            return events, (400, 12, "Event field is required")
        if obj["event"] in ("", None, {}, []):
            return events, (400, 13, "Event field cannot be blank")
        if "time" in obj:
            try:
                float(obj["time"])
            except (TypeError, ValueError):
                return events, (400, 6, "Invalid data format")
        fields = obj.get("fields", {})
        if not isinstance(fields, dict) or any(isinstance(v, dict) for v in fields.values()):
            return events, (400, 15, "Error in handling indexed fields")
        events.append(obj)
    if not events:
        return events, (400, 5, "No data")
    return events, None


class _Handler(BaseHTTPRequestHandler):
    state: HecState
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization")
        if header is None:
            _reply(self, 401, {"text": "Token is required", "code": 2})
            return False
        scheme, _, token = header.partition(" ")
        if scheme != "Splunk" or token != self.state.token:
            _reply(self, 403, {"text": "Invalid token", "code": 4})
            return False
        return True

    def _channel(self) -> str | None:
        channel = self.headers.get("X-Splunk-Request-Channel")
        if not self.state.ack:
            return channel or "-"
        if not channel:
            _reply(self, 400, {"text": "Data channel is missing", "code": 10})
            return None
        try:
            uuid.UUID(channel)
        except ValueError:
            _reply(self, 400, {"text": "Invalid data channel", "code": 11})
            return None
        return channel

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8")
        state = self.state
        if length > state.max_content_length:
            _reply(self, 413, {"text": "Content too large", "code": 413})
            return
        if not self._authorized():
            return
        channel = self._channel()
        if channel is None:
            return
        if self.path == "/services/collector/event":
            with state.lock:
                state.requests += 1
                if state.busy_responses > 0:
                    state.busy_responses -= 1
                    _reply(self, 503, {"text": "Server is busy", "code": 9})
                    return
            events, error = parse_events(body)
            if error is None and state.indexes is not None:
                for number, event in enumerate(events):
                    if event.get("index", "main") not in state.indexes:
                        _reply(self, 400, {"text": "Incorrect index", "code": 7, "invalid-event-number": number})
                        return
            if error is not None:
                status, code, text = error
                state.protocol_errors.append(text)
                _reply(self, status, {"text": text, "code": code, "invalid-event-number": len(events)})
                return
            with state.lock:
                if not state.ack:
                    state.events.extend(events)
                    _reply(self, 200, {"text": "Success", "code": 0})
                    return
                ack_id = state.next_ack
                state.next_ack += 1
                state.pending[ack_id] = events
            _reply(self, 200, {"text": "Success", "code": 0, "ackId": ack_id})
        elif self.path == "/services/collector/ack":
            if not state.ack:
                _reply(self, 400, {"text": "ACK is disabled", "code": 14})
                return
            try:
                asked = json.loads(body)["acks"]
                assert isinstance(asked, list) and all(isinstance(a, int) for a in asked)
            except (ValueError, KeyError, AssertionError):
                _reply(self, 400, {"text": "Invalid data format", "code": 6})
                return
            answer: dict[str, bool] = {}
            with state.lock:
                for ack_id in asked:
                    if ack_id in state.lose_acks or ack_id not in state.pending:
                        answer[str(ack_id)] = False
                    elif state.withhold_acks > 0:
                        state.withhold_acks -= 1
                        answer[str(ack_id)] = False
                    else:
                        state.events.extend(state.pending.pop(ack_id))
                        answer[str(ack_id)] = True
            _reply(self, 200, {"acks": answer})
        else:
            _reply(self, 404, {"text": "The requested URL was not found on this server.", "code": 404})


class HecServer:
    """Runs on 127.0.0.1 on a free port in a thread; ``url`` for the sink, ``state`` for assertions."""

    def __init__(self, token: str = "00000000-0000-4000-8000-000000000001", ack: bool = False,
                 tls: tuple[str, str] | None = None) -> None:
        self.state = HecState(token, ack)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls is not None:  # (certificate, key): HTTPS as Splunk serves HEC by default
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HecServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
