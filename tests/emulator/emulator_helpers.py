"""A real GA Realtime client for the emulator tests (websocket-client, blocking)."""

from __future__ import annotations

import base64
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

    def close(self) -> None:
        self.ws.close()
        self.ws.shutdown()  # close() leaves the socket open when the server closed first


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * 24000) * 2)


def pcm_of(samples: np.ndarray) -> bytes:
    return np.asarray(samples, dtype="<i2").tobytes()
