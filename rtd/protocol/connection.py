"""A realtime connection usable on its own, in the shape the OpenAI and Portkey SDKs use.

    with rtd.connect(model="gpt-realtime-2") as conn:
        conn.send({"type": "session.update", "session": {...}})
        conn.send_audio_data(pcm24)
        for event in conn.listen():
            print(event.type)

The session actor is built on this class, so scripts and the daemon share one implementation.
It is thread-safe in the one way that matters: one thread may `listen()` while others `send()`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import ssl
from collections.abc import Iterator, Mapping
from typing import Any

import websocket

from rtd.exceptions import AuthenticationError, ConnectionFailed, ProtocolError
from rtd.protocol import events
from rtd.protocol.providers import Endpoint, endpoint, openai_endpoint

logger = logging.getLogger(__name__)

class RealtimeConnection:
    """One WebSocket connection to a realtime server."""

    def __init__(self, ws: websocket.WebSocket, target: Endpoint) -> None:
        self._ws = ws
        self.endpoint = target
        #: Close code and reason once the server closed the connection (1001: session expired).
        self.close_code: int | None = None
        self.close_reason: str = ""
        #: The code and message of the latest `error` event (why a close that follows came).
        self.last_error: tuple[str, str] | None = None
        #: No more frames will come: closed by either side, or dropped.
        self.ended = False
        #: close() was called here (so the end is no surprise).
        self.closed_here = False
        self._closed = False

    @property
    def url(self) -> str:
        """The URL connected to, credentials removed."""
        return self.endpoint.safe_url

    def send(self, event: Mapping[str, Any]) -> None:
        """Send one client event (a dict in the GA shape; the dialect reshapes it)."""
        self._send_text(encode_event(event, self.endpoint))

    def send_audio_data(self, pcm: bytes) -> None:
        """Append 24 kHz mono int16 PCM to the server's input buffer."""
        self._send_text(events.encode_client_event(events.audio_append(pcm)))

    def _send_text(self, text: str) -> None:
        try:
            self._ws.send(text)
        except (websocket.WebSocketException, OSError) as exc:
            raise ConnectionFailed(f"sending to {self.url} failed: {_describe(exc)}") from None

    def recv(self) -> events.ServerEvent | None:
        """The next server event (GA shape), or None once the connection is closed."""
        while True:
            data = self.recv_bytes()
            if data is None:
                return None
            try:
                event = self.parse_event(data)
            except ProtocolError as exc:
                logger.warning("%s; ignored", exc)
                continue
            if event is not None:
                return event

    def parse_event(self, data: str | bytes) -> events.ServerEvent | None:
        """One frame as a GA server event; None for what only the transport cares about (an
        xAI ``ping``). Raises ProtocolError for a frame that is not an event."""
        event = decode_event(data, self.endpoint)
        if event is not None and event.type == "error":
            err = event.get("error")
            if isinstance(err, Mapping):
                self.last_error = (str(err.get("code") or err.get("type") or "error"),
                                   str(err.get("message") or ""))
        return event

    def recv_bytes(self) -> bytes | None:
        """The next text or binary frame's payload as sent (the dialect's shape), or None
        once the connection is closed."""
        while True:
            try:
                opcode, data = self._ws.recv_data()
            except websocket.WebSocketConnectionClosedException:
                self.ended = True
                return None
            except websocket.WebSocketProtocolException as exc:
                if "close" not in str(exc):
                    raise ConnectionFailed(f"connection to {self.url} lost: {_describe(exc)}") \
                        from None
                # A close code the RFC keeps off the wire (1005, 2999...): still the end.
                found = re.search(r"close opcode (\d+)", str(exc))
                code = int(found.group(1)) if found else None
                self.close_code, self.close_reason, self._closed = code, "", True
                self.ended = True
                return None
            except (websocket.WebSocketException, OSError) as exc:
                self.ended = True
                if self._closed:
                    return None
                raise ConnectionFailed(f"connection to {self.url} lost: {_describe(exc)}") \
                    from None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self._note_close(data)
                self.ended = True
                return None
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                return data

    def listen(self) -> Iterator[events.ServerEvent]:
        """Server events until the connection closes."""
        while (event := self.recv()) is not None:
            yield event

    __iter__ = listen

    def _note_close(self, data: bytes) -> None:
        if len(data) >= 2:
            self.close_code = int.from_bytes(data[:2], "big")
            self.close_reason = data[2:].decode("utf-8", "replace")
        else:
            self.close_code = 1005
        self._closed = True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close politely, then make sure a thread blocked in `listen()` wakes up."""
        if self._closed and not self._ws.connected:
            return
        self._closed = self.closed_here = True
        with contextlib.suppress(websocket.WebSocketException, OSError):
            if self._ws.connected:
                self._ws.send_close(code, reason.encode("utf-8"))
        with contextlib.suppress(OSError):
            if self._ws.sock is not None:
                self._ws.sock.shutdown(socket.SHUT_RDWR)
        self._ws.shutdown()

    def __enter__(self) -> RealtimeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_event(event: Mapping[str, Any], target: Endpoint) -> str:
    """A GA client event as the text frame ``target``'s dialect wants."""
    return events.encode_client_event(target.dialect.outgoing(event))


def decode_event(data: str | bytes, target: Endpoint) -> events.ServerEvent | None:
    """A frame from ``target`` as a GA server event; None: the dialect's own (a ping)."""
    raw = events.parse_server_event(data).to_dict()
    translated = target.dialect.incoming(raw)
    return None if translated is None else events.ServerEvent(translated)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running and the URL right?)"
    if isinstance(exc, socket.gaierror):
        return "host name not found (check provider.url and the network)"
    if isinstance(exc, (socket.timeout, TimeoutError, websocket.WebSocketTimeoutException)):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    text = str(exc) or type(exc).__name__
    return text


def connect(model: str = "gpt-realtime-2", *, api_key: str | None = None,
            provider: str = "openai", url: str | None = None,
            websocket_connection_options: Mapping[str, Any] | None = None,
            dialect: str = "") -> RealtimeConnection:
    """Open a connection; raise AuthenticationError or ConnectionFailed with a clear message.

    ``websocket_connection_options`` takes ``timeout`` (seconds), ``additional_headers``
    (a mapping) and any other keyword of `websocket.create_connection` (e.g. ``sslopt``).
    For openai and azure the key defaults to ``$OPENAI_API_KEY``; for openai without ``url``
    the server is ``$OPENAI_BASE_URL``'s (`rtd.protocol.providers.openai_endpoint`).
    ``dialect`` ("ga", "beta", "xai"; "" the provider's own) is the wire's shape: events are
    GA on this side whatever it is.
    """
    options = dict(websocket_connection_options or {})
    extra = dict(options.pop("additional_headers", None) or {})
    timeout = options.pop("timeout", 10.0)
    if provider == "openai" and not url:
        return open_endpoint(openai_endpoint(model, api_key=api_key, headers=extra,
                                             dialect=dialect),
                             timeout=timeout, **options)
    if api_key is None and provider in ("openai", "azure"):
        api_key = os.environ.get("OPENAI_API_KEY") or None
        if api_key is None:
            raise AuthenticationError(
                "no API key: pass api_key= or set $OPENAI_API_KEY")
    target = endpoint(provider, model, api_key, url or "", extra, dialect)
    return open_endpoint(target, timeout=timeout, **options)


def open_endpoint(target: Endpoint, *, timeout: float = 10.0, **options: Any) -> RealtimeConnection:
    """Connect to a resolved endpoint (the daemon's path: config already checked)."""
    ws = open_websocket(target, timeout=timeout, **options)
    ws.settimeout(None)  # idle conversations are silent; close() unblocks the reader
    return RealtimeConnection(ws, target)


def open_websocket(target: Endpoint, *, timeout: float = 10.0,
                   **options: Any) -> websocket.WebSocket:
    """The upgraded WebSocket, its socket still under ``timeout``; or a clear error.

    A refused upgrade raises AuthenticationError (401, 403) or ConnectionFailed carrying the
    HTTP status, the response headers and the body's error code, for `rtd.protocol.endings`.
    """
    header = [f"{k}: {v}" for k, v in target.headers.items()]
    # websocket-client checks text frames' UTF-8 byte by byte in Python unless wsaccel is
    # installed: for audio deltas that is the hottest loop of the daemon. json.loads checks
    # the same in C when parse_server_event decodes the frame, so skip the Python pass.
    options.setdefault("skip_utf8_validation", True)
    try:
        return websocket.create_connection(target.url, header=header, timeout=timeout,
                                           enable_multithread=True, **options)
    except websocket.WebSocketBadStatusException as exc:
        code, detail = _error_body(exc.resp_body)
        facts: dict[str, Any] = {
            "status": exc.status_code, "error_code": code, "detail": detail,
            "headers": {str(k).lower(): str(v) for k, v in (exc.resp_headers or {}).items()}}
        said = f"HTTP {exc.status_code}{': ' + detail if detail else ''}"
        if exc.status_code in (401, 403):
            raise AuthenticationError(
                f"{target.safe_url} refused the credentials ({said}); check the API key",
                **facts) from None
        raise ConnectionFailed(f"{target.safe_url} refused the connection ({said})",
                               **facts) from None
    except (websocket.WebSocketException, OSError) as exc:
        raise ConnectionFailed(f"cannot connect to {target.safe_url}: {_describe(exc)}") \
            from None


def _error_body(body: bytes | str | None) -> tuple[str | None, str]:
    """The error code and message of a refusal's body (JSON as the service sends, or text)."""
    if not body:
        return None, ""
    try:
        data = json.loads(body)
        err = data.get("error", data)
        code = err.get("code")
        message = str(err.get("message") or code or "")[:200]
        return (code if isinstance(code, str) else None), message
    except (ValueError, AttributeError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return None, text.strip()[:200]
