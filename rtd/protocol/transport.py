"""The socket under a realtime session: connect, keep connected, notice a dead peer, let go.

rtd runs unattended, so the transport assumes the peer may stall, lie or vanish at any byte:

- **Connecting** retries with `Backoff` (doubling with jitter, reset after a healthy
  connection), waits as long as a Retry-After or rate-limit hint says, and gives up only on the
  endings `rtd.protocol.endings` calls fatal (refused key, wrong dialect or model).
- **Sending** goes through one bounded outbound queue drained by a writer thread, so nobody
  else ever blocks on the socket. Control events keep their order with the microphone audio
  around them (a commit follows the audio it commits). Audio is lossy: beyond the backlog the
  oldest is dropped and counted; control events are never dropped while their connection
  lives, and a control queue that fills up means the server stopped reading.
- **Deadlines**: every send has one (the socket's timeout, watched by the reader as well);
  WebSocket pings go out every ``ping_interval`` and want a pong within ``pong_timeout``; while
  the session says a response is due, a silence of ``response_timeout`` without a data frame
  means the server stalled (pings alone do not prove it is working). A dead connection is
  logged in one line that says why and is replaced.
- **Receiving** reads frames off the raw socket itself (websocket-client's reader would answer
  pings from the reading thread, buffer any frame whole and refuse some close codes): frames
  that are not JSON objects with a string ``type``, binary frames and frames over
  ``max_frame_bytes`` are skipped with a rate-limited log line, never fatal.
- **Stopping** never waits on the peer: it offers a close frame for a moment, then shuts the
  socket down, which unblocks any send; both threads are daemon threads.

Threads: one connect/read thread for the transport's life, and one writer per connection. The
callbacks run on the connect/read thread, in order: ``on_connected(n)``, then the events of
connection ``n``, then ``on_disconnected(n)``; they must not block for long and may call any
method here, `stop()` included.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import selectors
import socket
import ssl
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import websocket

from rtd.exceptions import ConnectionFailed
from rtd.protocol import events
from rtd.protocol.connection import encode_event, open_websocket
from rtd.protocol.endings import Ending, classify
from rtd.protocol.providers import Endpoint

logger = logging.getLogger(__name__)

BYTES_PER_MS = 48
"""pcm24 (24 kHz, 16-bit mono) bytes per millisecond of microphone audio."""
MAX_APPEND_BYTES = 24000
"""Bytes of audio (500 ms) one `input_audio_buffer.append` carries at most when catching up."""
MAX_FRAME_BYTES = 4 * 1024 * 1024
"""A server message longer than this is skipped unread: rtd uses no event anywhere near it
(audio deltas are a few kB; only `conversation.item.retrieve`, which rtd never sends, returns
whole audio items)."""
ERROR_WINDOW = 5.0
"""Seconds an error event counts for the end of the connection that follows it."""
CLOSE_GRACE = 0.25
"""Seconds the writer gets to send a close frame before the socket is shut regardless."""
REPORT_INTERVAL = 60.0
"""Seconds between repeated log lines of one kind (skipped frames, dropped audio)."""

_OP_CONT, _OP_TEXT, _OP_BINARY = 0x0, 0x1, 0x2
_OP_CLOSE, _OP_PING, _OP_PONG = 0x8, 0x9, 0xA
_STOPPED = Ending("retry", "stopped")


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays in seconds: doubling from ``first`` up to ``limit``, with jitter."""

    first: float = 1.0
    limit: float = 30.0
    #: A connection that lasted this many seconds resets the delay to ``first``.
    healthy_after: float = 30.0

    def next(self, current: float) -> float:
        return min(self.limit, max(self.first, current * 2))

    def jitter(self, delay: float) -> float:
        return delay * random.uniform(0.8, 1.2)


class _Throttle:
    """One log line per kind at once, then at most one per REPORT_INTERVAL with a count.

    A peer that sends a million bad frames costs a handful of journal lines, not a million.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._last: dict[str, float] = {}
        self._quiet: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, kind: str, level: int, message: str, *args: Any,
                 exc_info: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            self.counts[kind] += 1
            last = self._last.get(kind)
            if last is not None and now - last < REPORT_INTERVAL:
                self._quiet[kind] += 1
                return
            self._last[kind] = now
            quiet = self._quiet.pop(kind, 0)
        if quiet:
            message += " (and %d more since the last report)"
            args = (*args, quiet)
        logger.log(level, message, *args, exc_info=exc_info)


class _Frames:
    """Server frames parsed from the socket's bytes, resumable at any byte.

    `next()` gives ``(opcode, payload, problem)``: a whole message (fragments joined) or a
    control frame; ``problem`` names what was wrong with a skipped one ("oversized",
    "malformed"), whose payload is then None. An oversized message is discarded as it arrives,
    so it never sits in memory.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max = max_bytes
        self.buf = bytearray()
        self.skip = 0                      # payload bytes of a skipped frame still to discard
        self.opcode: int | None = None     # of the fragmented message being assembled
        self.parts: list[bytes] = []
        self.size = 0
        self.oversized = False
        self.declared = 0                  # size of the oversized message, as far as seen
        self.pending: tuple[int, bytes | None, str | None] | None = None

    def feed(self, data: bytes) -> None:
        if self.skip:
            cut = min(self.skip, len(data))
            self.skip -= cut
            data = data[cut:]
        self.buf += data

    def next(self) -> tuple[int, bytes | None, str | None] | None:
        if self.pending is not None:
            ready, self.pending = self.pending, None
            return ready
        while True:
            buf = self.buf
            if self.skip or len(buf) < 2:
                return None
            first, second = buf[0], buf[1]
            fin, rsv, opcode = first & 0x80, first & 0x70, first & 0x0F
            masked, length = second & 0x80, second & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return None
                length, pos = struct.unpack_from("!H", buf, 2)[0], 4
            elif length == 127:
                if len(buf) < 10:
                    return None
                length, pos = struct.unpack_from("!Q", buf, 2)[0], 10
            mask = b""
            if masked:  # a server must not mask; unmask anyway
                if len(buf) < pos + 4:
                    return None
                mask, pos = bytes(buf[pos:pos + 4]), pos + 4
            control = opcode >= 8
            if not control and (self.oversized or self._too_big(opcode, length)):
                self._discard(pos, length)
                if not self.oversized:
                    self.oversized, self.declared = True, self.size + length
                    self.opcode = opcode if opcode else self.opcode
                else:
                    self.declared += length
                if fin:
                    size, kind = self.declared, self.opcode or _OP_TEXT
                    self._reset()
                    return kind, None, f"oversized:{size}"
                continue
            if len(buf) < pos + length:
                return None
            with memoryview(buf) as view:
                payload = bytes(view[pos:pos + length])
            del buf[:pos + length]
            if mask:
                payload = websocket.ABNF.mask(mask, payload)
            if rsv or (control and (length > 125 or not fin)) or opcode not in (
                    _OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG):
                return opcode, None, "malformed"
            if control:
                return opcode, payload, None
            if opcode == _OP_CONT:
                if self.opcode is None:
                    return opcode, None, "malformed"  # a continuation of nothing
                self.parts.append(payload)
                self.size += len(payload)
                if not fin:
                    continue
                kind, whole = self.opcode, b"".join(self.parts)
                self._reset()
                return kind, whole, None
            if self.opcode is not None:  # a new message inside a fragmented one
                broken = self.opcode
                self._reset()
                if fin:
                    self.pending = (opcode, payload, None)
                else:
                    self.opcode, self.parts, self.size = opcode, [payload], len(payload)
                return broken, None, "malformed"
            if fin:
                return opcode, payload, None
            self.opcode, self.parts, self.size = opcode, [payload], len(payload)

    def _too_big(self, opcode: int, length: int) -> bool:
        return (self.size if opcode == _OP_CONT else 0) + length > self.max

    def _discard(self, pos: int, length: int) -> None:
        have = min(len(self.buf) - pos, length)
        del self.buf[:pos + have]
        self.skip = length - have

    def _reset(self) -> None:
        self.opcode, self.parts, self.size = None, [], 0
        self.oversized, self.declared = False, 0


class _Link:
    """One connection's socket, control queue and deadlines (guarded by the transport's lock).

    Times are `time.monotonic()` seconds.
    """

    def __init__(self, ws: websocket.WebSocket, generation: int, ping_interval: float) -> None:
        self.ws = ws
        self.sock: socket.socket = ws.sock
        self.generation = generation
        self.opened = time.monotonic()
        self.control: deque[tuple[int, str]] = deque()  # (audio offset it follows, JSON text)
        self.ending: Ending | None = None
        self.close_frame: bytes | None = None  # a polite close the writer sends, then shuts
        self.shut = False
        self.pong: bytes | None = None         # a server ping's payload, to answer
        self.next_ping = self.opened + ping_interval
        self.ping_sent: float | None = None    # a ping is unanswered since then
        self.sending_since: float | None = None
        self.last_data = self.opened            # the last text or binary frame
        self.data_before = self.opened          # last_data before the frame being read
        self.due_since: float | None = None     # a response is due since then
        self.error: tuple[str, str, float] | None = None  # last error event: code, message, when
        self.writer: threading.Thread | None = None
        self.hello = 0                          # control entries that are the hello
        self.popped = 0                         # control entries the writer took
        self.held = False                       # no microphone audio until released
        self.current = False                    # it is (or was) the transport's connection
        self.handed_over = False                # ended because a newer connection took over
        self.thread: threading.Thread | None = None  # the one reading it


class Transport:
    """Owns the socket: connect with backoff, one bounded outbound queue, deadlines, pings.

    ``hello()`` gives the events sent first on every new connection, before anything queued
    (the session.update). ``on_event(generation, event)`` gets each server event as a parsed
    JSON object (a dict with a string "type"; nothing else is checked: that is the
    conversation's job). ``on_connected(generation, safe_url)`` and
    ``on_disconnected(generation, ending)`` bracket connection number ``generation`` (1, 2, ...);
    after on_disconnected the transport reconnects unless ``ending.fatal``. A fatal refusal
    of the upgrade itself reports on_disconnected with the generation the connection would
    have had (one past the last connected one); a refusal worth retrying reports
    ``on_attempt_failed(ending)`` instead. A connection ended by `stop()` reports no
    on_disconnected. All timeouts are seconds.

    A **handover** replaces the connection without a gap (a session near its time limit):
    `standby()` opens a second connection beside the current one and reports
    ``on_standby(generation, safe_url)`` (its events follow, from its own thread), or
    ``on_standby_failed(ending)``. `switch()` makes it current: the events given go first,
    then the microphone audio not yet sent (none is lost or sent twice), and the old
    connection is closed with a close frame and reports nothing more. If the current
    connection ends before the switch, the standby one takes its place at once: the usual
    on_disconnected(old), then on_connected(new), without a new attempt.

    With ``hold_audio`` every new connection gets no microphone audio until `release()`:
    the caller puts what must come first (a replay of the conversation) before it.
    """

    def __init__(self, endpoint: Endpoint, *,
                 hello: Callable[[], list[Mapping[str, Any]]],
                 on_event: Callable[[int, dict[str, Any]], None],
                 on_connected: Callable[[int, str], None],
                 on_disconnected: Callable[[int, Ending], None],
                 on_attempt_failed: Callable[[Ending], None] = lambda ending: None,
                 on_standby: Callable[[int, str], None] = lambda generation, url: None,
                 on_standby_failed: Callable[[Ending], None] = lambda ending: None,
                 hold_audio: bool = False,
                 connect_timeout: float = 10.0, backoff: Backoff = Backoff(),
                 ping_interval: float = 15.0, pong_timeout: float = 10.0,
                 send_timeout: float = 5.0, response_timeout: float = 20.0,
                 audio_backlog_ms: int = 2000, queue_size: int = 256,
                 max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        for name, value in (("connect_timeout", connect_timeout),
                            ("ping_interval", ping_interval), ("pong_timeout", pong_timeout),
                            ("send_timeout", send_timeout),
                            ("response_timeout", response_timeout),
                            ("audio_backlog_ms", audio_backlog_ms), ("queue_size", queue_size),
                            ("max_frame_bytes", max_frame_bytes)):
            if not value > 0:
                raise ValueError(f"Transport {name} must be positive, not {value!r}")
        self.endpoint = endpoint
        self._hello = hello
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_attempt_failed = on_attempt_failed
        self._on_standby = on_standby
        self._on_standby_failed = on_standby_failed
        self.hold_audio = hold_audio
        self.connect_timeout = connect_timeout
        self.backoff = backoff
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.send_timeout = send_timeout
        self.response_timeout = response_timeout
        self.audio_backlog_ms = int(audio_backlog_ms)
        self.queue_size = int(queue_size)
        self.max_frame_bytes = int(max_frame_bytes)
        # The reader checks deadlines this often while the socket is quiet: they are coarse
        # by at most this much, which buys not having to wake it whenever one moves.
        self._tick = max(0.02, min(1.0, send_timeout / 4, pong_timeout / 4,
                                   response_timeout / 4))
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._link: _Link | None = None
        self._standby: _Link | None = None   # a second connection opened for a handover
        self._standby_opening = False
        self._audio: deque[bytes] = deque()
        self._audio_queued = 0          # bytes in self._audio
        self._audio_out = 0             # bytes that left the queue (sent or dropped), ever
        self._audio_limit = self.audio_backlog_ms * BYTES_PER_MS
        self._dropped_audio = 0         # bytes
        self._drop_reported = 0.0       # monotonic time of the last report, 0: never
        self._delay = backoff.first
        self._report = _Throttle()
        #: Connection number of the latest connection (0 before the first).
        self.generation = 0
        #: How the latest connection or attempt ended (None before any ended).
        self.last_ending: Ending | None = None

    # -- stats -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        link = self._link
        return link is not None and link.ending is None

    @property
    def reconnects(self) -> int:
        """Connections made after the first."""
        return max(0, self.generation - 1)

    @property
    def dropped_audio_ms(self) -> int:
        """Milliseconds of microphone audio dropped since the start (backlog overflow)."""
        return self._dropped_audio // BYTES_PER_MS

    @property
    def queued_audio_ms(self) -> int:
        """Milliseconds of microphone audio waiting to be sent."""
        return self._audio_queued // BYTES_PER_MS

    @property
    def queued_events(self) -> int:
        """Control events waiting to be sent on the current connection."""
        link = self._link
        return len(link.control) if link is not None else 0

    @property
    def send_blocked_for(self) -> float:
        """Seconds the send in progress has taken so far; 0.0 when the writer is idle."""
        link = self._link
        since = link.sending_since if link is not None else None
        return 0.0 if since is None else time.monotonic() - since

    @property
    def skipped_frames(self) -> dict[str, int]:
        """Frames skipped since the start, by kind (not JSON, not an event, binary, ...)."""
        return {k: v for k, v in self._report.counts.items() if k.startswith("frame ")}

    # -- the caller's side -------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("this transport was already started")
            self._thread = threading.Thread(target=self._run, name="rtd-transport", daemon=True)
        logger.info("connecting to %s", self.endpoint.safe_url)
        self._thread.start()

    def send(self, event: Mapping[str, Any], generation: int) -> None:
        """Queue a control event for connection ``generation``; dropped if it is gone.

        Never blocks: if the control queue is full, the server has stopped reading and the
        connection is declared dead. Raises ValueError for an event without a string type.
        """
        text = encode_event(event, self.endpoint)
        with self._lock:
            link = self._link
            if link is None or link.generation != generation or link.ending is not None:
                logger.debug("dropping %s for connection %d: it is gone", event.get("type"),
                             generation)
                return
            if len(link.control) < self.queue_size:
                link.control.append((self._audio_out + self._audio_queued, text))
                self._wake.notify_all()
                return
        self._end(link, Ending("retry", f"{self.queue_size} events are waiting to go to "
                               f"{self.endpoint.safe_url}: the server is not reading"))

    def send_audio(self, pcm: bytes) -> None:
        """Queue microphone audio (pcm24) for whichever connection is up now or next.

        Lossy: beyond ``audio_backlog_ms`` waiting, the oldest is dropped and counted.
        """
        if not pcm:
            return
        with self._lock:
            self._audio.append(bytes(pcm))
            self._audio_queued += len(pcm)
            dropped = self._trim_audio()
            if self._link is not None:
                self._wake.notify_all()
            disconnected = self._link is None or self._link.ending is not None
        if dropped:
            self._report_drop(disconnected)

    def release(self, generation: int, first: list[Mapping[str, Any]]) -> None:
        """Let microphone audio go to connection ``generation`` (held since it opened), after
        ``first``: control events sent right after its hello, before anything else queued."""
        texts = [encode_event(e, self.endpoint) for e in first]
        with self._lock:
            link = self._link
            if link is None or link.generation != generation or link.ending is not None:
                return
            self._put_first(link, texts)
            link.held = False
            self._wake.notify_all()

    def _put_first(self, link: _Link, texts: list[str]) -> None:
        """Queue ``texts`` after the hello (lock held), ahead of any audio still queued."""
        at = max(0, link.hello - link.popped)
        for i, text in enumerate(texts):
            link.control.insert(at + i, (self._audio_out, text))
        link.hello += len(texts)

    @property
    def standby_open(self) -> bool:
        """A second connection is opening or open for a handover."""
        return self._standby_opening or self._standby is not None

    def standby(self) -> bool:
        """Open a second connection beside the current one (see the class); False if there
        is no current one, or one is already opening."""
        with self._lock:
            if (self._stopping.is_set() or self._link is None or self._link.ending is not None
                    or self.standby_open):
                return False
            self._standby_opening = True
        threading.Thread(target=self._open_standby, name="rtd-transport-standby",
                         daemon=True).start()
        return True

    def switch(self, generation: int, first: list[Mapping[str, Any]]) -> bool:
        """Make standby connection ``generation`` the current one: ``first`` goes out on it,
        then the microphone audio; the old one is closed politely. False if it is gone or
        already took over by itself (its on_connected then says so)."""
        texts = [encode_event(e, self.endpoint) for e in first]
        with self._lock:
            link, old = self._standby, self._link
            if link is None or link.generation != generation or link.ending is not None:
                return False
            self._standby = None
            self._put_first(link, texts)
            link.held = False
            link.current = True
            self._link = link
            self._thread = link.thread or self._thread  # the one stop() waits for
            if old is not None:
                old.handed_over = True
            self._wake.notify_all()
        if old is not None:
            logger.info("switched from connection %d to connection %d", old.generation,
                        link.generation)
            self._end(old, Ending("retry", "handed over to a new connection"), polite=True)
        return True

    def response_due(self, generation: int, due: bool) -> None:
        """Arm (or disarm) the receive deadline of connection ``generation``: while a response
        is due, no data frame within ``response_timeout`` means the server stalled."""
        with self._lock:
            link = self._link
            if link is None or link.generation != generation:
                return
            if not due:
                link.due_since = None
            elif link.due_since is None:
                link.due_since = time.monotonic()

    def replace(self, reason: str) -> None:
        """Drop the current connection (politely) and reconnect, with the usual backoff."""
        link = self._link
        if link is None or link.ending is not None:
            logger.debug("nothing to replace (%s)", reason)
            return
        self._end(link, Ending("retry", f"replacing the connection to "
                               f"{self.endpoint.safe_url}: {reason}"), polite=True)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop for good, waiting at most ``timeout`` seconds, never on the peer.

        A close frame gets a moment to leave; then the socket is shut down, which unblocks a
        blocked send. May be called from a callback, and more than once.
        """
        deadline = time.monotonic() + timeout
        self._stopping.set()
        with self._lock:
            link = self._link
            self._wake.notify_all()
        current = threading.current_thread()
        writer = None
        standby = self._standby
        if standby is not None:
            self._end(standby, _STOPPED, polite=True)
        if link is not None:
            self._end(link, _STOPPED, polite=True)
            writer = link.writer
            if writer is not None and writer is not current:
                writer.join(min(CLOSE_GRACE, timeout / 2))
            self._shut(link)
        if standby is not None:
            self._shut(standby)
        for thread in (writer, self._thread):
            if thread is not None and thread is not current and thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    # -- connect loop (the transport's thread) ----------------------------------------------

    def _run(self, link: _Link | None = None) -> None:
        """The connect loop; started with ``link``, a standby connection already open (whose
        thread this is), which it serves first."""
        failures = 0
        url = self.endpoint.safe_url
        while not self._stopping.is_set():
            served: tuple[Ending, float] | None
            if link is not None:
                served = self._serve(link)
                if not link.current:  # a standby that never took over: the old one goes on
                    self._standby_ended(link, served)
                    return
            else:
                try:
                    ws = open_websocket(self.endpoint, timeout=self.connect_timeout)
                except ConnectionFailed as exc:
                    if self._stopping.is_set():
                        return
                    failures += 1
                    ending = self._refusal(exc)
                    self.last_ending = ending
                    if ending.fatal:
                        logger.error("%s; not reconnecting", ending.reason)
                        self._call("on_disconnected", self._on_disconnected,
                                   self.generation + 1, ending)
                        return
                    wait = self._wait_after(ending, None)
                    log = logger.warning if failures == 1 or failures % 10 == 0 else logger.info
                    log("%s; retrying in %.1f s (attempt %d)", ending.reason, wait, failures)
                    self._call("on_attempt_failed", self._on_attempt_failed, ending)
                    self._stopping.wait(wait)
                    continue
                failures = 0
                try:
                    link = self._open_link(ws, current=True)
                except Exception:  # a bug here must cost a connection, not the session
                    logger.exception("building the first events for %s failed", url)
                    ws.shutdown()
                    served = (Ending("retry", "the first events could not be built"), 0.0)
                else:
                    if link is None:
                        return  # stopping
                    served = self._serve(link)
            if served is None:
                return
            ending, lasted = served
            self.last_ending = ending
            generation = link.generation if link is not None else self.generation + 1
            with self._lock:
                handed_over = link is not None and link.handed_over
                standby = None
                if not handed_over and not ending.fatal and self._standby is not None \
                        and self._standby.ending is None:
                    standby, self._standby = self._standby, None
                    standby.current = True
                    self._link = standby
                    self._thread = standby.thread or self._thread
            link = None
            if handed_over:
                return  # the new connection's thread goes on from here
            if ending.fatal:
                logger.error("%s; not reconnecting", ending.reason)
                self._call("on_disconnected", self._on_disconnected, generation, ending)
                return
            if standby is not None:
                logger.warning("%s; continuing on connection %d, opened beside it",
                               ending.reason, standby.generation)
                self._call("on_disconnected", self._on_disconnected, generation, ending)
                self._call("on_connected", self._on_connected, standby.generation, url)
                return  # its thread goes on from here
            wait = self._wait_after(ending, lasted)
            logger.warning("%s; reconnecting %s", ending.reason,
                           "now" if wait == 0 else f"in {wait:.1f} s")
            self._call("on_disconnected", self._on_disconnected, generation, ending)
            self._stopping.wait(wait)

    def _open_standby(self) -> None:
        url = self.endpoint.safe_url
        try:
            ws = open_websocket(self.endpoint, timeout=self.connect_timeout)
        except ConnectionFailed as exc:
            ending = self._refusal(exc)
            with self._lock:
                self._standby_opening = False
            if not self._stopping.is_set():
                logger.warning("could not open a second connection to %s: %s", url,
                               ending.reason)
                self._call("on_standby_failed", self._on_standby_failed, ending)
            return
        try:
            link = self._open_link(ws, current=False)
        except Exception:
            logger.exception("the second connection to %s failed inside rtd", url)
            ws.shutdown()
            link = None
        finally:
            with self._lock:
                self._standby_opening = False
        if link is None:
            if not self._stopping.is_set():
                self._call("on_standby_failed", self._on_standby_failed,
                           Ending("retry", "internal error in the transport"))
            return
        self._run(link)

    def _standby_ended(self, link: _Link, served: tuple[Ending, float] | None) -> None:
        with self._lock:
            if self._standby is link:
                self._standby = None
        if served is not None and not self._stopping.is_set():
            logger.warning("the second connection (%d) ended before it took over: %s",
                           link.generation, served[0].reason)
            self._call("on_standby_failed", self._on_standby_failed, served[0])

    def _refusal(self, exc: ConnectionFailed) -> Ending:
        if exc.status is None:
            return Ending("retry", self._scrub(str(exc)))
        ending = classify(status=exc.status, headers=exc.headers, error_code=exc.error_code,
                          cause=self.endpoint.safe_url, message=exc.detail)
        return dataclasses.replace(ending, reason=self._scrub(ending.reason))

    def _wait_after(self, ending: Ending, lasted: float | None) -> float:
        """Seconds to wait before the next attempt; advances the backoff."""
        healthy = lasted is not None and lasted >= self.backoff.healthy_after
        if healthy:
            self._delay = self.backoff.first
        if ending.action == "retry_after":
            return ending.delay or 0.0
        if ending.delay == 0 and healthy:  # a session's normal end: a new one at once
            return 0.0
        wait = self.backoff.jitter(self._delay)
        self._delay = self.backoff.next(self._delay)
        return wait

    def _open_link(self, ws: websocket.WebSocket, *, current: bool) -> _Link | None:
        """Set up connection ``ws`` (its hello queued, its writer started): the current
        connection, reported by on_connected, or a standby one, reported by on_standby.
        None if stopping (``ws`` is shut)."""
        ws.sock.settimeout(self.send_timeout)
        hello = [encode_event(e, self.endpoint) for e in self._hello()]
        with self._lock:
            if self._stopping.is_set():
                ws.shutdown()
                return None
            self.generation += 1
            link = _Link(ws, self.generation, self.ping_interval)
            link.thread = threading.current_thread()
            link.control.extend((self._audio_out, text) for text in hello)
            link.hello = len(hello)
            link.held = self.hold_audio or not current
            link.current = current
            if current:
                self._link = link
            else:
                self._standby = link
        link.writer = threading.Thread(target=self._write, args=(link,), daemon=True,
                                       name=f"rtd-transport-writer-{link.generation}")
        link.writer.start()
        url = self.endpoint.safe_url
        if current:
            logger.info("connected to %s (connection %d)", url, link.generation)
            self._call("on_connected", self._on_connected, link.generation, url)
        else:
            logger.info("opened a second connection to %s (connection %d) beside %d", url,
                        link.generation, link.generation - 1)
            self._call("on_standby", self._on_standby, link.generation, url)
        return link

    def _serve(self, link: _Link) -> tuple[Ending, float] | None:
        """Run one connection to its end: (how it ended, seconds it lasted); None if stopped."""
        url = self.endpoint.safe_url
        try:
            self._read(link)
        except Exception:  # a bug here must cost this connection, not the session
            logger.exception("reading from %s failed inside rtd", url)
            self._end(link, Ending("retry", f"internal error reading from {url}"))
        finally:
            self._finish(link)
        if self._stopping.is_set():
            return None
        assert link.ending is not None
        return link.ending, time.monotonic() - link.opened

    def _finish(self, link: _Link) -> None:
        """Let the writer send its close frame (briefly), shut the socket, forget the link."""
        self._end(link, Ending("retry", "the connection ended"))  # if nothing ended it yet
        writer = link.writer
        if writer is not None:
            writer.join(CLOSE_GRACE)
        self._shut(link)
        if writer is not None:
            writer.join(1.0)  # a shut socket fails its send at once
        with self._lock:
            dropped = len(link.control)
            link.control.clear()
            if self._link is link:
                self._link = None
            if self._standby is link:
                self._standby = None
        if dropped:
            logger.debug("%d queued event(s) for connection %d went with it", dropped,
                         link.generation)
        if writer is None or not writer.is_alive():
            link.ws.shutdown()

    # -- reading ------------------------------------------------------------------------------

    def _read(self, link: _Link) -> None:
        frames = _Frames(self.max_frame_bytes)
        url = self.endpoint.safe_url
        sock = link.sock
        tls = isinstance(sock, ssl.SSLSocket)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            while link.ending is None:
                while (frame := frames.next()) is not None:
                    self._frame(link, *frame)
                    if link.ending is not None:
                        return
                if self._overdue(link):
                    return
                if not (tls and sock.pending()) and not selector.select(self._tick):
                    continue
                try:
                    data = sock.recv(65536)
                except (TimeoutError, ssl.SSLWantReadError):
                    continue
                except ConnectionResetError:
                    self._lost(link, f"the connection to {url} was reset (TCP RST)")
                    return
                except OSError as exc:
                    self._lost(link, f"the connection to {url} failed: {exc}")
                    return
                if not data:
                    self._lost(link, f"{url} ended the connection without a close frame")
                    return
                frames.feed(data)

    def _frame(self, link: _Link, opcode: int, payload: bytes | None,
               problem: str | None) -> None:
        url = self.endpoint.safe_url
        if opcode in (_OP_TEXT, _OP_BINARY) or problem:
            link.data_before, link.last_data = link.last_data, time.monotonic()
        if problem is not None:
            if problem.startswith("oversized:"):
                self._report("frame oversized", logging.WARNING,
                             "skipped a %s-byte frame from %s: larger than the %d-byte limit",
                             problem.partition(":")[2], url, self.max_frame_bytes)
            else:
                self._report("frame malformed", logging.WARNING,
                             "skipped a malformed WebSocket frame (opcode %d) from %s",
                             opcode, url)
            return
        assert payload is not None
        if opcode == _OP_TEXT:
            self._text(link, payload)
        elif opcode == _OP_BINARY:
            self._report("frame binary", logging.WARNING,
                         "skipped a binary frame (%d bytes) from %s: realtime events are text",
                         len(payload), url)
        elif opcode == _OP_PING:
            with self._lock:
                link.pong = payload
                self._wake.notify_all()
        elif opcode == _OP_PONG:
            with self._lock:
                link.ping_sent = None
                self._wake.notify_all()
        elif opcode == _OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            reason = payload[2:].decode("utf-8", "replace")[:123]
            said = "no code" if code is None else f"code {code}"
            cause = f"{url} closed the connection ({said}{': ' + reason if reason else ''})"
            self._end(link, self._classified(link, cause, close_code=code), polite=True)

    def _text(self, link: _Link, payload: bytes) -> None:
        url = self.endpoint.safe_url
        try:
            event = json.loads(payload)
        except ValueError:
            self._report("frame not JSON", logging.WARNING,
                         "skipped a frame from %s that is not JSON: %r", url, payload[:60])
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self._report("frame not an event", logging.WARNING,
                         "skipped a frame from %s that is not an event (a JSON object with a "
                         "string type): %r", url, payload[:60])
            return
        event = self.endpoint.dialect.incoming(event)
        if event is None:  # the dialect's own (an xAI ping): no sign that a response comes
            link.last_data = link.data_before
            return
        error = event.get("error") if event["type"] == "error" else None
        code = error.get("code") if isinstance(error, dict) else None
        if isinstance(code, str):
            message = error.get("message")
            link.error = (code, message[:200] if isinstance(message, str) else "",
                          time.monotonic())
        self._call("on_event", self._on_event, link.generation, event)
        if isinstance(code, str):
            ending = self._classified(link, f"{url} sent an error")
            if ending.fatal:  # the service closes next; waiting for it helps nobody
                self._end(link, ending, polite=True)

    def _classified(self, link: _Link, cause: str, close_code: int | None = None) -> Ending:
        """The ending for ``cause``, read together with a recent error event's code."""
        error = link.error
        code, message = None, ""
        if error is not None and time.monotonic() - error[2] <= ERROR_WINDOW:
            code, message = error[0], error[1]
        ending = classify(close_code=close_code, error_code=code, cause=cause, message=message)
        return dataclasses.replace(ending, reason=self._scrub(ending.reason))

    def _lost(self, link: _Link, cause: str) -> None:
        self._end(link, self._classified(link, cause))

    def _overdue(self, link: _Link) -> bool:
        """End the link if a deadline passed: a blocked send, a missing pong, a stalled reply."""
        now = time.monotonic()
        url = self.endpoint.safe_url
        with self._lock:
            sending, pinged = link.sending_since, link.ping_sent
            due = None if link.due_since is None else max(link.due_since, link.last_data)
        if sending is not None and now - sending > self.send_timeout:
            cause = (f"sending to {url} blocked for {self.send_timeout:g} s: the server "
                     "stopped reading")
        elif pinged is not None and now - pinged > self.pong_timeout:
            cause = f"no pong from {url} for {self.pong_timeout:g} s: the server stalled"
        elif due is not None and now - due > self.response_timeout:
            cause = (f"no event from {url} for {self.response_timeout:g} s while a response "
                     "was due: the server stalled")
        else:
            return False
        self._end(link, Ending("retry", cause))
        return True

    # -- writing (one writer thread per connection) ------------------------------------------

    def _write(self, link: _Link) -> None:
        while True:
            closing: bytes | None = None
            with self._lock:
                while True:
                    if link.ending is not None:
                        closing, link.close_frame = link.close_frame or b"", None
                        break
                    item = self._next_item(link, time.monotonic())
                    if item is not None:
                        link.sending_since = time.monotonic()
                        break
                    wait = None if link.ping_sent is not None else max(
                        0.0, link.next_ping - time.monotonic())
                    self._wake.wait(wait)
            if closing is not None:
                if closing:
                    with contextlib.suppress(OSError):
                        link.sock.sendall(closing)
                    self._shut(link)
                return
            opcode, data, audio = item
            try:
                if audio is not None:
                    data = events.encode_client_event(events.audio_append(audio))
                link.sock.sendall(websocket.ABNF.create_frame(data, opcode).format())
            except OSError as exc:
                self._send_failed(link, audio, exc)
                return
            finally:
                link.sending_since = None

    def _next_item(self, link: _Link, now: float) -> tuple[int, str | bytes, bytes | None] | None:
        """The next frame to send (opcode, payload, the audio it carries), by priority: a pong,
        a due ping, then control events and audio in the order they were queued."""
        if link.pong is not None:
            payload, link.pong = link.pong, None
            return _OP_PONG, payload, None
        if link.ping_sent is None and now >= link.next_ping:
            link.ping_sent, link.next_ping = now, now + self.ping_interval
            return _OP_PING, struct.pack("!d", now), None
        if link.control and (link.control[0][0] <= self._audio_out or link.popped < link.hello):
            link.popped += 1
            return _OP_TEXT, link.control.popleft()[1], None
        if not self._audio or link.held or self._link is not link:
            return None
        until = link.control[0][0] if link.control else None
        chunks: list[bytes] = []
        size = 0
        while self._audio and size < MAX_APPEND_BYTES and (
                until is None or self._audio_out < until):
            chunk = self._audio.popleft()
            chunks.append(chunk)
            size += len(chunk)
            self._audio_out += len(chunk)
        self._audio_queued -= size
        return _OP_TEXT, "", b"".join(chunks)

    def _send_failed(self, link: _Link, audio: bytes | None, exc: OSError) -> None:
        url = self.endpoint.safe_url
        if isinstance(exc, TimeoutError):
            cause = (f"sending to {url} blocked for {self.send_timeout:g} s: the server "
                     "stopped reading")
        else:
            cause = f"sending to {url} failed: {exc}"
        self._end(link, self._classified(link, cause))
        if audio is None:
            return
        with self._lock:  # the audio goes to the next connection, if no newer one took over
            if self._link is link:
                self._audio.appendleft(audio)
                self._audio_queued += len(audio)
                self._audio_out -= len(audio)
                dropped = self._trim_audio()
            else:
                self._dropped_audio += len(audio)
                dropped = len(audio)
        if dropped:
            self._report_drop(True)

    # -- shared -------------------------------------------------------------------------------

    def _end(self, link: _Link, ending: Ending, *, polite: bool = False) -> None:
        """End ``link`` with ``ending`` (the first ending wins). A polite end lets the writer
        send a close frame first; any other shuts the socket at once."""
        with self._lock:
            if link.ending is not None:
                return
            link.ending = ending
            if polite:
                link.close_frame = websocket.ABNF.create_frame(
                    struct.pack("!H", 1000), websocket.ABNF.OPCODE_CLOSE).format()
            self._wake.notify_all()
        if not polite:
            self._shut(link)

    def _shut(self, link: _Link) -> None:
        with self._lock:
            if link.shut:
                return
            link.shut = True
        # the plain socket's shutdown: an SSLSocket's would drop its TLS state under the reader
        with contextlib.suppress(OSError):
            socket.socket.shutdown(link.sock, socket.SHUT_RDWR)

    def _trim_audio(self) -> int:
        """Drop the oldest queued audio beyond the backlog (lock held); the bytes dropped."""
        over = self._audio_queued - self._audio_limit
        dropped = 0
        while over > 0 and self._audio:
            chunk = self._audio[0]
            if len(chunk) <= over:
                self._audio.popleft()
                cut = len(chunk)
            else:
                cut = over + (over & 1)  # whole 16-bit samples
                self._audio[0] = chunk[cut:]
            over -= cut
            dropped += cut
        self._audio_queued -= dropped
        self._audio_out += dropped
        self._dropped_audio += dropped
        return dropped

    def _report_drop(self, disconnected: bool) -> None:
        now = time.monotonic()
        if self._drop_reported and now - self._drop_reported < REPORT_INTERVAL:
            return
        first = not self._drop_reported
        self._drop_reported = now
        if first:
            logger.warning("microphone audio is backing up (%s): more than %d ms waiting, so "
                           "the oldest is dropped; the total is reported at most once a minute",
                           "disconnected" if disconnected else "the server is slow",
                           self.audio_backlog_ms)
        else:
            logger.warning("%d ms of microphone audio dropped so far (%s)",
                           self.dropped_audio_ms,
                           "disconnected" if disconnected else "the server is slow")

    def _call(self, name: str, callback: Callable[..., None], *args: Any) -> None:
        """Run a callback; its exception is a bug to log (rate-limited), not the transport's
        end."""
        try:
            callback(*args)
        except Exception:
            self._report(f"callback {name}", logging.ERROR, "the transport's %s callback "
                         "failed", name, exc_info=True)

    def _scrub(self, text: str) -> str:
        """Text from the server may quote what rtd sent it: never let a credential through."""
        for value in self.endpoint.headers.values():
            for secret in {value, value.rsplit(" ", 1)[-1]}:
                if len(secret) >= 8:
                    text = text.replace(secret, "***")
        return text
