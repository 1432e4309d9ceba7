"""One client connection to the emulator: the GA Realtime protocol, event by event.

A connection is a new, empty conversation (as on the real service). Client events are handled
in arrival order by one reader; a response runs as its own task so that `response.cancel`, or
speech detected by the VAD, can interrupt it between audio chunks. What a response says comes
from the scenario (see `rtd.emulator`), never from a model.

Everything sent, and every fault's action on the wire, goes through one ordered path (`_out`)
so that a stalled connection can hold it all back and release it in order; only the reader
never waits there, so a connection told to stall while sending keeps reading.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import contextvars
import copy
import functools
import json
import logging
import math
import random
import re
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import EXTERNAL_CLOSE_CODES

from rtd.emulator import faults
from rtd.emulator import validation as v
from rtd.emulator.dialect import WIRE_DIALECTS, WireDialect
from rtd.emulator.scenario import Fault, ScriptedError, Turn, format_then
from rtd.emulator.state import SessionRecord, SharedState
from rtd.emulator.vad import EnergyVad, VadSettings
from rtd.emulator.voice import synthesize
from rtd.exceptions import RtdError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24000
BYTES_PER_MS = SAMPLE_RATE * 2 // 1000  # 48: PCM16 mono at 24 kHz
CHUNK_BYTES = 150 * BYTES_PER_MS  # audio per response.output_audio.delta: 150 ms
MIN_COMMIT_MS = 100  # the service refuses to commit less audio than this
IDLE_BUFFER_MS = 5000  # audio kept while the VAD hears nothing (enough for any prefix padding)
SEMANTIC_SILENCE_MS = {"low": 1200, "medium": 800, "auto": 800, "high": 400}
"""Silence that ends a turn under semantic_vad, which the emulator approximates by energy."""
HELD_LIMIT = 1000
"""Sends a stalled connection holds for its reader before the reader stops reading too."""
PEER_POLL_SECONDS = 0.2
"""How often a connection that stopped reading looks whether its client went away."""

_responding: contextvars.ContextVar[_Response | None] = contextvars.ContextVar(
    "rtd_emulator_response", default=None)
"""The response whose task is running (fault counting and turn filters use it)."""
_in_reader: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "rtd_emulator_reader", default=False)
"""True in the task that reads client events: it must not wait behind a stall."""

_ID_CHARS = string.ascii_letters + string.digits
_random = random.SystemRandom()


def new_id(prefix: str) -> str:
    """A server-style identifier such as "event_Ab3...", "item_...", "resp_..."."""
    return f"{prefix}_{''.join(_random.choices(_ID_CHARS, k=21))}"


def expiry_message(seconds: float) -> str:
    """The service's words at its session limit: "... maximum duration of 60 minutes."."""
    if seconds >= 60 and seconds % 60 == 0:
        length = f"{int(seconds // 60)} minutes"
    else:
        length = f"{seconds:g} seconds"
    return f"Your session hit the maximum duration of {length}."


def _cut_transcript(transcript: str, end_ms: int, total_ms: int) -> str:
    """The words of a transcript spoken in the first ``end_ms`` of ``total_ms`` of audio, as
    the service cuts an item's transcript on ``conversation.item.truncate``."""
    if total_ms <= 0:
        return transcript
    words = _words(transcript)
    return "".join(words[: round(len(words) * min(end_ms, total_ms) / total_ms)]).strip()


def _words(text: str) -> list[str]:
    """Split text into deltas the way a streaming transcript arrives: "It", " is", " 14:05."."""
    return re.findall(r"\s*\S+", text)


def _tokens(text: str) -> int:
    """A rough token estimate for the made-up usage figures (about four characters each)."""
    return math.ceil(len(text) / 4)


@dataclass
class _Plan:
    """What a response will do, decided when it is created."""

    kind: Literal["say", "call", "error", "close", "drop"]
    text: str = ""
    turn: Turn | None = None
    turn_number: int | None = None
    final: bool = False
    """True when this is the last response of its scripted turn (for scenario_done)."""
    stall: float = 0.0


@dataclass
class _Response:
    id: str
    plan: _Plan
    modalities: list[str]
    voice: Any
    in_conversation: bool
    metadata: Any
    max_output_tokens: Any
    cancellable: bool = True
    cancel_reason: str | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    output: list[dict[str, Any]] = field(default_factory=list)
    scope: faults.Scope = field(default_factory=faults.Scope)
    audio_ms: int = 0
    text_tokens: int = 0


class Connection:
    """Protocol state of one WebSocket client: session, conversation, audio buffer, response."""

    def __init__(self, state: SharedState, ws: ServerConnection, model: str,
                 session: SessionRecord, *, dialect: WireDialect | None = None,
                 preset: dict[str, Any] | None = None) -> None:
        self.state = state
        self.ws = ws
        self.session = session
        self.dialect = dialect or WIRE_DIALECTS["ga"]
        expires = state.max_session_seconds if state.max_session_seconds is not None else 3600
        expires_at = math.ceil(time.time() + expires)
        self.config = v.default_session(model, new_id("sess"), expires_at)
        if preset is not None:  # the session an ephemeral secret was made with
            v.merge_session(self.config, {k: copy.deepcopy(val) for k, val in preset.items()
                                          if k not in ("id", "object", "expires_at", "model")})
        self.dialect.prepare(self.config)
        state.describe_session(session, self.config["id"], model, expires_at)
        self.conversation_id = new_id("conv")
        self.items: list[dict[str, Any]] = []
        self.items_by_id: dict[str, dict[str, Any]] = {}
        self.audio_ms: dict[str, int] = {}  # assistant item -> milliseconds of audio sent
        self.cut_at: dict[str, int] = {}  # item truncated while streaming -> audio_end_ms
        self.input_ms: dict[str, int] = {}  # user item -> milliseconds of audio committed
        self.buffer = bytearray()  # uncommitted input audio
        self.buffer_start = 0  # absolute sample index of buffer[0]
        self.total_samples = 0  # samples appended on this connection
        self._odd = b""  # a trailing half sample waiting for its other byte
        self.vad: EnergyVad | None = None
        self.speech_item_id: str | None = None
        self.speech_start = 0
        self.active: _Response | None = None
        self.audio_out_started = False
        self.pending_turn: tuple[int, Turn | None] | None = None
        self.pending_text = False
        self.pending_tool: tuple[str, str] | None = None
        self.queued_response = False  # the VAD wants a response once the active one ends
        self._tasks: set[asyncio.Task[None]] = set()  # responses, the session timer, stalls
        self.scope = faults.Scope()  # fault counts for events outside responses
        self.ended = False  # a fault or the session limit ended the connection
        self._stalls = 0  # stalls in progress (nothing is sent while > 0)
        self._read_stalls = 0  # of which stop reading too
        self._reading = asyncio.Event()
        self._reading.set()
        self._held: deque[tuple[Callable[[], Awaitable[None]],
                                asyncio.Future[None] | None]] = deque()
        self._tcp_done: asyncio.Future[None] | None = None  # a FIN drop's drain
        self._configure_vad()

    # -- life cycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Greet the client, then handle its events until the connection ends."""
        if self.state.max_session_seconds is not None:
            self._spawn(self._expire(self.state.max_session_seconds))
        _in_reader.set(True)
        try:
            await self.emit("session.created", session=copy.deepcopy(self.config))
            while True:
                if not self._reading.is_set():
                    await self._reading.wait()
                message = await self.ws.recv()
                await self._on_message(message)
        except ConnectionClosed:
            pass
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._fail_held()
            if self._tcp_done is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._tcp_done),
                                           faults.DRAIN_SECONDS + 1.0)
            rcvd = self.ws.protocol.close_rcvd
            self.state.end_session(self.session, None if rcvd is None else (rcvd.code,
                                                                             rcvd.reason))

    def cancel_tasks(self) -> None:
        """Stop producing output (the emulator is shutting down); run() awaits the tasks."""
        for task in list(self._tasks):
            task.cancel()
        self._reading.set()  # a frozen reader must see the close to let run() end

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a task owned by this connection (cancelled and awaited when it ends)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire(self, seconds: float) -> None:
        """End the session like the service does at its maximum duration: at `expires_at`, the
        moment session.created announced (a whole second, so up to 1 s past `seconds`)."""
        await asyncio.sleep(max(0.0, self.config["expires_at"] - time.time()))
        logger.info("session %s reached its maximum duration (%g s)", self.config["id"], seconds)
        try:
            await self.emit("error", error={
                "type": "invalid_request_error", "code": "session_expired",
                "message": expiry_message(seconds), "param": None, "event_id": None})
            await self._out(functools.partial(self._close, 1001, "maximum duration"))
        except ConnectionClosed:
            pass

    # -- sending -------------------------------------------------------------------------------

    async def emit(self, type_: str, **fields: Any) -> None:
        """Send one server event (with a fresh event_id), with the faults anchored on it."""
        event: dict[str, Any] = {"type": type_, "event_id": new_id("event"), **fields}
        fired: list[tuple[int, Fault]] = []
        if self.state.faults:
            resp = _responding.get()
            if resp is not None:
                scope, turn = resp.scope, resp.plan.turn_number
            else:
                scope, turn = self.scope, self.state.current_turn
            fired = faults.select(self.state, type_, scope, turn, self.session)
        if not fired:
            await self._out(functools.partial(self._write_event, event))
            return
        for when in ("before", "instead", "after"):
            if when == "instead" and not any(f.when == "instead" for _, f in fired):
                await self._out(functools.partial(self._write_event, event))
                continue
            for index, fault in fired:
                if fault.when == when:
                    await self._out(functools.partial(self._act, index, fault, event))

    async def emit_error(self, error: v.ClientError, event_id: str | None) -> None:
        await self.emit("error", error={"type": error.error_type, "code": error.code,
                                        "message": error.message, "param": error.param,
                                        "event_id": event_id})

    async def _out(self, op: Callable[[], Awaitable[None]]) -> None:
        """Run one send (or a fault's action on the wire) in order with all the others.

        While the connection stalls, the operation is held until the stall ends; the caller
        waits for it, except the reader, which must go on reading (until HELD_LIMIT).
        """
        if self.ended:
            raise ConnectionClosed(None, None)
        if self._stalls == 0 and not self._held:
            await op()
            return
        future: asyncio.Future[None] | None = None
        if not _in_reader.get() or len(self._held) >= HELD_LIMIT:
            future = asyncio.get_running_loop().create_future()
        self._held.append((op, future))
        if future is not None:
            await future

    async def _write_event(self, event: dict[str, Any]) -> None:
        record = event
        if event["type"] == "response.output_audio.delta":
            record = {k: val for k, val in event.items() if k != "delta"}
            delta = event["delta"]
            record["delta_bytes"] = len(delta) * 3 // 4 - delta[-2:].count("=")
        wire = self.dialect.server_events(event)
        if len(wire) != 1 or wire[0]["type"] != event["type"]:
            record = {**record, "_wire_types": [w["type"] for w in wire]}
        if not wire:  # the dialect has no such event: recorded, not sent
            self.state.record_sent(self.session, record)
            return
        for n, out in enumerate(wire):
            await self._transmit(json.dumps(out), record if n == 0 else None)

    async def _transmit(self, frame: str | bytes, record: dict[str, Any] | None) -> None:
        """The one place a frame reaches the socket (and the record of what was sent: tests
        read the GA event; a dialect's extra frames for it are not recorded again)."""
        if record is not None:
            self.state.record_sent(self.session, record)
        await self.ws.send(frame)

    # -- faults --------------------------------------------------------------------------------

    async def _act(self, index: int, fault: Fault, event: dict[str, Any]) -> None:
        """Do what an injected fault says, at its place in the outgoing traffic."""
        do = fault.do
        if do == "drop":
            await self._drop()
        elif do == "reset":
            await self._reset()
        elif do == "close":
            await self._close(fault.code, fault.reason)
        elif do in ("stall_reading", "stall_sending"):
            self._begin_stall(fault.seconds, reading=do == "stall_reading")
        elif do == "send":
            frame = faults.encode(fault.json, fault, fault.text)
            await self._transmit(frame, faults.record_of(fault.json, frame, index, fault.text))
        elif do == "replace":
            changed = faults.mutate(event, fault)
            frame = faults.encode(changed, fault)
            await self._transmit(frame, faults.record_of(changed, frame, index))
        elif do == "duplicate":
            for _ in range(fault.copies):
                again = copy.deepcopy(event)
                if not fault.same_event_id:
                    again["event_id"] = new_id("event")
                for n, out in enumerate(self.dialect.server_events(again)):
                    text = json.dumps(out)
                    await self._transmit(text, faults.record_of(again, text, index)
                                         if n == 0 else None)
        elif do == "error":
            error = faults.error_event(fault.error, new_id("event"))
            text = json.dumps(error)
            await self._transmit(text, faults.record_of(error, text, index))

    async def _drop(self) -> None:
        """End TCP with a FIN and no close frame (what was sent before still arrives)."""
        self.ended = True
        logger.info("dropping the connection of %s (FIN, no close frame)", self.config["id"])
        self._tcp_done = faults.finish_with_fin(self.ws.transport,
                                                functools.partial(self.ws.connection_lost, None))

    async def _reset(self) -> None:
        """End TCP with an RST."""
        self.ended = True
        logger.info("resetting the connection of %s (RST)", self.config["id"])
        await faults.reset(self.ws.transport)

    async def _close(self, code: int | None, reason: str) -> None:
        """Close with this code and reason; codes websockets will not send go out raw."""
        self.ended = True
        if code is not None and (code in EXTERNAL_CLOSE_CODES or 3000 <= code <= 4999):
            await self.ws.close(code, reason)
            return
        logger.info("closing %s with a raw close frame (code %s)", self.config["id"], code)
        if not self.ws.transport.is_closing():
            self.ws.transport.write(faults.close_frame(code, reason))
        await self._drop()

    def _begin_stall(self, seconds: float | None, reading: bool) -> None:
        """Send nothing (and with `reading`, read nothing) for `seconds`, or until the end."""
        logger.info("stalling %s (%s) for %s", self.config["id"],
                    "not reading, not sending" if reading else "reading, not sending",
                    "ever" if seconds is None else f"{seconds:g} s")
        self._stalls += 1
        if reading:
            self._read_stalls += 1
            self._reading.clear()
            self.ws.transport.pause_reading()
        keepalive = self.ws.keepalive_task  # a stalled peer sends no pings either
        if keepalive is not None:
            keepalive.cancel()
            self.ws.keepalive_task = None
        if seconds is not None or reading:
            self._spawn(self._stall_end(seconds, reading))

    async def _stall_end(self, seconds: float | None, reading: bool) -> None:
        if seconds is not None:
            await asyncio.sleep(seconds)
        else:  # frozen until the client gives up; notice it without reading the socket
            while not faults.peer_gone(self.ws.transport):
                await asyncio.sleep(PEER_POLL_SECONDS)
            logger.info("the client of stalled %s went away", self.config["id"])
            self.ended = True
            self.ws.transport.abort()
        if reading:
            self._read_stalls -= 1
            if self._read_stalls == 0:
                if not self.ws.transport.is_closing():
                    self.ws.transport.resume_reading()
                self._reading.set()
        self._stalls -= 1
        await self._flush()

    async def _flush(self) -> None:
        """Send what a stall held back, in order, until the next stall (or the end)."""
        while self._held and self._stalls == 0:
            if self.ended:
                self._fail_held()
                return
            op, future = self._held.popleft()
            try:
                await op()
            except ConnectionClosed as exc:
                self.ended = True
                if future is not None and not future.done():
                    future.set_exception(exc)
                self._fail_held()
                return
            if future is not None and not future.done():
                future.set_result(None)

    def _fail_held(self) -> None:
        """The connection is over: whoever waits behind a stall gets ConnectionClosed."""
        while self._held:
            _, future = self._held.popleft()
            if future is not None and not future.done():
                future.set_exception(ConnectionClosed(None, None))

    # -- receiving -----------------------------------------------------------------------------

    async def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.state.record_received(self.session, {"type": None,
                                                      "_binary_bytes": len(message)})
            await self.emit_error(v.ClientError(
                "Expected a text WebSocket message; binary frames are not supported.",
                code="invalid_event"), None)
            return
        try:
            event = json.loads(message)
        except ValueError as exc:
            self.state.record_received(self.session, {"type": None,
                                                      "_invalid_json": message[:500]})
            await self.emit_error(v.ClientError(
                f"Invalid event: failed to parse JSON value ({exc}).", code="invalid_json"), None)
            return
        pcm: bytes | None = None
        refused: v.ClientError | None = None
        if isinstance(event, dict) and event.get("type") == "input_audio_buffer.append":
            pcm = _decode_audio(event.get("audio"))
            record = {k: val for k, val in event.items() if k != "audio"}
            record["audio_bytes"] = None if pcm is None else len(pcm)
        elif isinstance(event, dict):
            try:
                ga = self.dialect.client_event(event)
            except v.ClientError as exc:  # a shape this dialect's servers refuse
                ga, refused = event, exc
            # tests read GA; what came on the wire stays beside it when it differed
            record = ga if ga is event else {**ga, "_wire": event}
            event = ga
        else:
            record = {"type": None, "_not_an_object": event}
        self.state.record_received(self.session, record)
        event_id = event.get("event_id") if isinstance(event, dict) else None
        if not isinstance(event_id, str):
            event_id = None
        try:
            if refused is not None:
                raise refused
            kind = v.check_event(event)
            await self._dispatch(kind, event, pcm)
        except v.ClientError as exc:
            logger.info("client error (%s): %s", exc.code, exc.message)
            await self.emit_error(exc, event_id)
        except ConnectionClosed:
            raise
        except Exception:  # the emulator must survive anything a client sends
            logger.exception("emulator failed on a %s event", event.get("type"))
            await self.emit_error(v.ClientError(
                "The server had an error while processing your request. (rtd emulator bug: "
                "see its log)", code=None, error_type="server_error"), event_id)

    async def _dispatch(self, kind: str, event: dict[str, Any], pcm: bytes | None) -> None:
        if kind == "session.update":
            await self._session_update(event)
        elif kind == "input_audio_buffer.append":
            await self._append(event, pcm)
        elif kind == "input_audio_buffer.commit":
            await self._manual_commit()
        elif kind == "input_audio_buffer.clear":
            self._clear_buffer()
            await self.emit("input_audio_buffer.cleared")
        elif kind == "conversation.item.create":
            await self._item_create(event)
        elif kind == "conversation.item.retrieve":
            item = self._find_item(event)
            await self.emit("conversation.item.retrieved", item=copy.deepcopy(item))
        elif kind == "conversation.item.delete":
            item = self._find_item(event)
            self.items.remove(item)
            del self.items_by_id[item["id"]]
            await self.emit("conversation.item.deleted", item_id=item["id"])
        elif kind == "conversation.item.truncate":
            await self._truncate(event)
        elif kind == "response.create":
            params = v.validate_response_params(event.get("response"))
            if self.active is not None:
                raise v.ClientError(
                    f"Conversation already has an active response in progress: "
                    f"{self.active.id}. Wait until the response is finished before creating "
                    "a new one.", code="conversation_already_has_active_response")
            self._start_response(params)
        elif kind == "response.cancel":
            self._cancel(event)

    # -- session -------------------------------------------------------------------------------

    async def _session_update(self, event: dict[str, Any]) -> None:
        session = v.validate_session(event.get("session"))
        voice = session.get("audio", {}).get("output", {}).get("voice")
        current = self.config["audio"]["output"]["voice"]
        if voice is not None and voice != current and self.audio_out_started:
            raise v.ClientError("Cannot update a conversation's voice if assistant audio is "
                                "present.", code="cannot_update_voice",
                                param="session.audio.output.voice")
        v.merge_session(self.config, session)
        self._configure_vad()
        await self.emit("session.updated", session=copy.deepcopy(self.config))

    def _turn_detection(self) -> dict[str, Any] | None:
        detection: dict[str, Any] | None = self.config["audio"]["input"]["turn_detection"]
        return detection

    def _configure_vad(self) -> None:
        """(Re)build the VAD when turn detection changed; keep it when nothing relevant did."""
        td = self._turn_detection()
        if td is None:
            self.vad = None
            return
        if td["type"] == "semantic_vad":
            settings = VadSettings(silence_duration_ms=SEMANTIC_SILENCE_MS[td.get("eagerness",
                                                                                "auto")])
        else:
            settings = VadSettings(threshold=td["threshold"],
                                   prefix_padding_ms=td["prefix_padding_ms"],
                                   silence_duration_ms=td["silence_duration_ms"])
        if self.vad is None or self.vad.settings != settings:
            self.vad = EnergyVad(settings, position=self.total_samples)

    # -- input audio ---------------------------------------------------------------------------

    async def _append(self, event: dict[str, Any], pcm: bytes | None) -> None:
        audio = v.require(event, "audio")
        v.expect(audio, ("string",), "audio")
        if pcm is None:
            raise v.ClientError("Invalid 'audio': expected base64-encoded audio bytes.",
                                code="invalid_value", param="audio")
        self.state.add_input_audio(self.session, pcm)
        self.buffer += pcm
        data = self._odd + pcm
        usable = len(data) // 2 * 2
        self._odd = data[usable:]
        samples = np.frombuffer(data[:usable], dtype="<i2")
        self.total_samples += samples.size
        if self.vad is not None:
            for vad_event in self.vad.feed(samples, floor=self.buffer_start):
                if vad_event.kind == "start":
                    await self._speech_started(vad_event.sample)
                else:
                    await self._speech_stopped(vad_event.sample)
            if not self.vad.speaking:
                self._trim_idle_buffer()

    def _trim_idle_buffer(self) -> None:
        """While nobody speaks, keep only the recent audio a future turn could include."""
        keep = max(IDLE_BUFFER_MS, self._prefix_ms() + 200) * SAMPLE_RATE // 1000
        samples = len(self.buffer) // 2
        if samples > 2 * keep:
            cut = samples - keep
            del self.buffer[: cut * 2]
            self.buffer_start += cut

    def _prefix_ms(self) -> int:
        td = self._turn_detection() or {}
        return int(td.get("prefix_padding_ms", 300))

    def _clear_buffer(self) -> None:
        self.buffer.clear()
        self._odd = b""
        self.buffer_start = self.total_samples
        self.speech_item_id = None
        if self.vad is not None:
            self.vad.reset(self.total_samples)

    async def _speech_started(self, sample: int) -> None:
        self.speech_item_id = new_id("item")
        self.speech_start = sample
        await self.emit("input_audio_buffer.speech_started",
                        audio_start_ms=sample * 1000 // SAMPLE_RATE, item_id=self.speech_item_id)
        td = self._turn_detection() or {}
        if self.active is not None and td.get("interrupt_response", True):
            self._cancel_active("turn_detected")

    async def _speech_stopped(self, sample: int) -> None:
        item_id = self.speech_item_id or new_id("item")
        await self.emit("input_audio_buffer.speech_stopped",
                        audio_end_ms=sample * 1000 // SAMPLE_RATE, item_id=item_id)
        await self._commit(self.speech_start, sample, item_id)
        self.speech_item_id = None
        td = self._turn_detection() or {}
        if td.get("create_response", True):
            if self.active is None:
                self._start_response({})
            else:  # answer once the current (usually just cancelled) response has ended
                logger.info("speech ended while %s is active: responding after it",
                            self.active.id)
                self.queued_response = True

    async def _manual_commit(self) -> None:
        samples = len(self.buffer) // 2
        ms = samples * 1000 / SAMPLE_RATE
        if ms < MIN_COMMIT_MS:
            raise v.ClientError(
                f"Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {ms:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty")
        item_id = self.speech_item_id or new_id("item")
        self.speech_item_id = None
        end = self.buffer_start + samples
        await self._commit(self.buffer_start, end, item_id)
        if self.vad is not None:
            self.vad.reset(self.total_samples)

    async def _commit(self, start: int, end: int, item_id: str) -> None:
        """Turn buffered audio [start, end) into a user message item; start a scenario turn."""
        begin = max(0, start - self.buffer_start) * 2
        stop = max(0, end - self.buffer_start) * 2
        audio_len = max(0, stop - begin)
        del self.buffer[:stop]
        self.buffer_start = max(self.buffer_start, end)
        ms = audio_len // BYTES_PER_MS
        number, turn = self.state.next_turn()
        self.pending_turn = (number, turn)
        self.pending_text = False
        self.pending_tool = None  # the user spoke after it: the turn answers what they said
        item: dict[str, Any] = {"id": item_id, "object": "realtime.item", "type": "message",
                                "status": "completed", "role": "user",
                                "content": [{"type": "input_audio", "transcript": None}]}
        previous = self._add_item(item)
        self.input_ms[item_id] = ms
        logger.info("user turn %d: %d ms of audio committed as %s", number, ms, item_id)
        await self.emit("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)
        await self.emit("conversation.item.added", previous_item_id=previous,
                        item=copy.deepcopy(item))
        await self.emit("conversation.item.done", previous_item_id=previous,
                        item=copy.deepcopy(item))
        transcription = self.config["audio"]["input"]["transcription"]
        if transcription and transcription.get("model"):
            if turn is not None and turn.transcript is not None:
                transcript = turn.transcript
            else:
                transcript = f"[emulator: {ms / 1000:.1f} s of speech]"
            for delta in _words(transcript):
                await self.emit("conversation.item.input_audio_transcription.delta",
                                item_id=item_id, content_index=0, delta=delta)
            item["content"][0]["transcript"] = transcript
            audio_tokens = math.ceil(ms / 100)
            await self.emit("conversation.item.input_audio_transcription.completed",
                            item_id=item_id, content_index=0, transcript=transcript,
                            usage={"type": "tokens", "total_tokens": audio_tokens
                                   + _tokens(transcript), "input_tokens": audio_tokens,
                                   "input_token_details": {"text_tokens": 0,
                                                           "audio_tokens": audio_tokens},
                                   "output_tokens": _tokens(transcript)})

    # -- conversation items --------------------------------------------------------------------

    def _add_item(self, item: dict[str, Any], after: str | None = None) -> str | None:
        """Insert an item at the end, after `after`, or first ("root"); return the one before."""
        if after is None:
            index = len(self.items)
        elif after == "root":
            index = 0
        else:
            index = self.items.index(self.items_by_id[after]) + 1
        self.items.insert(index, item)
        self.items_by_id[item["id"]] = item
        return self.items[index - 1]["id"] if index > 0 else None

    def _find_item(self, event: dict[str, Any]) -> dict[str, Any]:
        item_id = v.require(event, "item_id")
        v.expect(item_id, ("string",), "item_id")
        item = self.items_by_id.get(item_id)
        if item is None:
            raise v.ClientError(f"Item with item_id not found: {item_id}", code="invalid_value",
                                param="item_id")
        return item

    async def _item_create(self, event: dict[str, Any]) -> None:
        item = v.validate_item(event.get("item"))
        after = event.get("previous_item_id")
        if after is not None:
            v.expect(after, ("string",), "previous_item_id")
            if after != "root" and after not in self.items_by_id:
                raise v.ClientError(f"Previous item with item_id not found: {after}",
                                    code="invalid_value", param="previous_item_id")
        if item.get("id") in self.items_by_id:
            raise v.ClientError(f"Item with id already exists: {item['id']}",
                                code="invalid_value", param="item.id")
        if item["type"] == "function_call_output" and not any(
                other["type"] == "function_call" and other.get("call_id") == item["call_id"]
                for other in self.items):
            raise v.ClientError(f"Tool call ID '{item['call_id']}' not found in conversation.",
                                code="invalid_tool_call_id")
        item.setdefault("id", new_id("item"))
        if item["type"] == "function_call" and not item.get("call_id"):
            item["call_id"] = new_id("call")
        item = {"id": item.pop("id"), **item}
        previous = self._add_item(item, after)
        self.state.record_item(self.session, copy.deepcopy(item))
        await self.emit("conversation.item.added", previous_item_id=previous,
                        item=copy.deepcopy(item))
        await self.emit("conversation.item.done", previous_item_id=previous,
                        item=copy.deepcopy(item))
        if item["type"] == "function_call_output":
            self.pending_tool = (item["call_id"], item["output"])
        elif item["type"] == "message":
            # a newer message (a replay of the conversation, the user's next words) means the
            # output before it was answered already, or is history the model reads
            self.pending_tool = None
            if item["role"] == "user":
                self.pending_text = True

    async def _truncate(self, event: dict[str, Any]) -> None:
        item = self._find_item(event)
        content_index = v.require(event, "content_index")
        v.expect(content_index, ("integer",), "content_index")
        end_ms = v.require(event, "audio_end_ms")
        v.expect(end_ms, ("integer",), "audio_end_ms")
        if end_ms < 0:
            raise v.ClientError("Invalid 'audio_end_ms': integer below minimum value. Expected a "
                                f"value >= 0, but got {end_ms} instead.",
                                code="integer_below_min_value", param="audio_end_ms")
        if item.get("role") != "assistant" or item["id"] not in self.audio_ms:
            raise v.ClientError("Only model output audio messages can be truncated",
                                code="invalid_value", param="item_id")
        if content_index != 0:
            raise v.ClientError(f"Invalid 'content_index': the item has no content part "
                                f"{content_index} (it has one, index 0).",
                                code="invalid_value", param="content_index")
        have = self.audio_ms[item["id"]]
        if end_ms > have:
            raise v.ClientError(f"Audio content of {have}ms is already shorter than {end_ms}ms",
                                code="invalid_value", param="audio_end_ms")
        parts = item.get("content") or []
        if parts and isinstance(parts[0].get("transcript"), str) and have > 0:
            parts[0]["transcript"] = _cut_transcript(parts[0]["transcript"], end_ms, have)
        elif item.get("status") == "in_progress":
            # still streaming: the transcript is cut when the item is complete
            self.cut_at[item["id"]] = end_ms
        self.audio_ms[item["id"]] = end_ms
        await self.emit("conversation.item.truncated", item_id=item["id"],
                        content_index=content_index, audio_end_ms=end_ms)

    # -- responses -----------------------------------------------------------------------------

    def _cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if wanted is not None:
            v.expect(wanted, ("string",), "response_id")
        active = self.active
        if active is None or not active.cancellable or active.cancel_reason is not None:
            raise v.ClientError("Cancellation failed: no active response found",
                                code="response_cancel_not_active")
        if wanted is not None and wanted != active.id:
            raise v.ClientError(f"Cancellation failed: response {wanted} is not active "
                                f"(the active response is {active.id})",
                                code="response_cancel_not_active", param="response_id")
        self._cancel_active("client_cancelled")

    def _cancel_active(self, reason: str) -> None:
        active = self.active
        if active is not None and active.cancellable and active.cancel_reason is None:
            logger.info("cancelling %s (%s)", active.id, reason)
            active.cancel_reason = reason
            active.wake.set()

    def _next_plan(self, out_of_band: bool) -> _Plan:
        """Decide what the next response does, consuming a scenario turn when one is due."""
        scenario = self.state.scenario
        if out_of_band:
            return _Plan("say", text=scenario.default_reply)
        if self.pending_tool is not None:
            call_id, output = self.pending_tool
            self.pending_tool = None
            found = self.state.lookup_call(call_id)
            if found is not None:
                number, call_turn = found
                return _Plan("say", text=format_then(call_turn.then, output), turn=call_turn,
                             turn_number=number, final=True)
        turn: Turn | None
        if self.pending_turn is not None:
            number, turn = self.pending_turn
            self.pending_turn = None
            self.pending_text = False  # one response answers everything the user said
        elif self.pending_text:
            self.pending_text = False
            number, turn = self.state.next_turn()
            logger.info("user turn %d: text input", number)
        else:
            return _Plan("say", text=scenario.default_reply)
        if turn is None:
            return _Plan("say", text=scenario.default_reply, turn_number=number)
        stall = turn.stall_seconds
        if turn.error is not None:
            return _Plan("error", turn=turn, turn_number=number, final=True, stall=stall)
        if turn.close is not None:
            return _Plan("close", turn=turn, turn_number=number, final=True, stall=stall)
        if turn.drop:
            return _Plan("drop", turn=turn, turn_number=number, final=True, stall=stall)
        if turn.call is not None:
            return _Plan("call", turn=turn, turn_number=number, stall=stall)
        text = turn.reply if turn.reply is not None else scenario.default_reply
        return _Plan("say", text=text, turn=turn, turn_number=number, final=True, stall=stall)

    def _start_response(self, params: dict[str, Any]) -> None:
        """Register the response as active at once (so a quick cancel finds it), then run it."""
        out_of_band = params.get("conversation") == "none"
        if not out_of_band:
            self.queued_response = False  # this response takes the pending input
        plan = self._next_plan(out_of_band)
        audio_out = self.config["audio"]["output"]
        voice = params.get("audio", {}).get("output", {}).get("voice", audio_out["voice"])
        resp = _Response(
            id=new_id("resp"), plan=plan,
            modalities=list(params.get("output_modalities", self.config["output_modalities"])),
            voice=voice, in_conversation=not out_of_band, metadata=params.get("metadata"),
            max_output_tokens=params.get("max_output_tokens", self.config["max_output_tokens"]),
            cancellable=plan.kind in ("say", "call"))
        self.active = resp
        self._spawn(self._run_response(resp))

    async def _run_response(self, resp: _Response) -> None:
        plan = resp.plan
        _responding.set(resp)  # this task's context only
        _in_reader.set(False)
        try:
            if plan.kind in ("error", "close", "drop"):
                await self._fault(resp)
                return
            await self.emit("response.created", response=self._response_view(resp, "in_progress"))
            if plan.stall > 0:
                await self._wait_cancel(resp, plan.stall)
            if resp.cancel_reason is None:
                if plan.kind == "call":
                    await self._respond_call(resp)
                else:
                    await self._respond_say(resp)
            await self._finish(resp)
        except ConnectionClosed:
            return
        except Exception:
            logger.exception("emulator failed while producing %s", resp.id)
        finally:
            if self.active is resp:
                self.active = None
        if self.queued_response and self.active is None:
            self._start_response({})

    async def _wait_cancel(self, resp: _Response, seconds: float) -> None:
        """Sleep, waking early when the response is cancelled."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(resp.wake.wait(), timeout=seconds)

    async def _fault(self, resp: _Response) -> None:
        """A scripted fault in place of the response: error event, close, or a dropped socket."""
        plan = resp.plan
        assert plan.turn is not None
        if plan.stall > 0:
            await asyncio.sleep(plan.stall)
        if self.active is resp:
            self.active = None
        self.state.finish_turn(plan.turn_number)
        turn = plan.turn
        logger.info("turn %s: scripted fault %s", plan.turn_number, plan.kind)
        if plan.kind == "error":
            error = turn.error or ScriptedError()
            await self.emit("error", error={"type": error.type, "code": error.code,
                                            "message": error.message, "param": None,
                                            "event_id": None})
        elif plan.kind == "close":
            assert turn.close is not None
            await self._out(functools.partial(
                self._close, turn.close, f"rtd emulator scenario turn {plan.turn_number}"))
        else:
            await self._out(self._drop)

    async def _speak(self, text: str) -> bytes:
        """Synthesize off the event loop; fall back to tones if espeak fails."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.state.executor, synthesize, text,
                                              self.state.voice_engine)
        except RtdError as exc:
            logger.warning("speech synthesis failed (%s); using tones", exc)
            return await loop.run_in_executor(self.state.executor, synthesize, text, "tones")

    async def _open_item(self, resp: _Response, item: dict[str, Any]) -> str | None:
        """Announce a new output item; add it to the conversation unless out of band."""
        await self.emit("response.output_item.added", response_id=resp.id, output_index=0,
                        item=copy.deepcopy(item))
        if not resp.in_conversation:
            return None
        previous = self._add_item(item)
        await self.emit("conversation.item.added", previous_item_id=previous,
                        item=copy.deepcopy(item))
        return previous

    async def _close_item(self, resp: _Response, item: dict[str, Any],
                          previous: str | None) -> None:
        item["status"] = "incomplete" if resp.cancel_reason else "completed"
        if resp.in_conversation and item["id"] in self.items_by_id:
            await self.emit("conversation.item.done", previous_item_id=previous,
                            item=copy.deepcopy(item))
        await self.emit("response.output_item.done", response_id=resp.id, output_index=0,
                        item=copy.deepcopy(item))
        resp.output.append(copy.deepcopy(item))

    async def _respond_say(self, resp: _Response) -> None:
        text = resp.plan.text
        audio = "audio" in resp.modalities
        item_id = new_id("item")
        item: dict[str, Any] = {"id": item_id, "object": "realtime.item", "type": "message",
                                "status": "in_progress", "role": "assistant", "content": []}
        previous = await self._open_item(resp, item)
        where = {"response_id": resp.id, "item_id": item_id, "output_index": 0,
                 "content_index": 0}
        part: dict[str, Any] = ({"type": "audio", "transcript": ""} if audio
                                else {"type": "text", "text": ""})
        await self.emit("response.content_part.added", **where, part=dict(part))
        words = _words(text)
        said: list[str] = []
        if audio:
            pcm = await self._speak(text)
            chunks = [pcm[i:i + CHUNK_BYTES] for i in range(0, len(pcm), CHUNK_BYTES)]
            # Spread the transcript over the audio: word j goes with chunk j * chunks // words.
            by_chunk: list[list[str]] = [[] for _ in chunks]
            for index, word in enumerate(words if chunks else []):
                by_chunk[index * len(chunks) // len(words)].append(word)
            if not chunks:  # nothing audible to say: the transcript still arrives
                for word in words:
                    await self.emit("response.output_audio_transcript.delta", **where, delta=word)
                    said.append(word)
            if item_id in self.items_by_id:
                self.audio_ms[item_id] = 0
            sent = 0
            for chunk, chunk_words in zip(chunks, by_chunk, strict=True):
                if resp.cancel_reason:
                    break
                await self.emit("response.output_audio.delta", **where,
                                delta=base64.b64encode(chunk).decode("ascii"))
                sent += len(chunk)
                self.audio_out_started = True
                resp.audio_ms = sent // BYTES_PER_MS
                if item_id in self.audio_ms:
                    self.audio_ms[item_id] = resp.audio_ms
                for word in chunk_words:
                    await self.emit("response.output_audio_transcript.delta", **where, delta=word)
                    said.append(word)
                await asyncio.sleep(0)  # let a response.cancel in
            transcript = "".join(said)
            await self.emit("response.output_audio.done", **where)
            await self.emit("response.output_audio_transcript.done", **where,
                            transcript=transcript)
            part["transcript"] = transcript
            kept = transcript
            if item_id in self.cut_at:  # truncated while streaming: keep what was heard
                end_ms = self.cut_at.pop(item_id)
                self.audio_ms[item_id] = end_ms
                kept = _cut_transcript(transcript, end_ms, resp.audio_ms)
            item["content"] = [{"type": "output_audio", "transcript": kept}]
        else:
            for word in words:
                if resp.cancel_reason:
                    break
                await self.emit("response.output_text.delta", **where, delta=word)
                said.append(word)
                await asyncio.sleep(0)
            written = "".join(said)
            await self.emit("response.output_text.done", **where, text=written)
            part["text"] = written
            item["content"] = [{"type": "output_text", "text": written}]
        resp.text_tokens = _tokens("".join(said))
        await self.emit("response.content_part.done", **where, part=part)
        await self._close_item(resp, item, previous)

    async def _respond_call(self, resp: _Response) -> None:
        turn = resp.plan.turn
        assert turn is not None and turn.call is not None and resp.plan.turn_number is not None
        call_id = new_id("call")
        item_id = new_id("item")
        arguments = json.dumps(dict(turn.arguments))
        item: dict[str, Any] = {"id": item_id, "object": "realtime.item",
                                "type": "function_call", "status": "in_progress",
                                "name": turn.call, "call_id": call_id, "arguments": ""}
        self.state.register_call(call_id, resp.plan.turn_number, turn)
        previous = await self._open_item(resp, item)
        where = {"response_id": resp.id, "item_id": item_id, "output_index": 0,
                 "call_id": call_id}
        step = max(1, math.ceil(len(arguments) / 4))
        for i in range(0, len(arguments), step):
            if resp.cancel_reason:
                break
            item["arguments"] += arguments[i:i + step]
            await self.emit("response.function_call_arguments.delta", **where,
                            delta=arguments[i:i + step])
            await asyncio.sleep(0)
        if not resp.cancel_reason:
            await self.emit("response.function_call_arguments.done", **where, name=turn.call,
                            arguments=arguments)
        logger.info("turn %d: calling tool %s(%s) as %s", resp.plan.turn_number, turn.call,
                    arguments, call_id)
        resp.text_tokens = _tokens(arguments)
        await self._close_item(resp, item, previous)

    async def _finish(self, resp: _Response) -> None:
        """Send response.done (completed or cancelled) and the rate-limit update that follows."""
        if self.active is resp:
            self.active = None  # before sending: a client may answer response.done at once
        if resp.cancel_reason:
            status, details = "cancelled", {"type": "cancelled", "reason": resp.cancel_reason}
        else:
            status, details = "completed", None
        audio_tokens = math.ceil(resp.audio_ms / 50)
        input_text = _tokens(self.config.get("instructions") or "") + sum(
            _tokens(json.dumps(item.get("content", item.get("output", "")))) for item in self.items)
        input_audio = sum(math.ceil(ms / 100) for ms in self.input_ms.values())
        total = input_text + input_audio + resp.text_tokens + audio_tokens
        usage = {
            "total_tokens": total,
            "input_tokens": input_text + input_audio,
            "output_tokens": resp.text_tokens + audio_tokens,
            "input_token_details": {"text_tokens": input_text, "audio_tokens": input_audio,
                                    "image_tokens": 0, "cached_tokens": 0,
                                    "cached_tokens_details": {"text_tokens": 0,
                                                              "audio_tokens": 0,
                                                              "image_tokens": 0}},
            "output_token_details": {"text_tokens": resp.text_tokens,
                                     "audio_tokens": audio_tokens},
        }
        await self.emit("response.done",
                        response=self._response_view(resp, status, details, usage))
        await self.emit("rate_limits.updated", rate_limits=[
            {"name": "tokens", "limit": 15000000, "remaining": 15000000 - total,
             "reset_seconds": 0.001}])
        if resp.plan.final:
            self.state.finish_turn(resp.plan.turn_number)

    def _response_view(self, resp: _Response, status: str, details: Any = None,
                       usage: Any = None) -> dict[str, Any]:
        return {
            "object": "realtime.response",
            "id": resp.id,
            "status": status,
            "status_details": details,
            "output": copy.deepcopy(resp.output),
            "conversation_id": self.conversation_id if resp.in_conversation else None,
            "output_modalities": list(resp.modalities),
            "max_output_tokens": resp.max_output_tokens,
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000},
                                 "voice": resp.voice}},
            "usage": usage,
            "metadata": resp.metadata,
        }


def _decode_audio(audio: Any) -> bytes | None:
    """Strict base64 decoding; None when the field is missing or not base64."""
    if not isinstance(audio, str):
        return None
    try:
        return base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        return None
