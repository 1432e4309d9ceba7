"""State shared by all connections of one emulator, and read by tests from other threads.

Two jobs: record what crossed the wire (so a test can assert on what its client really sent),
both for the whole emulator and per connection (`SessionRecord`), and carry the scenario's
progress across connections: the turn counter is per emulator, so a client that reconnects
continues with the next scripted turn, and so are the counts of faults injected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from rtd.emulator.scenario import Fault, Scenario, Turn

INPUT_AUDIO_CAP = 10 * 60 * 24000 * 2
"""Bytes of input audio kept in `input_audio`: the first 10 minutes of 24 kHz int16."""

RECORD_LIMIT = 200_000
"""Events kept per direction; older ones are dropped so a long `rtd emulate` run stays small.
The per-session copies share one budget too: past it, the oldest sessions forget their events
(their other fields stay)."""


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


class SessionRecord:
    """What one accepted connection (one realtime session) received and sent; read by tests.

    The events are the same records as `Emulator.received` / `Emulator.sent` (appends carry
    "audio_bytes" instead of "audio"), kept per connection so that a test can tell which
    session got what, e.g. the items a client replayed into a new session after a reconnect.
    """

    def __init__(self, cond: threading.Condition, index: int, headers: dict[str, str],
                 path: str, record_limit: int) -> None:
        self._cond = cond
        self.index = index
        """0-based position in `Emulator.sessions`."""
        self.headers = headers
        """Request headers, names lower-cased."""
        self.path = path
        """Request path with its query string."""
        self.id: str | None = None
        """The session id sent in session.created ("sess_..."); None for a refused client."""
        self.model: str | None = None
        self.expires_at: int | None = None
        """`session.expires_at` sent in session.created (unix seconds)."""
        self.ended = threading.Event()
        """Set when the connection is over, whoever ended it."""
        self.forgotten = False
        """True once this (old) session's events were dropped to bound memory."""
        self._client: _Log = _Log(record_limit)
        self._server: _Log = _Log(record_limit)
        self._items: list[dict[str, Any]] = []
        self._input_audio_bytes = 0
        self._input_audio = bytearray()
        self._client_close: tuple[int, str] | None = None

    @property
    def client_events(self) -> list[dict[str, Any]]:
        """Client events received on this connection, in order."""
        with self._cond:
            return list(self._client.items)

    @property
    def server_events(self) -> list[dict[str, Any]]:
        """Server events (and injected frames) sent on this connection, in order."""
        with self._cond:
            return list(self._server.items)

    @property
    def items(self) -> list[dict[str, Any]]:
        """Items the client created (`conversation.item.create` accepted), in creation order,
        as the conversation holds them: with their ids (the client's or the server's)."""
        with self._cond:
            return [dict(item) for item in self._items]

    @property
    def input_audio_bytes(self) -> int:
        """Bytes of input audio appended on this connection (24 kHz int16)."""
        with self._cond:
            return self._input_audio_bytes

    @property
    def input_audio(self) -> bytes:
        """The input audio appended on this connection, in order (24 kHz int16), within a
        budget of INPUT_AUDIO_CAP bytes shared by all sessions (the first ones keep theirs)."""
        with self._cond:
            return bytes(self._input_audio)

    @property
    def client_close(self) -> tuple[int, str] | None:
        """(code, reason) of the close frame the client sent; None while open or when the
        connection ended without one (a dropped TCP connection, or the server closed first
        and the client never answered)."""
        with self._cond:
            return self._client_close

    def __repr__(self) -> str:
        return (f"SessionRecord(index={self.index}, id={self.id!r}, "
                f"client_events={len(self._client.items)}, items={len(self._items)})")


class SharedState:
    """Everything the connections of one emulator share; thread-safe."""

    def __init__(self, scenario: Scenario, voice_engine: str,
                 max_session_seconds: float | None, record_limit: int = RECORD_LIMIT,
                 faults: tuple[Fault, ...] = ()) -> None:
        self.scenario = scenario
        self.faults: tuple[Fault, ...] = scenario.faults + faults
        """Every fault to inject: the scenario's, then those given to the emulator."""
        self.voice_engine = voice_engine
        """Resolved engine name ("espeak" or "tones")."""
        self.max_session_seconds = max_session_seconds
        self.executor: Executor | None = None
        """Where speech is synthesized, off the event loop (set by the server's loop thread)."""
        self.scenario_done = threading.Event()
        self._cond = threading.Condition()
        self._record_limit = record_limit
        self._received = _Log(record_limit)
        self._sent = _Log(record_limit)
        self._injected = _Log(record_limit)
        self._input_audio = bytearray()
        self._sessions: list[SessionRecord] = []
        self._attempts = 0
        self._fired = [0] * len(self.faults)
        self._session_events = 0  # an upper bound of the events the sessions keep
        self._session_audio = 0  # bytes of input audio the sessions keep
        self._turns_started = 0
        self._calls: dict[str, tuple[int, Turn]] = {}
        if not scenario.turns:
            self.scenario_done.set()

    # -- recording -----------------------------------------------------------------------------

    def record_received(self, session: SessionRecord, event: dict[str, Any]) -> None:
        with self._cond:
            self._received.append(event)
            session._client.append(event)
            self._count_session_event()
            self._cond.notify_all()

    def record_sent(self, session: SessionRecord, event: dict[str, Any]) -> None:
        """Record a server event (the caller has already replaced audio by its size)."""
        with self._cond:
            self._sent.append(event)
            session._server.append(event)
            self._count_session_event()
            self._cond.notify_all()

    def _count_session_event(self) -> None:
        """Keep the sessions' events within 2 * the record limit: forget the oldest sessions'."""
        self._session_events += 1
        if self._session_events <= 2 * self._record_limit:
            return
        kept = sum(len(s._client.items) + len(s._server.items) for s in self._sessions)
        for old in self._sessions[:-1]:
            if kept <= self._record_limit:
                break
            if old.forgotten:
                continue
            kept -= len(old._client.items) + len(old._server.items)
            old._client.items.clear()
            old._server.items.clear()
            old.forgotten = True
        self._session_events = kept

    def record_item(self, session: SessionRecord, item: dict[str, Any]) -> None:
        """Remember an item the client created (a copy: the conversation may change it)."""
        with self._cond:
            session._items.append(item)
            if len(session._items) > self._record_limit:
                del session._items[: len(session._items) // 2]

    def add_input_audio(self, session: SessionRecord, pcm: bytes) -> None:
        with self._cond:
            session._input_audio_bytes += len(pcm)
            room = INPUT_AUDIO_CAP - len(self._input_audio)
            if room > 0:
                self._input_audio += pcm[:room]
            room = INPUT_AUDIO_CAP - self._session_audio
            if room > 0:
                session._input_audio += pcm[:room]
                self._session_audio += min(room, len(pcm))

    def begin_attempt(self) -> int:
        """Count an upgrade request (accepted or not); return its 1-based number."""
        with self._cond:
            self._attempts += 1
            return self._attempts

    def accept_connection(self, headers: dict[str, str], path: str) -> SessionRecord:
        with self._cond:
            session = SessionRecord(self._cond, len(self._sessions), dict(headers), path,
                                    self._record_limit)
            self._sessions.append(session)
            return session

    def describe_session(self, session: SessionRecord, session_id: str, model: str,
                         expires_at: int) -> None:
        with self._cond:
            session.id, session.model, session.expires_at = session_id, model, expires_at

    def end_session(self, session: SessionRecord, client_close: tuple[int, str] | None) -> None:
        with self._cond:
            session._client_close = client_close
            session.ended.set()
            self._cond.notify_all()

    # -- faults --------------------------------------------------------------------------------

    def take_fault(self, index: int) -> bool:
        """Use up one firing of fault `index`; False when it already fired `times` times."""
        times = self.faults[index].times
        with self._cond:
            if times is not None and self._fired[index] >= times:
                return False
            self._fired[index] += 1
            return True

    def record_injected(self, index: int, session: SessionRecord | None,
                        turn: int | None) -> None:
        fault = self.faults[index]
        with self._cond:
            self._injected.append({"fault": index, "do": fault.do, "at": fault.at,
                                   "when": fault.when,
                                   "session": None if session is None else session.index,
                                   "turn": turn})
            self._cond.notify_all()

    @property
    def current_turn(self) -> int:
        """The latest user turn's number (0 before the first)."""
        with self._cond:
            return self._turns_started

    @property
    def injected(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._injected.items)

    @property
    def sessions(self) -> list[SessionRecord]:
        with self._cond:
            return list(self._sessions)

    @property
    def attempts(self) -> int:
        with self._cond:
            return self._attempts

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
            return len(self._sessions)

    @property
    def headers(self) -> list[dict[str, str]]:
        with self._cond:
            return [dict(s.headers) for s in self._sessions]

    @property
    def paths(self) -> list[str]:
        with self._cond:
            return [s.path for s in self._sessions]

    def wait_for(self, direction: str, predicate: Callable[[dict[str, Any]], bool],
                 timeout: float) -> dict[str, Any]:
        """First record (past or future) in `direction` ("received", "sent" or "injected")
        matching `predicate`."""
        log = {"received": self._received, "sent": self._sent,
               "injected": self._injected}[direction]
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

    def rescript(self, scenario: Scenario) -> None:
        """A new scenario for the turns that follow; the turn count starts again."""
        with self._cond:
            self.scenario = scenario
            self._turns_started = 0
            self._calls.clear()
            if scenario.turns:
                self.scenario_done.clear()
            else:
                self.scenario_done.set()

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
