"""A real GA Realtime client for the emulator tests (websocket-client, blocking)."""

from __future__ import annotations

import base64
import contextlib
import json
import struct
import time
from typing import Any

import numpy as np
import websocket

TIMEOUT = 5.0  # seconds any single wait may take before the test fails


class Client:
    """A blocking GA Realtime client (websocket-client) that keeps every event it receives."""

    def __init__(self, url: str, headers: list[str] | None = None) -> None:
        self.ws = websocket.create_connection(url, header=headers or [], timeout=TIMEOUT)
        self.events: list[dict[str, Any]] = []

    def send(self, **event: Any) -> None:
        self.ws.send(json.dumps(event))

    def send_raw(self, text: str) -> None:
        self.ws.send(text)

    def append(self, pcm: bytes, chunk_ms: int = 100) -> None:
        """Send audio as input_audio_buffer.append events of `chunk_ms` each."""
        step = chunk_ms * 48
        for start in range(0, len(pcm), step):
            self.send(type="input_audio_buffer.append",
                      audio=base64.b64encode(pcm[start:start + step]).decode())

    def recv(self) -> dict[str, Any]:
        event = json.loads(self.ws.recv())
        self.events.append(event)
        return event

    def until(self, type_: str) -> dict[str, Any]:
        """Receive until an event of `type_` arrives; return it."""
        return self.collect(type_)[-1]

    def collect(self, type_: str) -> list[dict[str, Any]]:
        """Receive until an event of `type_` arrives; return everything received on the way."""
        deadline = time.monotonic() + TIMEOUT
        got: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            event = self.recv()
            got.append(event)
            if event["type"] == type_:
                return got
        raise AssertionError(f"no {type_} within {TIMEOUT} s; got {[e['type'] for e in got]}")

    def close_frame(self) -> tuple[int, str]:
        """Read until the server's close frame; return its code and reason."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                return code, data[2:].decode()
            if opcode == websocket.ABNF.OPCODE_TEXT:
                self.events.append(json.loads(data))
        raise AssertionError("the server did not close the connection")

    def frame(self) -> tuple[int, bytes]:
        """The next data frame, raw: (opcode, payload); text frames are not decoded."""
        opcode, data = self.ws.recv_data()
        return opcode, data

    def quiet(self, seconds: float) -> bool:
        """True when no frame arrives within `seconds` (the wait is bounded, not measured)."""
        self.ws.settimeout(seconds)
        try:
            self.ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return True
        finally:
            self.ws.settimeout(TIMEOUT)
        return False

    def raw_close_frame(self) -> tuple[int | None, str]:
        """Read the next frame off the raw socket, which must be a close frame: (code, reason).

        websocket-client refuses close codes the RFC keeps off the wire (1005, 2999, ...);
        this reads them as they are. The code is None for a close frame without one.
        """
        sock = self.ws.sock
        sock.settimeout(TIMEOUT)

        def exactly(size: int) -> bytes:
            data = b""
            while len(data) < size:
                more = sock.recv(size - len(data))
                if not more:
                    raise AssertionError("the connection ended before a close frame")
                data += more
            return data

        first, second = exactly(2)
        assert first == 0x88, f"not a final close frame: {first:#x}"
        assert not second & 0x80, "a server frame must not be masked"
        payload = exactly(second & 0x7F)
        if not payload:
            return None, ""
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    def tcp_end(self) -> str:
        """Read the raw socket until the server ends TCP: "fin" (EOF) or "rst" (reset).

        Raises when a WebSocket frame or any other byte arrives first: the server was meant to
        end the connection without a close frame.
        """
        sock = self.ws.sock
        sock.settimeout(TIMEOUT)
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return "rst"
        if data:
            raise AssertionError(f"{len(data)} more bytes arrived before the end: {data[:40]!r}")
        return "fin"

    def close(self) -> None:
        if self.ws.sock is None:
            return
        with contextlib.suppress(OSError, websocket.WebSocketException):
            self.ws.close(timeout=1)
        self.ws.shutdown()  # close() leaves the socket open when the server closed first


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * 24000) * 2)


def pcm_of(samples: np.ndarray) -> bytes:
    return np.asarray(samples, dtype="<i2").tobytes()
