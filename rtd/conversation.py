"""The conversation: server events in, commands out; the one owner of turn state.

A plain class with no threads, sockets, bus or configuration, so every flow that bites (tool
calls, duplicate and reordered events, errors in place of answers, reconnects) is a table of
events in a unit test. The session actor feeds it and carries out what it returns: `Send` a
client event on the current connection, `Publish` a message on the bus.

What it keeps:
- the turn: a response active or requested, a response owed, tool calls handed out and not
  answered (published as `TurnState` whenever it changes);
- the ordered items of the conversation (user and assistant messages, function calls and
  outputs) with the server's ids, kept across reconnects for a replay, and which assistant item
  is playing;
- what rtd sent, by ``event_id``, so an ``error`` is read as the answer to the event it names.

Rules that are not the protocol's own:
- A tool call id runs at most once per conversation, whatever the server repeats; a result for
  a call that is unknown, answered, abandoned with its connection or cancelled is dropped with
  one log line.
- ``response.create`` is never sent while a response is active or requested; it is owed and
  sent when the turn is free.
- An ``error`` that names no event rtd sent, while a response is active, ends that response as
  failed (servers send one in place of ``response.done``): the next input is answered. Errors
  about the input audio buffer are the microphone stream's (its appends carry no event id) and
  end nothing. A later
  ``response.done`` of that response publishes nothing more, but its completed tool calls still
  run (once), and it ends a response the server said was still active.
- A ``response.done`` or ``error`` too malformed to read still ends the active response as
  failed: the server said something ended, and a response marked active forever costs the
  conversation.
- Events while disconnected (late frames of a connection that ended) are not this
  conversation's: they are ignored.

Barge-in (see docs/talking.md): when the user speaks over the assistant (the server's
``speech_started`` while audio is at the speaker or a response is active), or a sender
interrupts, it publishes `Interrupt` (source "barge_in", or "turn" for a new manual turn) so
the speaker stops, cancels the response unless the server did (``interrupt_response``), and
drops late deltas of the cut items.
The speaker's `PlaybackStopped` says how much was heard: the item is truncated there
(``audio_end_ms`` capped at the audio received) or deleted when nothing was heard. The
assistant's transcript waits for the speaker: it is published once the item played to its end,
or, cut short, as the server's truncated text (retrieved after ``conversation.item.truncated``)
marked interrupted. With ``barge_in_min_ms`` speech over the assistant interrupts only once it
lasted that long (counted in the input audio sent); shorter speech is dropped as a cough.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from rtd.messages import (
    AudioChunk,
    AudioEvent,
    AudioTranscript,
    AudioTranscriptChunk,
    CancelTurn,
    Commit,
    ConnectionState,
    EndTurn,
    ErrorEvent,
    InputTranscript,
    InputTranscriptChunk,
    Interrupt,
    OutputAudioDone,
    PlaybackStopped,
    RequestResponse,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    SpeechStopped,
    StartTurn,
    TextChunk,
    TextEvent,
    ToolCall,
    ToolCallEvent,
    TurnState,
    UserText,
)
from rtd.protocol import events
from rtd.protocol.checks import CONTENT_PART, OUTPUT_ITEM, Checker

# "rtd.conversation" is the transcript's logger ("user: ...", "assistant: ..."), which the
# demo prints as the dialogue; this module's own lines go to the session's name.
logger = logging.getLogger("rtd.session")
transcript = logging.getLogger("rtd.conversation")

MAX_ITEMS = 500
"""Items kept (oldest forgotten first): enough for a long conversation's replay."""
OWN_INTERRUPTS = frozenset({"barge_in", "turn"})
"""`Interrupt` sources the conversation publishes itself (and so ignores when they come back)."""
MAX_PENDING_INPUT = 32
"""Sender requests (text, commit, respond) held while disconnected, sent once connected."""
MAX_CALLS_PER_RESPONSE = 64
"""Tool calls one response may start; the rest are answered "not run" at once."""
MAX_ITEM_AUDIO_BYTES = 24000 * 2 * 300
"""Audio collected for one whole-item `AudioEvent`: 5 minutes of pcm24; beyond, it is cut."""
BYTES_PER_MS = 48
"""pcm24: 24 kHz mono int16."""
REMEMBERED = 1024
"""Call ids (and their fate), response ids and sent event ids remembered."""
CANCELLED_OUTPUT = json.dumps({"error": "cancelled: rtd is stopping"})
"""The output sent for a tool call still running when rtd stops."""
TOO_MANY_OUTPUT = json.dumps(
    {"error": f"not run: more than {MAX_CALLS_PER_RESPONSE} tool calls in one response"})

# item-bearing server events whose `previous_item_id` places the item
_PLACED = frozenset({"conversation.item.added", "conversation.item.created"})
# events that never change the turn: no TurnState comparison on the audio path
_TURNLESS = frozenset({
    "response.output_audio.delta", "response.output_audio_transcript.delta",
    "response.output_text.delta", "conversation.item.input_audio_transcription.delta",
})


@dataclass(frozen=True)
class Send:
    """A client event for the current connection (carries rtd's ``event_id``)."""

    event: dict[str, Any]


@dataclass(frozen=True)
class Publish:
    """A message for the bus."""

    message: object


Command = Send | Publish


@dataclass(frozen=True)
class Item:
    """One item of the conversation, as a replay needs it."""

    id: str
    """The server's item id (or rtd's own, for items rtd created)."""
    kind: str
    """"message", "function_call" or "function_call_output"."""
    role: str | None = None
    """"user" or "assistant" (or "system") for messages; None otherwise."""
    text: str = ""
    """The user's transcript or typed text; the assistant's final transcript or text."""
    call_id: str | None = None
    name: str | None = None
    """The function's name (function calls)."""
    arguments: str | None = None
    """The arguments as the JSON text the model produced (function calls)."""
    output: str | None = None
    """Exactly the string rtd sent (function call outputs)."""
    interrupted: bool = False
    """The server truncated it, or its response ended before it was complete."""


_KINDS = frozenset({"message", "function_call", "function_call_output"})
_FATE_WORDS = {
    "answered": "was answered already",
    "abandoned": "belonged to a connection that ended",
    "cancelled": "was cancelled when rtd stopped",
    "not run": "was never run (its response did not complete)",
}


def _heard(text: str, end_ms: int, received_ms: int) -> str:
    """rtd's estimate of the words heard, when the server cannot say: words in proportion to
    the audio played (speech runs at a roughly even pace)."""
    words = text.split()
    if received_ms <= 0 or not words:
        return ""
    return " ".join(words[: round(len(words) * min(end_ms, received_ms) / received_ms)])


def _remember(table: dict[Any, Any], key: Any, value: Any, limit: int = REMEMBERED) -> None:
    table[key] = value
    if len(table) > limit:
        del table[next(iter(table))]


class Conversation:
    """Server events in, commands out. No threads, sockets, bus or config.

    Not thread-safe: one caller (the session actor's thread) drives it.
    """

    def __init__(self, *, wants: Callable[[type], bool] = lambda t: True,
                 playback: bool = False, barge_in_min_ms: int = 0) -> None:
        """``playback``: a speaker plays the assistant's audio and reports `PlaybackStopped`
        for each item (transcripts then wait for it). ``barge_in_min_ms``: speech over the
        assistant interrupts once it lasted this long."""
        self._wants = wants
        self._checker = Checker()
        self._out: list[Command] = []
        self._connected = False
        # turns, as the session.update rtd sent says the server takes them
        self._playback = playback
        self._barge_in_min_ms = max(0, int(barge_in_min_ms))
        self._manual = False
        self._server_interrupts = True
        self._server_responds = True
        self._respond_on_commit = False        # EndTurn: respond once the commit is confirmed
        self._vad_padding_ms = 0
        self._vad_silence_ms = 0
        self._input_bytes = 0                  # input audio sent on this connection
        self._speech: tuple[str, int] | None = None  # speech over the assistant, not yet a
        #                                              barge-in: (item id, audio_start_ms)
        self._coughs: dict[str, None] = {}     # user items too short to interrupt: deleted
        # barge-in
        self._at_speaker: dict[str, None] = {}  # items given to the speaker, not reported back
        self._received: dict[str, int] = {}    # item -> bytes of its audio received
        self._cut: dict[str, None] = {}        # items cut short: their late deltas are dropped
        self._cut_responses: dict[str, None] = {}
        self._held: dict[str, str] = {}        # transcripts waiting for the speaker
        self._truncating: dict[str, tuple[int, int]] = {}  # item -> (end ms, received ms)
        self._retrieving: dict[str, tuple[int, int]] = {}
        self._retrieve_later: list[str] = []   # truncated during a response: asked after it
        self._about: dict[str, str] = {}       # event id -> the assistant item it is about
        # the turn
        self._active = False
        self._active_id: str | None = None     # None: a response whose id rtd does not know
        self._requested = False
        self._owed = False
        self._owed_response: dict[str, Any] | None = None  # overrides for the owed response
        self._cancel_on_start = False          # an Interrupt came before response.created
        self._responses_done = 0
        self._ended: dict[str, str] = {}       # response id -> "done" | "error"
        # tool calls
        self._collected: dict[str, dict[str, ToolCall]] = {}  # response id ("" unknown)
        self._running: dict[str, ToolCall] = {}
        self._fates: dict[str, str] = {}       # call id -> what became of it
        # what rtd sent
        self._next_id = 0                      # rtd's event ids: rtd_<n>
        self._next_item = 0                    # rtd's item ids: rtd_item_<n>
        self._sent: dict[str, tuple[str, str | None]] = {}    # event id -> (type, item id)
        self._pending: deque[UserText | Commit | RequestResponse] = deque()
        # items
        self._items: dict[str, Item] = {}
        self._order: list[str] = []
        self._by_call: dict[tuple[str, str], str] = {}        # (kind, call id) -> item id
        self._unconfirmed: dict[str, str] = {}                # rtd's user items not echoed
        self._announced: dict[tuple[str, str], None] = {}
        self._audio: dict[str, list[bytes]] = {}
        self._audio_bytes: dict[str, int] = {}
        self._logged: set[str] = set()
        self.playing: str | None = None
        """The assistant item whose audio is being received now."""
        self._published = self.turn

    # -- what others read -----------------------------------------------------------------

    @property
    def turn(self) -> TurnState:
        """The turn now (published as a `TurnState` whenever it changes)."""
        return TurnState(self._connected, self._active, self._requested, self._owed,
                         len(self._running), self._responses_done)

    @property
    def items(self) -> Sequence[Item]:
        """The conversation's items, oldest first (at most `MAX_ITEMS`)."""
        return tuple(self._items[i] for i in self._order)

    @property
    def problems(self) -> Mapping[tuple[str, str], int]:
        """(event type, field) -> malformed server events (or elements) ignored for it."""
        return MappingProxyType(self._checker.problems)

    def stamp(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a client event rtd sends by another path (the transport's
        ``session.update``) with an ``event_id``, remembered so an error it causes names it."""
        self._next_id += 1
        event_id = f"rtd_{self._next_id}"
        _remember(self._sent, event_id, (str(event.get("type")), None))
        if event.get("type") == "session.update":
            self._read_turns(event.get("session"))
        return events.with_event_id(event, event_id)

    def _read_turns(self, session: Any) -> None:
        """Learn from the session.update rtd sends who takes turns and who interrupts, so the
        conversation does what the server was told not to."""
        if not isinstance(session, Mapping):
            return
        audio_in = (session.get("audio") or {}).get("input") or {}
        if "turn_detection" in audio_in:
            td = audio_in["turn_detection"]
        elif "turn_detection" in session:  # flat dialects
            td = session["turn_detection"]
        else:
            return
        self._manual = not isinstance(td, Mapping)
        td = td if isinstance(td, Mapping) else {}
        self._server_interrupts = not self._manual and bool(td.get("interrupt_response", True))
        self._server_responds = not self._manual and bool(td.get("create_response", True))
        # speech events' audio_start_ms includes the padding, audio_end_ms the silence
        self._vad_padding_ms = int(td.get("prefix_padding_ms") or 0)
        self._vad_silence_ms = int(td.get("silence_duration_ms") or 0)

    # -- the connection -------------------------------------------------------------------

    def connected(self, url: str) -> list[Command]:
        """A new connection is up (its ``session.update`` already sent): send what senders
        asked for meanwhile, in order, and say so."""
        self._out = []
        if self._connected:
            self._drop_in_flight()
        self._connected = True
        self._input_bytes = 0
        while self._pending:
            self._sender_input(self._pending.popleft())
        self._publish(ConnectionState(True, url))
        return self._finish()

    def disconnected(self, reason: str) -> list[Command]:
        """The connection is gone: what was in flight on it is gone too; the items stay."""
        self._out = []
        if not self._connected:
            return []
        self._connected = False
        self._drop_in_flight()
        logger.warning("disconnected: %s", reason)
        self._publish(ConnectionState(False, reason))
        self._publish(ErrorEvent("connection", "disconnected", reason))
        return self._finish()

    def closed(self, why: str) -> list[Command]:
        """rtd closed the connection on purpose (a sleep, the idle cut-off, the daily budget):
        no reconnect follows, so this is no error; what was in flight is gone."""
        self._out = []
        self._connected = False
        self._drop_in_flight()
        self._pending.clear()
        self._publish(ConnectionState(False, why, expected=True))  # the state actor: idle
        return self._finish()

    def forget_history(self) -> None:
        """Start a new conversation: the items (and so the next replay) are forgotten; call
        ids and event ids stay remembered, so late answers are still recognised."""
        self._items.clear()
        self._order.clear()
        self._by_call.clear()
        self._unconfirmed.clear()
        self._audio.clear()
        self._audio_bytes.clear()
        self.playing = None

    @property
    def has_pending_input(self) -> bool:
        """Sender input is held for the next connection."""
        return bool(self._pending)

    def replay(self, max_chars: int) -> list[dict[str, Any]]:
        """The conversation so far as ``conversation.item.create`` events for a new session,
        oldest first, under the items' own ids (so the server's echoes are recognised as
        items already known, not new history).

        User messages become ``input_text`` (the typed text or the transcription), assistant
        messages ``output_text`` with the final transcript, or, when the user interrupted
        them, the text the server kept after the truncation (what was heard); function calls
        with their call id, name and arguments, each followed (where it was) by its output,
        exactly as sent. A call without an output (abandoned with its connection, or still
        running) is left out, and so is an output whose call is: servers refuse an output
        whose call they do not know. Messages without text (audio never transcribed) are left
        out. The oldest go first until the rest fit in ``max_chars`` characters of text,
        arguments and outputs; a call and its output go together.
        """
        if max_chars <= 0:
            return []
        items = [self._items[i] for i in self._order]
        answered = {i.call_id for i in items if i.kind == "function_call_output"}
        made: dict[str, dict[str, Any]] = {}      # item id -> its event
        units: list[list[Any]] = []               # [chars, item ids], oldest first
        open_calls: dict[str, list[Any]] = {}     # call id -> its unit, until its output
        for item in items:
            if item.kind == "message":
                text = item.text.strip()
                if not text or item.role not in ("user", "assistant"):
                    continue
                build = events.user_text if item.role == "user" else events.assistant_text
                made[item.id] = build(text, item_id=item.id)
                units.append([len(text), [item.id]])
            elif (item.kind == "function_call" and item.call_id in answered
                  and item.call_id not in open_calls):
                arguments = item.arguments or "{}"
                made[item.id] = events.function_call(item.call_id or "", item.name or "",
                                                     arguments, item_id=item.id)
                unit = [len(arguments) + len(item.name or ""), [item.id]]
                units.append(unit)
                open_calls[item.call_id or ""] = unit
            elif item.kind == "function_call_output" and item.call_id in open_calls:
                unit = open_calls.pop(item.call_id or "")
                output = item.output or ""
                made[item.id] = events.function_call_output(item.call_id or "", output,
                                                            item_id=item.id)
                unit[0] += len(output)
                unit[1].append(item.id)
        for unit in open_calls.values():  # no output after it: never a call without one
            units.remove(unit)
        total = sum(unit[0] for unit in units)
        first = 0
        while first < len(units) and total > max_chars:
            total -= units[first][0]
            first += 1
        kept = {item_id for unit in units[first:] for item_id in unit[1]}
        # in the items' order: an output stays where it was, after what came between
        return [self.stamp(made[item.id]) for item in items if item.id in kept]

    def stop(self) -> list[Command]:
        """rtd is stopping: running tool calls are answered as cancelled (when connected), and
        nothing more is asked of the model."""
        self._out = []
        if self._running:
            told = "told the model" if self._connected else "not connected, so not told"
            logger.info("stopping with %d tool call(s) running: cancelled (%s)",
                        len(self._running), told)
            for call in self._running.values():
                _remember(self._fates, call.call_id, "cancelled")
                if self._connected:
                    self._send_output(call.call_id, CANCELLED_OUTPUT)
            self._running.clear()
        self._owed = False
        return self._finish()

    # -- what senders and tools send ------------------------------------------------------

    def sender_input(self, message: UserText | Commit | RequestResponse | Interrupt
                     | StartTurn | EndTurn | CancelTurn) -> list[Command]:
        """A sender's request; held (bounded, in order) while disconnected, except Interrupt
        and manual turns: with no connection there is nothing to interrupt, and the audio of
        a turn went with its connection."""
        self._out = []
        if self._connected:
            self._sender_input(message)
        elif not isinstance(message, (Interrupt, StartTurn, EndTurn, CancelTurn)):
            if len(self._pending) >= MAX_PENDING_INPUT:
                logger.warning("disconnected: dropping the oldest of %d queued inputs",
                               len(self._pending))
                self._pending.popleft()
            self._pending.append(message)
        return self._finish()

    def tool_result(self, result: ToolCallEvent) -> list[Command]:
        """A tool answered: send its output, then a response once every call of the turn
        answered."""
        self._out = []
        call = self._running.pop(result.call_id, None)
        if call is None:
            why = _FATE_WORDS.get(self._fates.get(result.call_id, ""),
                                  "is not one this conversation ran")
            logger.info("result of %s (call %s) dropped: the call %s", result.name,
                        result.call_id, why)
            return self._finish()
        _remember(self._fates, result.call_id, "answered")
        self._send_output(result.call_id, result.output)
        self._owed = True
        self._maybe_request()
        return self._finish()

    def _sender_input(self, message: object) -> None:
        if isinstance(message, UserText):
            self._next_item += 1
            item_id = f"rtd_item_{self._next_item}"
            self._send(events.user_text(message.text, item_id=item_id), item_id)
            self._add(Item(item_id, "message", "user", message.text))
            _remember(self._unconfirmed, item_id, message.text, MAX_ITEMS)
            # typed text is part of the dialogue as spoken input is
            _remember(self._announced, ("user", item_id), None)
            transcript.info("user: %s", message.text)
            self._publish(InputTranscript(item_id, message.text))
            if message.respond:
                self._owe(message.response)
        elif isinstance(message, Commit):
            self._send(events.input_audio_commit())
        elif isinstance(message, RequestResponse):
            self._owe(message.response)
        elif isinstance(message, Interrupt):
            if message.source not in OWN_INTERRUPTS:  # the session's own, back from the bus
                self._speech = None
                self._cut_now()
                self._cancel_response()
        elif isinstance(message, StartTurn):
            if self._assistant_busy():  # talking over the assistant: it stops at once
                self._barge_in("a new turn started", server_cancelled=False, source="turn")
            self._send(events.input_audio_clear())
            self._respond_on_commit = False
        elif isinstance(message, EndTurn):
            self._send(events.input_audio_commit())
            self._respond_on_commit = True
        elif isinstance(message, CancelTurn):
            self._send(events.input_audio_clear())
            self._respond_on_commit = False

    # -- barge-in -------------------------------------------------------------------------

    def input_audio(self, size: int) -> list[Command]:
        """``size`` bytes of microphone audio went to the server: the clock by which speech
        over the assistant becomes an interruption (``barge_in_min_ms``)."""
        self._input_bytes += size
        if self._speech is None or not self._connected:
            return []
        self._out = []
        # the server's speech_stopped comes silence_ms after the speech ends: speech that has
        # not stopped by onset + barge_in_min_ms + silence_ms lasted barge_in_min_ms
        lasted = (self._input_bytes // BYTES_PER_MS - self._speech[1] - self._vad_padding_ms
                  - self._vad_silence_ms)
        if lasted >= self._barge_in_min_ms:
            self._barge_in(f"the user spoke over the assistant for {lasted} ms at least",
                           server_cancelled=self._server_interrupts)
        return self._finish()

    def playback_stopped(self, message: PlaybackStopped) -> list[Command]:
        """The speaker finished an item or cut it short: publish what the user heard."""
        self._out = []
        item_id = message.item_id
        if item_id not in self._at_speaker:
            return self._finish()
        # the speaker reports items in the order it got them: one given to it earlier and
        # never reported was lost with a speaker that restarted
        for lost in list(self._at_speaker):
            if lost == item_id:
                break
            del self._at_speaker[lost]
            self._received.pop(lost, None)
            text = self._held.pop(lost, None)
            if text is not None:
                self._announce(lost, text, False)
        del self._at_speaker[item_id]
        received = self._received.pop(item_id, 0) // BYTES_PER_MS
        if not message.interrupted:
            text = self._held.pop(item_id, None)
            if text is not None:
                self._announce(item_id, text, False)
            return self._finish()
        _remember(self._cut, item_id, None)
        end = max(0, min(int(message.played_ms), received))
        if not self._connected or item_id not in self._items:
            # the server's copy went with its connection: say what was heard, by estimate
            self._announce(item_id, _heard(self._held.pop(item_id, ""), end, received), True)
        elif end == 0:
            # nobody heard a word: the model must not believe it said something
            self._held.pop(item_id, None)
            self._send(events.item_delete(item_id))
            transcript.info("assistant: (interrupted before a word was heard)")
        else:
            event_id = self._send(events.item_truncate(item_id, end))
            _remember(self._about, event_id, item_id)
            _remember(self._truncating, item_id, (end, received))
            self._held.setdefault(item_id, "")
            logger.info("interrupted %s after %d of %d ms; truncating it there", item_id, end,
                        received)
        return self._finish()

    def _assistant_busy(self) -> bool:
        return bool(self._at_speaker) or self._active or self._requested

    def _barge_in(self, why: str, *, server_cancelled: bool, source: str = "barge_in") -> None:
        """Stop the assistant: the speaker at once, the response unless the server did."""
        self._speech = None
        logger.info("barge-in: %s", why)
        self._publish(Interrupt(source))
        self._cut_now()
        if not server_cancelled:
            self._cancel_response()

    def _cut_now(self) -> None:
        for item_id in self._at_speaker:
            _remember(self._cut, item_id, None)
        if self._active_id:
            _remember(self._cut_responses, self._active_id, None)

    def _cancel_response(self) -> None:
        if self._active:
            self._send(events.response_cancel())
        elif self._requested:
            self._cancel_on_start = True

    def _announce(self, item_id: str, text: str, interrupted: bool) -> None:
        key = ("assistant", item_id)
        if key in self._announced:
            return
        _remember(self._announced, key, None)
        if interrupted:
            item = self._items.get(item_id)
            if item is not None:
                self._items[item_id] = replace(item, text=text, interrupted=True)
            transcript.info("assistant (interrupted): %s", text or "(nothing heard)")
        else:
            transcript.info("assistant: %s", text)
        self._publish(AudioTranscript(item_id, text, interrupted))

    def _ask_truncated_text(self) -> None:
        """Retrieve items truncated while their response was active, now that it ended."""
        for item_id in self._retrieve_later:
            if item_id in self._retrieving:
                event_id = self._send(events.item_retrieve(item_id))
                _remember(self._about, event_id, item_id)
        self._retrieve_later.clear()

    def _truncation_failed(self, item_id: str) -> None:
        """The server refused the truncate or retrieve: publish rtd's own estimate."""
        span = self._truncating.pop(item_id, None) or self._retrieving.pop(item_id, None)
        if span is not None:
            self._announce(item_id, _heard(self._held.pop(item_id, ""), *span), True)

    # -- server events --------------------------------------------------------------------

    def server_event(self, data: Mapping[str, Any]) -> list[Command]:
        """One parsed JSON value from the server, unchecked; it never raises for bad input."""
        self._out = []
        if not self._connected:
            return []
        kind, usable = self._checker.check(data)
        if not usable:
            if kind == "response.done":
                self._end_active("the server's response.done was malformed")
            elif kind == "error":
                self._server_error("server_error", "(the server's error event was malformed)",
                                   None, None)
            return self._finish()
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, data)
        if kind in _TURNLESS:
            return self._out
        return self._finish()

    def _on_session_updated(self, data: Mapping[str, Any]) -> None:
        session = data["session"]
        output = (session.get("audio") or {}).get("output") or {}
        voice = output.get("voice") or session.get("voice")
        logger.info("session ready: model %s, voice %s", session.get("model") or "(not said)",
                    voice or "(not said)")

    def _on_error(self, data: Mapping[str, Any]) -> None:
        err = data["error"]
        self._server_error(err.get("code") or err.get("type") or "error",
                           err.get("message") or "", err.get("event_id"), err.get("param"))

    def _server_error(self, code: str, message: str, event_id: str | None,
                      param: str | None) -> None:
        cause = self._sent.get(event_id) if event_id else None
        if cause is not None and cause[0] == "response.cancel" and code == \
                "response_cancel_not_active":
            logger.info("the response had ended before rtd's response.cancel reached it")
            return
        if cause is not None:
            where = f" (answering {cause[0]} {event_id})"
        elif event_id:
            where = f" (caused by event {event_id})"
        else:
            where = ""
        logger.warning("server error %s: %s%s%s", code, message,
                       f" (param {param})" if param else "", where)
        self._publish(ErrorEvent("server", code, message))
        about = self._about.pop(event_id, None) if event_id else None
        if about is not None:
            self._truncation_failed(about)
        if cause is not None:
            sent_type, item_id = cause
            if sent_type == "input_audio_buffer.commit":
                self._respond_on_commit = False
            if item_id is not None:  # the server refused the item: it is not in its history
                self._forget(item_id)
            if sent_type == "response.create":
                self._requested = False
                self._cancel_on_start = False
                if code == "conversation_already_has_active_response":
                    # a response rtd has not seen start (or took as ended) is still going:
                    # wait for its end, then ask again
                    if not self._active:
                        self._active, self._active_id = True, None
                    self._owed = True
        elif code.startswith("input_audio_buffer"):
            pass  # about the microphone stream (appends carry no event id), not the response
        elif self._active:
            self._end_active(f"server error {code}")
        elif self._requested:
            # a server that echoes no event ids may be answering the response.create
            self._requested = False
            self._cancel_on_start = False

    def _on_response_created(self, data: Mapping[str, Any]) -> None:
        rid = data["response"].get("id") or ""
        if rid and (rid in self._ended or (self._active and rid == self._active_id)):
            self._log_once("repeat-created", "ignoring a repeated or late response.created "
                           "(%s); logged once", rid)
            return
        self._active, self._active_id = True, rid or None
        self._requested = False
        self._publish(ResponseStarted(rid))
        if self._cancel_on_start:
            self._cancel_on_start = False
            self._send(events.response_cancel())

    def _on_response_done(self, data: Mapping[str, Any]) -> None:
        response = data["response"]
        rid = response.get("id") or ""
        status = response.get("status") or ""
        how = self._ended.get(rid) if rid else None
        if how == "done":
            self._log_once("repeat-done", "ignoring a repeated response.done (%s); logged once",
                           rid)
            return
        output = self._checker.elements("response.done", "response.output",
                                        response.get("output"), OUTPUT_ITEM)
        for element in output:
            if isinstance(element.get("id"), str) and element["id"]:
                self._upsert("response.done", element, None)
        calls = self._calls_of(rid, output)
        ends_active = self._active and (not rid or self._active_id in (None, rid))
        if ends_active:
            self._active, self._active_id = False, None
        elif not self._active and how is None:
            self._requested = False  # the answer to a request whose response.created was lost
        self._cancel_on_start = False
        if rid:
            _remember(self._ended, rid, "done")
        if status == "completed":
            self._run(calls)
        elif calls:
            # arguments.done also fires for responses that are then cancelled: never act on those
            logger.info("response %s %s; %d tool call(s) not run", rid, status or "(no status)",
                        len(calls))
            for call in calls:
                _remember(self._fates, call.call_id, "not run")
        if status == "failed":
            details = response.get("status_details") or {}
            err = details.get("error") or {}
            logger.warning("response failed: %s", err.get("message") or details or "no details")
        if ends_active or not self._active:
            self._flush_audio()
        if how is None:
            self._publish(ResponseDone(rid, status))
            self._responses_done += 1
        if not self._active:
            self._ask_truncated_text()
        self._maybe_request()

    def _end_active(self, why: str) -> None:
        """End the active response as failed without its response.done (see the module)."""
        if not self._active:
            if self._requested:
                self._requested = self._cancel_on_start = False
            return
        rid = self._active_id or ""
        self._active, self._active_id = False, None
        if rid:
            _remember(self._ended, rid, "error")
        waiting = len(self._collected.get(rid, ()))
        logger.warning("response %s ended without response.done (%s)%s", rid or "(no id)", why,
                       f"; its {waiting} tool call(s) run only if a response.done says it "
                       "completed" if waiting else "")
        self._flush_audio()
        self._publish(ResponseDone(rid, "failed"))
        self._responses_done += 1
        self._ask_truncated_text()
        self._maybe_request()

    def _calls_of(self, rid: str, output: list[Mapping[str, Any]]) -> list[ToolCall]:
        found: dict[str, ToolCall] = {}
        for bucket in (rid, "") if rid else ("",):
            found.update(self._collected.pop(bucket, {}))
        for element in output:
            if element.get("type") != "function_call":
                continue
            call_id = element.get("call_id")
            if not call_id:
                self._checker.report("response.done", "response.output[].call_id",
                                     "server sent response.done with a function_call in "
                                     "response.output without call_id; that call ignored "
                                     "(logged once, counted)")
                continue
            if call_id not in found:
                found[call_id] = ToolCall(call_id, element.get("name") or "",
                                          element.get("arguments") or "")
        return list(found.values())

    def _run(self, calls: list[ToolCall]) -> None:
        fresh = [c for c in calls if c.call_id not in self._running
                 and c.call_id not in self._fates]
        if len(fresh) < len(calls):
            self._log_once("repeat-call", "%d tool call(s) the server repeated not run again "
                           "(each call id runs once); logged once", len(calls) - len(fresh))
        if len(fresh) > MAX_CALLS_PER_RESPONSE:
            logger.warning("a response asked for %d tool calls; the %d past %d are not run",
                           len(fresh), len(fresh) - MAX_CALLS_PER_RESPONSE,
                           MAX_CALLS_PER_RESPONSE)
            for call in fresh[MAX_CALLS_PER_RESPONSE:]:
                _remember(self._fates, call.call_id, "not run")
                self._send_output(call.call_id, TOO_MANY_OUTPUT)
            self._owed = True
            fresh = fresh[:MAX_CALLS_PER_RESPONSE]
        for call in fresh:
            self._running[call.call_id] = call
            _remember(self._fates, call.call_id, "running")
            self._publish(call)

    def _on_arguments_done(self, data: Mapping[str, Any]) -> None:
        call = ToolCall(data["call_id"], data.get("name") or "", data.get("arguments") or "")
        rid = data.get("response_id") or self._active_id or ""
        bucket = self._collected.get(rid)
        if bucket is None:
            bucket = {}
            _remember(self._collected, rid, bucket, 64)
        if len(bucket) <= MAX_CALLS_PER_RESPONSE * 2:
            bucket.setdefault(call.call_id, call)
        item_id = data.get("item_id")
        if item_id:
            self._upsert("response.function_call_arguments.done",
                         {"id": item_id, "type": "function_call", "call_id": call.call_id,
                          "name": call.name, "arguments": call.arguments}, None)

    def _on_audio_delta(self, data: Mapping[str, Any]) -> None:
        item_id = data["item_id"]
        if item_id in self._cut or data.get("response_id") in self._cut_responses:
            self._log_once("late-delta", "dropping audio of an interrupted answer that was "
                           "still arriving; logged once")
            return
        chunk, whole = self._wants(AudioChunk), self._wants(AudioEvent)
        if chunk or whole:
            pcm = self._checker.audio("response.output_audio.delta", "delta", data["delta"])
            if pcm is None:
                return
            if chunk:
                self._out.append(Publish(AudioChunk(item_id, pcm)))
                if self._playback:
                    if item_id not in self._at_speaker:
                        _remember(self._at_speaker, item_id, None, 64)
                    self._received[item_id] = self._received.get(item_id, 0) + len(pcm)
            if whole:
                self._collect(item_id, pcm)
        if item_id not in self._items:
            self._add(Item(item_id, "message", "assistant"))
        self.playing = item_id

    def _collect(self, item_id: str, pcm: bytes) -> None:
        size = self._audio_bytes.get(item_id, 0) + len(pcm)
        if size > MAX_ITEM_AUDIO_BYTES:
            self._log_once("long-audio", "an item's audio passed %d s; the whole-item audio "
                           "event keeps the first %d s; logged once",
                           MAX_ITEM_AUDIO_BYTES // 48000, MAX_ITEM_AUDIO_BYTES // 48000)
            return
        self._audio_bytes[item_id] = size
        self._audio.setdefault(item_id, []).append(pcm)

    def _on_audio_done(self, data: Mapping[str, Any]) -> None:
        self._audio_done(data["item_id"])

    def _audio_done(self, item_id: str) -> None:
        key = ("audio", item_id)
        if key in self._announced:
            return
        _remember(self._announced, key, None)
        if not (self._playback and item_id in self._cut and item_id not in self._at_speaker):
            # a cut item the speaker already reported, or never got, has nothing to finish
            self._publish(OutputAudioDone(item_id))
        chunks = self._audio.pop(item_id, None)
        self._audio_bytes.pop(item_id, None)
        if chunks is not None:
            self._publish(AudioEvent(item_id, b"".join(chunks)))
        if self.playing == item_id:
            self.playing = None

    def _flush_audio(self) -> None:
        """A response ended: audio whose audio.done never came is done now."""
        for item_id in [*self._audio, *([self.playing] if self.playing else [])]:
            self._audio_done(item_id)
        self.playing = None

    def _on_transcript_delta(self, data: Mapping[str, Any]) -> None:
        if data["item_id"] in self._cut:
            return
        if self._wants(AudioTranscriptChunk):
            self._out.append(Publish(AudioTranscriptChunk(data["item_id"], data["delta"])))

    def _on_text_delta(self, data: Mapping[str, Any]) -> None:
        if self._wants(TextChunk):
            self._out.append(Publish(TextChunk(data["item_id"], data["delta"])))

    def _on_transcript_done(self, data: Mapping[str, Any]) -> None:
        self._assistant_text(data["item_id"], data["transcript"], AudioTranscript)

    def _on_text_done(self, data: Mapping[str, Any]) -> None:
        self._assistant_text(data["item_id"], data["text"], TextEvent)

    def _assistant_text(self, item_id: str, text: str,
                        kind: type[AudioTranscript] | type[TextEvent]) -> None:
        if not text:
            return
        if kind is AudioTranscript and (item_id in self._at_speaker or item_id in self._cut):
            # what the user hears is known once the speaker is done with the item
            if item_id in self._at_speaker or item_id in self._held:
                self._held[item_id] = text
                if len(self._held) > REMEMBERED:
                    del self._held[next(iter(self._held))]
            return
        self._set_text(item_id, "assistant", text)
        key = ("assistant", item_id)
        if key not in self._announced:
            _remember(self._announced, key, None)
            transcript.info("assistant: %s", text)
            self._publish(kind(item_id, text))

    def _on_user_transcript_delta(self, data: Mapping[str, Any]) -> None:
        if self._wants(InputTranscriptChunk):
            self._out.append(Publish(InputTranscriptChunk(data["item_id"], data["delta"])))

    def _on_user_transcript(self, data: Mapping[str, Any]) -> None:
        item_id, text = data["item_id"], data["transcript"].strip()
        if not text or item_id in self._coughs:
            return
        self._set_text(item_id, "user", text)
        key = ("user", item_id)
        if key not in self._announced:
            _remember(self._announced, key, None)
            transcript.info("user: %s", text)
            self._publish(InputTranscript(item_id, text))

    def _on_transcription_failed(self, data: Mapping[str, Any]) -> None:
        err = data.get("error") or {}
        logger.warning("transcription of the user's speech failed: %s",
                       err.get("message") or err.get("code") or "no reason given")

    def _on_speech_started(self, data: Mapping[str, Any]) -> None:
        item_id = data.get("item_id") or ""
        start = data.get("audio_start_ms")
        start = int(start) if start is not None else self._input_bytes // BYTES_PER_MS
        self._publish(SpeechStarted(item_id, start))
        if not self._assistant_busy():
            return
        if self._barge_in_min_ms == 0:
            self._barge_in("the user started speaking", server_cancelled=self._server_interrupts)
        else:
            self._speech = (item_id, start)

    def _on_speech_stopped(self, data: Mapping[str, Any]) -> None:
        item_id = data.get("item_id") or ""
        end = data.get("audio_end_ms")
        end = int(end) if end is not None else self._input_bytes // BYTES_PER_MS
        answered = True
        if self._speech is not None:
            speech_id, start = self._speech
            # both ends include the server's padding and silence: take them off
            lasted = end - start - self._vad_padding_ms - self._vad_silence_ms
            if lasted >= self._barge_in_min_ms:
                self._barge_in(f"the user spoke over the assistant for {lasted} ms",
                               server_cancelled=self._server_interrupts)
            else:
                self._speech = None
                answered = False
                _remember(self._coughs, item_id or speech_id, None)
                logger.info("%d ms of speech over the assistant: shorter than "
                            "audio.barge_in_min_ms (%d ms), so not an interruption; dropped",
                            max(0, lasted), self._barge_in_min_ms)
        self._publish(SpeechStopped(item_id, end, answered))

    def _on_committed(self, data: Mapping[str, Any]) -> None:
        item_id = data.get("item_id") or ""
        if item_id in self._coughs:
            self._send(events.item_delete(item_id))
            return
        if self._respond_on_commit or not (self._server_responds or self._manual):
            # an ended manual turn, or server VAD told not to answer (barge_in_min_ms)
            self._respond_on_commit = False
            self._owed = True
            self._maybe_request()

    def _on_item(self, data: Mapping[str, Any]) -> None:
        kind = data["type"]
        after = data.get("previous_item_id") if kind in _PLACED else None
        self._upsert(kind, data["item"], after)

    def _on_item_deleted(self, data: Mapping[str, Any]) -> None:
        self._forget(data["item_id"])

    def _on_item_truncated(self, data: Mapping[str, Any]) -> None:
        item = self._items.get(data["item_id"])
        if item is not None and not item.interrupted:
            self._items[item.id] = replace(item, interrupted=True)
        span = self._truncating.pop(data["item_id"], None)
        if span is not None:
            # the server cut its transcript to what was heard: ask for it, once the response
            # no longer changes the item
            _remember(self._retrieving, data["item_id"], span)
            self._retrieve_later.append(data["item_id"])
            if not self._active:
                self._ask_truncated_text()

    def _on_item_retrieved(self, data: Mapping[str, Any]) -> None:
        self._on_item(data)
        it = data["item"]
        if self._retrieving.pop(it["id"], None) is None:
            return
        self._held.pop(it["id"], None)
        text = self._content_text("conversation.item.retrieved", it.get("content"))
        self._announce(it["id"], text.strip(), True)

    # -- items ----------------------------------------------------------------------------

    def _upsert(self, event_type: str, it: Mapping[str, Any], after: str | None) -> None:
        """Record an item the server reported; its echoes (by id, or by call id or text for
        items rtd created under its own id) change the one entry, never add another."""
        kind = it.get("type") or "message"
        if kind not in _KINDS:
            return
        item_id = it["id"]
        role = it.get("role") if kind == "message" else None
        call_id = it.get("call_id") or None
        name = it.get("name") or None
        text = self._content_text(event_type, it.get("content"))
        # a response cut short (barge-in, cancel) leaves its message items incomplete
        cut = kind == "message" and it.get("status") == "incomplete"
        if item_id not in self._items:
            alias = None
            if call_id and kind != "message":
                alias = self._by_call.get((kind, call_id))
            elif role == "user" and text:
                alias = next((i for i, t in self._unconfirmed.items() if t == text), None)
            if alias is not None:
                self._rename(alias, item_id)
        self._unconfirmed.pop(item_id, None)
        old = self._items.get(item_id)
        if old is None:
            self._add(Item(item_id, kind, role, text, call_id, name, it.get("arguments"),
                           it.get("output"), cut), after)
            return
        new = replace(
            old, role=old.role or role, text=old.text or text, call_id=old.call_id or call_id,
            name=old.name or name,
            arguments=old.arguments or it.get("arguments") or old.arguments,
            output=old.output if old.output is not None else it.get("output"),
            interrupted=old.interrupted or cut)
        if new != old:
            self._items[item_id] = new
            if new.call_id and kind != "message":
                self._by_call[(kind, new.call_id)] = item_id

    def _content_text(self, event_type: str, content: Any) -> str:
        if not content:
            return ""
        parts = self._checker.elements(event_type, "item.content", content, CONTENT_PART)
        return "".join(p.get("text") or p.get("transcript") or "" for p in parts)

    def _set_text(self, item_id: str, role: str, text: str) -> None:
        item = self._items.get(item_id)
        if item is None:
            self._add(Item(item_id, "message", role, text))
        elif item.text != text:
            self._items[item_id] = replace(item, text=text)

    def _add(self, item: Item, after: str | None = None) -> None:
        if item.id in self._items:
            return
        if after is not None and after in self._items and self._order[-1] != after:
            self._order.insert(self._order.index(after) + 1, item.id)
        else:
            self._order.append(item.id)
        self._items[item.id] = item
        if item.call_id and item.kind != "message":
            self._by_call[(item.kind, item.call_id)] = item.id
        while len(self._order) > MAX_ITEMS:
            self._forget(self._order[0])

    def _rename(self, old: str, new: str) -> None:
        item = replace(self._items.pop(old), id=new)
        self._items[new] = item
        self._order[self._order.index(old)] = new
        if item.call_id and item.kind != "message":
            self._by_call[(item.kind, item.call_id)] = new
        self._unconfirmed.pop(old, None)

    def _forget(self, item_id: str) -> None:
        item = self._items.pop(item_id, None)
        if item is None:
            return
        self._order.remove(item_id)
        if item.call_id and self._by_call.get((item.kind, item.call_id)) == item_id:
            del self._by_call[(item.kind, item.call_id)]
        self._unconfirmed.pop(item_id, None)
        self._audio.pop(item_id, None)
        self._audio_bytes.pop(item_id, None)

    # -- sending --------------------------------------------------------------------------

    def _send(self, event: Mapping[str, Any], item_id: str | None = None) -> str:
        self._next_id += 1
        event_id = f"rtd_{self._next_id}"
        _remember(self._sent, event_id, (event["type"], item_id))
        self._out.append(Send(events.with_event_id(event, event_id)))
        return event_id

    def _send_output(self, call_id: str, output: str) -> None:
        self._next_item += 1
        item_id = f"rtd_item_{self._next_item}"
        self._send(events.function_call_output(call_id, output, item_id=item_id), item_id)
        self._add(Item(item_id, "function_call_output", None, "", call_id, output=output))

    def _owe(self, response: Mapping[str, Any] | None) -> None:
        """A sender asked for a response; its overrides (the latest wins) go with it."""
        self._owed = True
        if response:
            self._owed_response = dict(response)
        self._maybe_request()

    def _maybe_request(self) -> None:
        """Send the owed response.create if the turn is free: sending it during a response
        gets conversation_already_has_active_response."""
        if (self._owed and self._connected and not self._active and not self._requested
                and not self._running):
            self._owed = False
            self._requested = True
            self._send(events.response_create(self._owed_response))
            self._owed_response = None

    def _drop_in_flight(self) -> None:
        """A connection ended: what was in flight on it is gone with it."""
        lost = len(self._running) + sum(map(len, self._collected.values()))
        if lost:
            logger.warning("connection lost with %d tool call(s) unanswered; their results "
                           "will be dropped", lost)
        for call_id in [*self._running, *(c for b in self._collected.values() for c in b)]:
            _remember(self._fates, call_id, "abandoned")
        if self._active or self._requested or self._owed or self._running:
            self._responses_done += 1
        self._running.clear()
        self._collected.clear()
        self._active, self._active_id = False, None
        self._requested = self._owed = self._cancel_on_start = False
        self._owed_response = None
        self._audio.clear()
        self._audio_bytes.clear()
        self.playing = None
        # the server's items are gone: cut items are told by estimate, turns start afresh
        for item_id in [*self._truncating, *self._retrieving]:
            self._truncation_failed(item_id)
        self._retrieve_later.clear()
        self._speech = None
        self._respond_on_commit = False
        self._coughs.clear()

    # -- publishing -----------------------------------------------------------------------

    def _publish(self, message: object) -> None:
        self._out.append(Publish(message))

    def _finish(self) -> list[Command]:
        out = self._out
        turn = self.turn
        if turn != self._published:
            self._published = turn
            out.append(Publish(turn))
        return out

    def _log_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.info(message, *args)


_HANDLERS: dict[str, Callable[[Conversation, Mapping[str, Any]], None]] = {
    "session.updated": Conversation._on_session_updated,
    "error": Conversation._on_error,
    "response.created": Conversation._on_response_created,
    "response.done": Conversation._on_response_done,
    "response.output_audio.delta": Conversation._on_audio_delta,
    "response.output_audio.done": Conversation._on_audio_done,
    "response.output_audio_transcript.delta": Conversation._on_transcript_delta,
    "response.output_audio_transcript.done": Conversation._on_transcript_done,
    "response.output_text.delta": Conversation._on_text_delta,
    "response.output_text.done": Conversation._on_text_done,
    "conversation.item.input_audio_transcription.delta": Conversation._on_user_transcript_delta,
    "conversation.item.input_audio_transcription.completed": Conversation._on_user_transcript,
    "conversation.item.input_audio_transcription.failed": Conversation._on_transcription_failed,
    "input_audio_buffer.speech_started": Conversation._on_speech_started,
    "input_audio_buffer.speech_stopped": Conversation._on_speech_stopped,
    "input_audio_buffer.committed": Conversation._on_committed,
    "response.function_call_arguments.done": Conversation._on_arguments_done,
    "conversation.item.added": Conversation._on_item,
    "conversation.item.created": Conversation._on_item,
    "conversation.item.done": Conversation._on_item,
    "conversation.item.retrieved": Conversation._on_item_retrieved,
    "response.output_item.added": Conversation._on_item,
    "response.output_item.done": Conversation._on_item,
    "conversation.item.deleted": Conversation._on_item_deleted,
    "conversation.item.truncated": Conversation._on_item_truncated,
}
