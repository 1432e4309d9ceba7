"""Faults at run time: which fault fires on an event, and the wire tricks the actions need.

The schema (`Fault`) and its checks live in `rtd.emulator.scenario`; the connection decides
when to ask `select`, and runs the actions in order with everything else it sends. What is
here is what a WebSocket library will not do for a well-behaved server: half-close TCP without
a close frame, reset it, send a close code the RFC keeps off the wire, notice a peer that went
away while the emulator pretends to be frozen.

Fault anchors are GA event names. A future wire dialect translates events after this point,
so a fault means the same thing in every dialect.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fcntl
import json
import logging
import socket
import struct
import termios
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from rtd.emulator.scenario import Fault, ScriptedError
from rtd.emulator.state import SessionRecord, SharedState

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 2.0
"""How long a half-closed connection keeps reading the peer's leftovers before it is closed."""
FLUSH_SECONDS = 1.0
"""How long a reset waits for what was sent before it to leave the machine."""
_TCP_CLOSE_WAIT = 8  # linux/tcp_states.h
_TCP_CLOSE = 7


class Scope:
    """Where a fault's `nth` is counted: one response, one connection, or (for the upgrade) the
    emulator."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}


def select(state: SharedState, event_type: str, scope: Scope, turn: int | None,
           session: SessionRecord | None) -> list[tuple[int, Fault]]:
    """The faults that fire on this event (in scenario order), counted and recorded as injected.

    A fault fires on the `nth` event of its type in the scope and on every later one (counted
    while its turn filter matches), as long as it has firings (`times`) left.
    """
    chosen: list[tuple[int, Fault]] = []
    for index, fault in enumerate(state.faults):
        if fault.at != event_type:
            continue
        if fault.turn is not None and fault.turn != turn:
            continue
        count = scope.counts.get(index, 0) + 1
        scope.counts[index] = count
        if count < fault.nth or not state.take_fault(index):
            continue
        state.record_injected(index, session, turn)
        logger.info("injecting fault %d: %s", index + 1, fault.describe())
        chosen.append((index, fault))
    return chosen


# -- frames ------------------------------------------------------------------------------------


def mutate(event: dict[str, Any], fault: Fault) -> dict[str, Any]:
    """A copy of `event` with the fault's unset, null and set paths applied, in that order.

    A path that does not fit the event (an index past a list's end, a field inside a string)
    is skipped with a log line: a fault never crashes the emulator.
    """
    out = copy.deepcopy(event)
    for path in fault.unset:
        _apply(out, path, None, remove=True)
    for path in fault.null:
        _apply(out, path, None)
    for path, value in fault.set.items():
        _apply(out, path, copy.deepcopy(value))
    return out


def _apply(root: dict[str, Any], path: str, value: Any, remove: bool = False) -> None:
    parts = path.split(".")
    node: Any = root
    for part in parts[:-1]:
        child = _child(node, part)
        if child is None and isinstance(node, dict) and not remove:
            child = node[part] = {}
        if not isinstance(child, (dict, list)):
            logger.info("fault path %r does not fit the event; skipped", path)
            return
        node = child
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            logger.info("fault path %r does not fit the event; skipped", path)
        elif remove:
            del node[int(last)]
        else:
            node[int(last)] = value
    elif remove:
        node.pop(last, None)
    elif isinstance(value, dict) and isinstance(node.get(last), dict):
        _merge(node[last], value)
    else:
        node[last] = value


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None


def _merge(into: dict[str, Any], table: dict[str, Any]) -> None:
    for key, value in table.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def encode(value: Any, fault: Fault, raw_text: str | None = None) -> str | bytes:
    """The frame for a JSON value (or verbatim text): padded with spaces, binary if asked."""
    text = raw_text if raw_text is not None else json.dumps(value)
    if fault.pad_to is not None:
        size = len(text.encode("utf-8"))
        if size < fault.pad_to:
            text += " " * (fault.pad_to - size)
    return text.encode("utf-8") if fault.binary else text


def record_of(value: Any, frame: str | bytes, index: int,
              raw_text: str | None = None) -> dict[str, Any]:
    """What `Emulator.sent` keeps of an injected frame: the event when it is a JSON object,
    else a placeholder; always with "type" and "_fault" (the fault's 0-based index)."""
    record: dict[str, Any]
    if raw_text is not None:
        record = {"type": None, "_text": raw_text[:500]}
    elif isinstance(value, dict):
        record = dict(value)
        if not isinstance(record.get("type"), str):
            record["type"] = None
        delta = record.get("delta")
        if record["type"] == "response.output_audio.delta" and isinstance(delta, str):
            record.pop("delta")
            record["delta_bytes"] = len(delta) * 3 // 4 - delta[-2:].count("=")
    else:
        record = {"type": None, "_json": value}
    record["_fault"] = index
    if isinstance(frame, bytes):
        record["_binary"] = True
    size = len(frame) if isinstance(frame, bytes) else len(frame.encode("utf-8"))
    if size > 64 * 1024:
        record["_bytes"] = size
    return record


def error_event(error: ScriptedError | None, event_id: str) -> dict[str, Any]:
    """An `error` server event carrying a scripted error."""
    error = error or ScriptedError()
    return {"type": "error", "event_id": event_id,
            "error": {"type": error.type, "code": error.code, "message": error.message,
                      "param": None, "event_id": None}}


def http_body(fault: Fault) -> str:
    """The JSON body of an HTTP refusal, shaped like the service's error answers."""
    assert fault.status is not None
    status = HTTPStatus(fault.status)
    if fault.error is not None:
        error_type, code, message = fault.error.type, fault.error.code, fault.error.message
    else:
        error_type = "server_error" if fault.status >= 500 else "invalid_request_error"
        code = {401: "invalid_api_key", 404: "model_not_found",
                429: "rate_limit_exceeded"}.get(fault.status)
        message = f"{status.phrase} (rtd emulator fault)."
    return json.dumps({"error": {"message": message, "type": error_type, "code": code,
                                 "param": None}})


def close_frame(code: int | None, reason: str) -> bytes:
    """A raw, unmasked server close frame: for codes websockets refuses to send (1005, 2000...)."""
    payload = b"" if code is None else struct.pack("!H", code) + reason.encode("utf-8")
    return bytes([0x88, len(payload)]) + payload


# -- TCP ---------------------------------------------------------------------------------------


class _Drain(asyncio.Protocol):
    """Owns a half-closed connection: discards what the peer still sends, so that closing it
    later sends no RST (Linux resets a socket closed with unread data), and closes it on the
    peer's EOF or after DRAIN_SECONDS."""

    def __init__(self, transport: asyncio.Transport, done: asyncio.Future[None]) -> None:
        self.transport = transport
        self.done = done
        self.timer = asyncio.get_running_loop().call_later(DRAIN_SECONDS, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # asyncio closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()
        if not self.done.done():
            self.done.set_result(None)


def finish_with_fin(transport: asyncio.Transport,
                    notify: Callable[[], None]) -> asyncio.Future[None]:
    """End the connection with a FIN and no close frame; the future is done once it is closed.

    What is still buffered is sent first. `notify` tells the WebSocket layer the connection is
    gone, since it no longer sees the transport.
    """
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if transport.is_closing():
        done.set_result(None)
        notify()
        return done
    transport.set_protocol(_Drain(transport, done))
    if transport.can_write_eof():
        transport.write_eof()
    else:  # pragma: no cover - TCP transports can always half-close
        transport.close()
    notify()
    return done


async def reset(transport: asyncio.Transport) -> None:
    """End the connection with an RST (SO_LINGER 0), after what was sent before has left."""
    sock = transport.get_extra_info("socket")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FLUSH_SECONDS
    while loop.time() < deadline and not transport.is_closing() and (
            transport.get_write_buffer_size() > 0 or _unsent(sock) > 0):
        await asyncio.sleep(0.005)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _unsent(sock: Any) -> int:
    """Bytes the kernel still holds for sending (SIOCOUTQ); 0 when unknown."""
    if sock is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    return int(struct.unpack("i", raw)[0])


def peer_gone(transport: asyncio.BaseTransport) -> bool:
    """True once the peer closed its end (TCP CLOSE_WAIT), seen without reading the socket.

    A connection that stopped reading would otherwise never notice a client that gave up.
    Linux only; elsewhere the answer is False and the stall lasts until the emulator stops.
    """
    sock = transport.get_extra_info("socket")
    if sock is None or transport.is_closing():
        return True
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except (OSError, AttributeError):
        return False
    return info[0] in (_TCP_CLOSE_WAIT, _TCP_CLOSE)
