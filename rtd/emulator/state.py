"""State shared by all connections of one emulator, and read by tests from other threads.

Two jobs: record what crossed the wire (so a test can assert on what its client really sent),
and carry the scenario's progress across connections (the turn counter is per emulator, so a
client that reconnects continues with the next scripted turn).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from rtd.emulator.scenario import Scenario, Turn

INPUT_AUDIO_CAP = 10 * 60 * 24000 * 2
"""Bytes of input audio kept in `input_audio`: the first 10 minutes of 24 kHz int16."""

RECORD_LIMIT = 200_000
"""Events kept per direction; older ones are dropped so a long `rtd emulate` run stays small."""


class _Log:
    """An append-only event list that forgets its oldest half when it grows past a limit."""

    def __init__(self, limit: int) -> None:
        self.items: list[dict[str, Any]] = []
        self.base = 0  # absolute index of items[0]
        self.limit = limit

    def append(self, event: dict[str, Any]) -> None:
        self.items.append(event)
        if len(self.items) > self.limit:
            drop = len(self.items) // 2
            del self.items[:drop]
            self.base += drop


class SharedState:
    """Everything the connections of one emulator share; thread-safe."""

    def __init__(self, scenario: Scenario, voice_engine: str,
                 max_session_seconds: float | None, record_limit: int = RECORD_LIMIT) -> None:
        self.scenario = scenario
        self.voice_engine = voice_engine
        """Resolved engine name ("espeak" or "tones")."""
        self.max_session_seconds = max_session_seconds
        self.executor: Executor | None = None
        """Where speech is synthesized, off the event loop (set by the server's loop thread)."""
        self.scenario_done = threading.Event()
        self._cond = threading.Condition()
        self._received = _Log(record_limit)
        self._sent = _Log(record_limit)
        self._input_audio = bytearray()
        self._headers: list[dict[str, str]] = []
        self._paths: list[str] = []
        self._connections = 0
        self._turns_started = 0
        self._calls: dict[str, tuple[int, Turn]] = {}
        if not scenario.turns:
            self.scenario_done.set()

    # -- recording -----------------------------------------------------------------------------

    def record_received(self, event: dict[str, Any]) -> None:
        with self._cond:
            self._received.append(event)
            self._cond.notify_all()

    def record_sent(self, event: dict[str, Any]) -> None:
        """Record a server event (the caller has already replaced audio by its size)."""
        with self._cond:
            self._sent.append(event)
            self._cond.notify_all()

    def add_input_audio(self, pcm: bytes) -> None:
        with self._cond:
            room = INPUT_AUDIO_CAP - len(self._input_audio)
            if room > 0:
                self._input_audio += pcm[:room]

    def accept_connection(self, headers: dict[str, str], path: str) -> None:
        with self._cond:
            self._connections += 1
            self._headers.append(dict(headers))
            self._paths.append(path)

    @property
    def received(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._received.items)

    @property
    def sent(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._sent.items)

    @property
    def input_audio(self) -> bytes:
        with self._cond:
            return bytes(self._input_audio)

    @property
    def connections(self) -> int:
        with self._cond:
            return self._connections

    @property
    def headers(self) -> list[dict[str, str]]:
        with self._cond:
            return [dict(h) for h in self._headers]

    @property
    def paths(self) -> list[str]:
        with self._cond:
            return list(self._paths)

    def wait_for(self, direction: str, predicate: Callable[[dict[str, Any]], bool],
                 timeout: float) -> dict[str, Any]:
        """First event (past or future) in `direction` ("received"/"sent") matching `predicate`."""
        log = self._received if direction == "received" else self._sent
        deadline = time.monotonic() + timeout
        index = 0  # absolute index of the next event to test
        with self._cond:
            while True:
                start = max(index, log.base)
                for event in log.items[start - log.base:]:
                    if predicate(event):
                        return event
                index = log.base + len(log.items)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {direction} event matched within {timeout} s")
                self._cond.wait(remaining)

    # -- scenario progress ---------------------------------------------------------------------

    def next_turn(self) -> tuple[int, Turn | None]:
        """Start the next user turn: its 1-based number and script (None past the last turn)."""
        with self._cond:
            self._turns_started += 1
            number = self._turns_started
        turns = self.scenario.turns
        return number, (turns[number - 1] if number <= len(turns) else None)

    def register_call(self, call_id: str, number: int, turn: Turn) -> None:
        """Remember which turn a scripted tool call belongs to (for its `then` reply)."""
        with self._cond:
            self._calls[call_id] = (number, turn)

    def lookup_call(self, call_id: str) -> tuple[int, Turn] | None:
        with self._cond:
            return self._calls.get(call_id)

    def finish_turn(self, number: int | None) -> None:
        """The last response of turn `number` ended; the scenario is done after the last turn."""
        if number is not None and number >= len(self.scenario.turns):
            self.scenario_done.set()
