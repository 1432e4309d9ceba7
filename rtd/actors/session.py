"""The session actor: one realtime conversation over a WebSocket, kept connected.

A link thread owns the socket's receiving side: it connects (with backoff), reads events and
tells them to this actor, so all conversation state lives on the actor's own thread. Sending
happens from the actor thread; websocket-client serialises frames with its own lock.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pykka

from rtd.exceptions import AuthenticationError, ConnectionFailed
from rtd.exitcodes import EX_FAILURE, EX_NOPERM
from rtd.messages import (
    AudioChunk,
    AudioEvent,
    AudioTranscript,
    AudioTranscriptChunk,
    Commit,
    ConnectionState,
    ErrorEvent,
    Fatal,
    InputAudio,
    InputTranscript,
    InputTranscriptChunk,
    Interrupt,
    OutputAudioDone,
    RequestResponse,
    ResponseDone,
    ResponseStarted,
    State,
    StateEvent,
    TextChunk,
    TextEvent,
    ToolCall,
    ToolCallEvent,
    UpdateSession,
    UserText,
)
from rtd.protocol import events
from rtd.protocol.connection import FATAL_CLOSE_CODES, RealtimeConnection, open_endpoint
from rtd.protocol.events import ServerEvent
from rtd.protocol.providers import Endpoint
from rtd.supervisor import Bus, RtdActor

logger = logging.getLogger(__name__)
conversation = logging.getLogger("rtd.conversation")

#: Error codes after which the session cannot work by retrying.
FATAL_ERROR_CODES = {"invalid_api_key", "beta_api_shape_disabled"}
#: Seconds of microphone audio kept while disconnected, sent once connected.
PENDING_AUDIO_SECONDS = 5.0
#: Sender requests (text, commit, respond) kept while disconnected, sent once connected.
PENDING_INPUT = 32


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


@dataclass(frozen=True)
class _Connected:
    conn: RealtimeConnection


@dataclass(frozen=True)
class _Event:
    conn: RealtimeConnection
    event: ServerEvent


@dataclass(frozen=True)
class _Disconnected:
    conn: RealtimeConnection
    reason: str


@dataclass(frozen=True)
class _AttemptFailed:
    reason: str


class _Link(threading.Thread):
    """Connects, reads, reconnects; never touches conversation state."""

    def __init__(self, target: Endpoint, timeout: float, tell: Callable[[object], None],
                 backoff: Backoff) -> None:
        super().__init__(name="rtd-session-link", daemon=True)
        self.target = target
        self.timeout = timeout
        self._tell = tell
        self.backoff = backoff
        self.stopping = threading.Event()
        self.conn: RealtimeConnection | None = None

    def run(self) -> None:
        delay = self.backoff.first
        failures = 0
        while not self.stopping.is_set():
            try:
                conn = open_endpoint(self.target, timeout=self.timeout)
            except AuthenticationError as exc:
                self.tell(Fatal(str(exc), EX_NOPERM))
                return
            except ConnectionFailed as exc:
                failures += 1
                wait = self.backoff.jitter(delay)
                log = logger.warning if failures == 1 or failures % 10 == 0 else logger.info
                log("%s; retrying in %.1f s (attempt %d)", exc, wait, failures)
                self.tell(_AttemptFailed(f"{exc}; retrying"))
                self.stopping.wait(wait)
                delay = self.backoff.next(delay)
                continue
            if self.stopping.is_set():
                conn.close()
                return
            self.conn = conn
            failures = 0
            began = time.monotonic()
            self.tell(_Connected(conn))
            try:
                for event in conn.listen():
                    self.tell(_Event(conn, event))
                    if self.stopping.is_set():
                        break
                code = conn.close_code
                reason = (f"server closed the connection (code {code}"
                          f"{': ' + conn.close_reason if conn.close_reason else ''})")
            except ConnectionFailed as exc:
                reason = str(exc)
            self.tell(_Disconnected(conn, reason))
            if self.stopping.is_set():
                return
            if conn.close_code in FATAL_CLOSE_CODES:
                code = EX_NOPERM if conn.close_code == 3000 else EX_FAILURE
                self.tell(Fatal(f"{self.target.safe_url}: {FATAL_CLOSE_CODES[conn.close_code]}",
                                code))
                return
            if time.monotonic() - began >= self.backoff.healthy_after:
                delay = self.backoff.first
                continue  # a long session ended (e.g. 1001 at 60 min): reconnect at once
            wait = self.backoff.jitter(delay)
            logger.info("reconnecting in %.1f s", wait)
            self.stopping.wait(wait)
            delay = self.backoff.next(delay)

    def tell(self, message: object) -> None:
        try:
            self._tell(message)
        except pykka.ActorDeadError:  # the session stopped under us: so do we
            self.stopping.set()
            if self.conn is not None:
                self.conn.close()

    def stop(self) -> None:
        self.stopping.set()
        if self.conn is not None:
            self.conn.close()


class SessionActor(RtdActor):
    name = "session"
    receives = (InputAudio, ToolCallEvent, UserText, Commit, RequestResponse, Interrupt,
                UpdateSession)

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 target: Endpoint, session_update: Mapping[str, Any], *,
                 connect_timeout: float = 10.0, backoff: Backoff | None = None,
                 block_ms: int = 40) -> None:
        super().__init__(bus, on_crash)
        self.target = target
        self.session_update = dict(session_update)
        self.connect_timeout = connect_timeout
        self.backoff = backoff or Backoff()
        self.conn: RealtimeConnection | None = None
        self._link: _Link | None = None
        self._pending_audio: deque[bytes] = deque(
            maxlen=max(1, int(PENDING_AUDIO_SECONDS * 1000 / block_ms)))
        # text, commit and response requests from senders while disconnected, in order
        self._pending_input: deque[object] = deque(maxlen=PENDING_INPUT)
        self._response_active = False
        self._calls: dict[str, list[ToolCall]] = {}   # response id -> calls it made
        self._awaiting: set[str] = set()               # call ids sent to tools, not answered
        self._response_owed = False                    # response.create to send when free
        self._unknown_types: set[str] = set()
        self._state: State = "idle"
        self._speaking_in: str | None = None           # response id whose output started
        self._item_audio: dict[str, list[bytes]] = {}  # for AudioEvent, only when wanted
        self._announced = False                        # a ConnectionState was published

    def setup(self) -> None:
        self._link = _Link(self.target, self.connect_timeout, self.actor_ref.tell, self.backoff)
        logger.info("connecting to %s", self.target.safe_url)
        self._link.start()

    def release(self) -> None:
        if self._link is not None:
            self._link.stop()
            self._link.join(timeout=1.0)

    # -- messages -------------------------------------------------------------------------

    def handle(self, message: Any) -> Any:
        if isinstance(message, InputAudio):
            self._send_audio(message.pcm)
        elif isinstance(message, _Event):
            if message.conn is self.conn:
                self._handle(message.event)
        elif isinstance(message, ToolCallEvent):
            self._tool_result(message)
        elif isinstance(message, (UserText, RequestResponse, Commit)):
            if self.conn is None:
                if len(self._pending_input) == self._pending_input.maxlen:
                    logger.warning("disconnected: dropping the oldest of %d queued inputs",
                                   len(self._pending_input))
                self._pending_input.append(message)
            else:
                self._sender_input(message)
        elif isinstance(message, Interrupt):
            if self._response_active:
                self._send({"type": "response.cancel"})
        elif isinstance(message, _Connected):
            self._connected(message.conn)
        elif isinstance(message, _Disconnected):
            self._disconnected(message)
        elif isinstance(message, Fatal):
            self.bus.publish(message)
        elif isinstance(message, UpdateSession):
            # settings change on the same connection; a reconnect sends the new ones too
            self.session_update = dict(message.event)
            if self._send(self.session_update):
                logger.info("session settings updated")
        elif isinstance(message, _AttemptFailed) and not self._announced:
            # the first attempt's outcome, so readiness can say "retrying" instead of waiting
            self._announced = True
            self.bus.publish(ConnectionState(False, message.reason))

    def _sender_input(self, message: object) -> None:
        if isinstance(message, UserText):
            self._send(events.user_text(message.text))
            if message.respond:
                self._request_response()
        elif isinstance(message, RequestResponse):
            self._request_response()
        elif isinstance(message, Commit):
            self._send({"type": "input_audio_buffer.commit"})

    def _send(self, event: Mapping[str, Any]) -> bool:
        if self.conn is None:
            return False
        try:
            self.conn.send(event)
        except ConnectionFailed as exc:
            logger.debug("send failed, the link will reconnect: %s", exc)
            return False
        return True

    def _send_audio(self, pcm: bytes) -> None:
        if self.conn is None:
            self._pending_audio.append(pcm)
            return
        try:
            self.conn.send_audio_data(pcm)
        except ConnectionFailed as exc:
            logger.debug("audio not sent, the link will reconnect: %s", exc)
            self._pending_audio.append(pcm)

    def _connected(self, conn: RealtimeConnection) -> None:
        self.conn = conn
        logger.info("connected to %s", conn.url)
        self._send(self.session_update)
        while self._pending_audio and self.conn is conn:
            self._send_audio(self._pending_audio.popleft())
        while self._pending_input and self.conn is conn:
            self._sender_input(self._pending_input.popleft())
        self._announced = True
        self.bus.publish(ConnectionState(True, conn.url))
        self._set_state("idle")

    def _disconnected(self, message: _Disconnected) -> None:
        if message.conn is not self.conn:
            return
        self.conn = None
        # A new connection is a new conversation: what was in flight is gone with this one.
        if self._awaiting or self._calls:
            logger.warning("connection lost with %d tool call(s) unanswered; they are dropped",
                           len(self._awaiting) + sum(map(len, self._calls.values())))
        self._response_active = False
        self._calls.clear()
        self._awaiting.clear()
        self._response_owed = False
        self._item_audio.clear()
        logger.warning("disconnected: %s", message.reason)
        self.bus.publish(ConnectionState(False, message.reason))
        self.bus.publish(ErrorEvent("connection", "disconnected", message.reason))
        self._set_state("error", message.reason)

    def _set_state(self, state: State, detail: str = "") -> None:
        if state != self._state:
            self._state = state
            self.bus.publish(StateEvent(state, detail))

    # -- server events --------------------------------------------------------------------

    def _handle(self, event: ServerEvent) -> None:
        kind = event.type
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, event)
        elif kind not in events.SERVER_EVENT_TYPES and kind not in self._unknown_types:
            self._unknown_types.add(kind)
            logger.info("ignoring unknown server event type %r (logged once)", kind)

    def _on_session_updated(self, event: ServerEvent) -> None:
        session = event.get("session", {})
        voice = session.get("audio", {}).get("output", {}).get("voice")
        logger.info("session ready: model %s, voice %s", session.get("model"), voice)

    def _on_error(self, event: ServerEvent) -> None:
        err = event.get("error") or {}
        code = str(err.get("code") or err.get("type") or "error")
        text = str(err.get("message") or "")
        caused_by = err.get("event_id")
        param = f" (param {err['param']})" if err.get("param") else ""
        logger.warning("server error %s: %s%s%s", code, text, param,
                       f" (caused by event {caused_by})" if caused_by else "")
        self.bus.publish(ErrorEvent("server", code, text))
        self._set_state("error", code)
        if code in FATAL_ERROR_CODES:
            self.bus.publish(Fatal(f"server error {code}: {text}",
                                   EX_NOPERM if code == "invalid_api_key" else EX_FAILURE))

    def _on_response_created(self, event: ServerEvent) -> None:
        self._response_active = True
        self.bus.publish(ResponseStarted(str((event.get("response") or {}).get("id", ""))))
        self._set_state("thinking")

    def _on_audio_delta(self, event: ServerEvent) -> None:
        item, pcm = event["item_id"], events.decode_audio(event["delta"])
        if self.bus.wants(AudioChunk):
            self.bus.publish(AudioChunk(item, pcm))
        if self.bus.wants(AudioEvent):
            self._item_audio.setdefault(item, []).append(pcm)
        self._set_state("speaking")

    def _on_audio_done(self, event: ServerEvent) -> None:
        item = event["item_id"]
        self.bus.publish(OutputAudioDone(item))
        if item in self._item_audio:
            self.bus.publish(AudioEvent(item, b"".join(self._item_audio.pop(item))))

    def _on_audio_transcript_delta(self, event: ServerEvent) -> None:
        if self.bus.wants(AudioTranscriptChunk):
            self.bus.publish(AudioTranscriptChunk(event.get("item_id", ""),
                                                  event.get("delta", "")))

    def _on_text_delta(self, event: ServerEvent) -> None:
        if self.bus.wants(TextChunk):
            self.bus.publish(TextChunk(event.get("item_id", ""), event.get("delta", "")))
        self._set_state("speaking")

    def _on_assistant_text(self, event: ServerEvent) -> None:
        text = event.get("transcript", event.get("text", ""))
        if text:
            conversation.info("assistant: %s", text)
            kind = AudioTranscript if "transcript" in event else TextEvent
            self.bus.publish(kind(event.get("item_id", ""), text))

    def _on_user_transcript_delta(self, event: ServerEvent) -> None:
        if self.bus.wants(InputTranscriptChunk):
            self.bus.publish(InputTranscriptChunk(event.get("item_id", ""),
                                                  event.get("delta", "")))

    def _on_user_transcript(self, event: ServerEvent) -> None:
        text = str(event.get("transcript", "")).strip()
        if text:
            conversation.info("user: %s", text)
            self.bus.publish(InputTranscript(event.get("item_id", ""), text))

    def _on_speech_started(self, event: ServerEvent) -> None:
        self._set_state("listening")

    def _on_speech_stopped(self, event: ServerEvent) -> None:
        self._set_state("thinking")

    def _on_transcription_failed(self, event: ServerEvent) -> None:
        err = event.get("error") or {}
        logger.warning("transcription of the user's speech failed: %s",
                       err.get("message") or err.get("code") or "no reason given")

    def _on_arguments_done(self, event: ServerEvent) -> None:
        call = ToolCall(event["call_id"], event.get("name", ""), event.get("arguments", ""))
        self._calls.setdefault(event.get("response_id", ""), []).append(call)

    def _on_response_done(self, event: ServerEvent) -> None:
        response = event.get("response") or {}
        status = str(response.get("status", ""))
        rid = str(response.get("id", ""))
        self._response_active = False
        calls = self._calls.pop(rid, [])
        if not calls:  # servers that skip arguments.done still list the calls in the output
            calls = [ToolCall(item["call_id"], item.get("name", ""), item.get("arguments", ""))
                     for item in response.get("output", [])
                     if item.get("type") == "function_call" and item.get("call_id")]
        if status == "completed":
            for call in calls:
                self._awaiting.add(call.call_id)
                self.bus.publish(call)
        elif calls:
            # arguments.done also fires for responses that are then cancelled: never act on those
            logger.info("response %s; %d tool call(s) not run", status, len(calls))
        if status == "failed":
            details = response.get("status_details") or {}
            err = details.get("error") or {}
            logger.warning("response failed: %s", err.get("message") or details or "no details")
        self.bus.publish(ResponseDone(rid, status))
        if status == "failed":
            self._set_state("error", "response failed")
        elif self._state != "listening":
            self._set_state("idle")
        if self._response_owed and not self._awaiting:
            self._request_response()

    def _tool_result(self, result: ToolCallEvent) -> None:
        if result.call_id not in self._awaiting:
            logger.info("result of %s arrived after its conversation ended; dropped", result.name)
            return
        self._awaiting.discard(result.call_id)
        self._send(events.function_call_output(result.call_id, result.output))
        if not self._awaiting:
            self._request_response()
        else:
            self._response_owed = True

    def _request_response(self) -> None:
        """Ask the model to respond, now if no response is active, else after response.done.

        Sending response.create during a response gets conversation_already_has_active_response.
        """
        if self._response_active or self._awaiting:
            self._response_owed = True
        elif self._send(events.response_create()):
            self._response_owed = False
            self._response_active = True


_HANDLERS: dict[str, Callable[[SessionActor, ServerEvent], None]] = {
    "session.updated": SessionActor._on_session_updated,
    "error": SessionActor._on_error,
    "response.created": SessionActor._on_response_created,
    "response.output_audio.delta": SessionActor._on_audio_delta,
    "response.output_audio.done": SessionActor._on_audio_done,
    "response.output_audio_transcript.delta": SessionActor._on_audio_transcript_delta,
    "response.output_audio_transcript.done": SessionActor._on_assistant_text,
    "response.output_text.delta": SessionActor._on_text_delta,
    "conversation.item.input_audio_transcription.delta": SessionActor._on_user_transcript_delta,
    "input_audio_buffer.speech_started": SessionActor._on_speech_started,
    "input_audio_buffer.speech_stopped": SessionActor._on_speech_stopped,
    "response.output_text.done": SessionActor._on_assistant_text,
    "conversation.item.input_audio_transcription.completed": SessionActor._on_user_transcript,
    "conversation.item.input_audio_transcription.failed": SessionActor._on_transcription_failed,
    "response.function_call_arguments.done": SessionActor._on_arguments_done,
    "response.done": SessionActor._on_response_done,
}
