"""rtd's offline development peer: a local WebSocket server speaking the GA Realtime protocol.

The emulator stands in for the realtime service in tests, in `rtd demo` and while developing.
It is **not** the OpenAI service and never pretends to be: there is no model behind it. It
checks what clients send the way the service does (an unknown event type or a malformed field
gets an `error` event and the session stays open), detects speech in the input audio by energy,
answers from a *scenario*, and can inject faults (see "Faults" below): dropped and reset
connections, any close code, stalls, malformed frames, wrong field types, huge and binary frames,
duplicate events, errors in place of events, HTTP refusals of the upgrade.

    from rtd.emulator import Emulator

    with Emulator(scenario="tests/data/clock.toml", voice_engine="tones",
                  faults=[{"at": "response.done", "do": "duplicate", "turn": 1}]) as emu:
        ...  # connect a client to emu.url, then assert on emu.received / emu.sent

What tests can read (all thread-safe): `received` / `sent` (every client / server event, in
order, across connections), `sessions` (one `SessionRecord` per accepted connection:
`client_events`, `server_events`, `items` (the items the client created, in creation order,
with their ids), `input_audio` and `input_audio_bytes`, `id`, `expires_at`, `client_close`
(the client's close frame, None without one), `ended` (a threading.Event)), `injected` (the
faults fired so far), `attempts` (upgrade requests, refused ones included), `connections`,
`headers`, `paths`, `input_audio`, and `wait_for` / `wait_for_sent` / `wait_for_injected` for
past-or-future events. `rescript(scenario)` answers the turns that follow from another
scenario, so one emulator can serve a whole test module.

Behaviour worth knowing
-----------------------
- Any path is accepted for the WebSocket; `?model=` is recorded (default "gpt-realtime-2").
  With `api_key` set, `Authorization: Bearer <key>` or `api-key: <key>` is required (HTTP 401
  otherwise, or an `invalid_api_key` error and close 3000 with `auth_failure="close"`). A
  client sending `OpenAI-Beta: realtime=v1` gets `beta_api_shape_disabled` and close 4000.
- The same port answers `POST /v1/realtime/client_secrets` (GA's ephemeral keys: `value`,
  `expires_at`, `session`); with `api_key` set a wrong key gets 401; an issued secret is
  accepted as the key of a later connection, which starts with the secret's session.
- `dialect="beta"` or `"xai"` (`rtd emulate --dialect`) speaks those servers' shape on the
  socket instead (see `rtd.emulator.dialect`); `received` and `sent` stay GA, with the
  wire's shape beside it (`_wire`, `_wire_types`).
- Each connection is a new, empty conversation. The scenario's turn counter belongs to the
  emulator, not the connection: after a reconnect the next user turn is the next scripted turn.
- A user turn is an input audio buffer committed (by the VAD or `input_audio_buffer.commit`), or
  a user message item created with `conversation.item.create` and followed by `response.create`.
  A `function_call_output` item is answered (its turn's `then`) by the next response only while
  no message item follows it: a message after it (a client replaying the conversation into a
  new session, the user's next words) makes it history.
  A `response.create` with no new user input, or with `"conversation": "none"`, gets the
  default reply and does not use up a turn.
- Server VAD is energy based: 20 ms frames above -60 + 50 * threshold dBFS for 60 ms start
  speech; `silence_duration_ms` of quieter frames end it. `semantic_vad` uses the same detector
  with a silence of 1200/800/400 ms for eagerness low/medium (auto)/high. `idle_timeout_ms` and
  noise reduction are accepted and ignored. Speech that starts during a response cancels it
  when `interrupt_response` is true; speech that ends while a response is still active is
  answered as soon as that response has ended.
- `conversation.item.truncate` refuses an `audio_end_ms` beyond the audio sent for the item
  ("Audio content of N ms is already shorter than M ms", as the service does) and cuts the
  item's stored transcript to the words spoken by then, also when the item is still streaming
  (`conversation.item.retrieve` then returns what was heard; `response.output_audio_transcript
  .done` still carries what was generated).
- Transcription events are sent only when `audio.input.transcription` names a model; they carry
  the turn's `transcript`, or "[emulator: 1.8 s of speech]" when the scenario has none.
- Audio replies come in 150 ms `response.output_audio.delta` chunks, sent as fast as the client
  reads them (the service also sends faster than real time), with the transcript spread across
  them. An item ends with `conversation.item.done` then `response.output_item.done` (the order
  seen on the live service), and `response.done` is followed by `rate_limits.updated`. Usage
  figures in `response.done` are rough estimates, not billing.
- `session.created` carries `session.expires_at` (integer unix seconds): one hour from the
  connection, or `max_session_seconds` (`rtd emulate --max-session`). With that knob each
  connection ends like the service's 60-minute limit, at `expires_at`: an `error` with code
  `session_expired` ("Your session hit the maximum duration of N minutes.", or "... of N
  seconds." below a whole minute), then close 1001 "maximum duration".
- Only `audio/pcm` at 24 kHz is supported (the service also takes G.711); `audio.output.speed`
  is accepted and ignored.

Scenario files (TOML)
---------------------
On each user turn N (1-based, counted per emulator) the emulator does what `[[turn]]` N says;
past the last turn it replies with `default_reply`::

    default_reply = "I heard you."        # optional; also the reply without any scenario

    [[turn]]
    transcript = "What time is it?"       # what the emulator "heard" (input transcription)
    call = "clock"                        # the model calls this tool ...
    arguments = {}                        # ... with these arguments (a table, sent as JSON)
    then = "It is {time} on {date}."      # reply after the tool output arrives

    [[turn]]
    transcript = "Thanks"
    reply = "You're welcome."             # a plain spoken reply

`then` is filled with `str.format_map` from the tool output parsed as a JSON object; when the
output is not a JSON object or a placeholder is missing, the raw output is spoken instead.
A call turn without `then` speaks the raw output.

A turn may instead be a fault that replaces its whole response (at most one per turn; not
combined with reply/call; there is no `response.created`):

    error = {type = "server_error", code = "overloaded", message = "Try again."}
    close = 1001                          # close the WebSocket with this code (1000-4999)
    drop = true                           # end TCP with a FIN, no close frame

and `stall_seconds = 2.5`, which may be combined with anything: a reply or call turn sends
`response.created`, then waits (a `response.cancel` ends the wait), then answers; a fault turn
waits before the fault and sends nothing meanwhile.

Faults
------
`[[fault]]` tables inject a fault into otherwise normal traffic, at a chosen point. The same
tables can be given to `Emulator(faults=[...])` (as dicts, `Fault` objects, or TOML text) and to
`rtd emulate --fault '<the table's inside>'` (repeatable); they add to the scenario's own.

    [[fault]]
    at = "response.output_audio.delta"    # the server event it is anchored on, or "upgrade"
    nth = 3                               # on the 3rd such event (default 1) ...
    turn = 1                              # ... while user turn 1 is the latest (default: any)
    times = 1                             # fires this often in all (default 1; "always")
    when = "after"                        # before | after | instead of the event (default after)
    do = "drop"                           # what happens (below)

Where: `at` is a GA server event type the emulator sends (`session.created`,
`session.updated`, `response.created`, `response.output_audio.delta`,
`response.function_call_arguments.done`, `response.done`, `rate_limits.updated`, `error`, the
`conversation.item.*` and `input_audio_buffer.*` events, ...). A fault fires on the nth
matching event and on every later one while it has firings left: `times` caps it across the
emulator, so a test injects one fault (`times = 1`, the default) and the next turn is normal,
or breaks every matching event (`times = "always"`). `nth` counts per response for the events
a response sends (so `nth = 3` is "after the 3rd audio delta of a reply"), per connection for
the others (`nth = 2` on `session.updated`: the second on that connection), and per emulator
for `at = "upgrade"` (the nth connection attempt, refused ones included). `turn = N`
matches while turn N is the latest user turn (events of a response to turn N, including the
reply after its tool call; `at = "upgrade"` with `turn = N`: a reconnect after turn N). When
several faults fire on one event they act in file order; "instead" means the event itself is
not sent (the emulator's own state moves on as if it had been).

What (`do`), with its keys:

- `drop`: end TCP with a FIN and no close frame (what was sent before still arrives).
- `reset`: end TCP with an RST (SO_LINGER 0), after what was sent before has left.
- `close`: a close frame with `code` (1000-4999; codes the RFC keeps off the wire, such as
  1005, 1006, 1015 or 2999, are sent anyway, then a FIN) and `reason` (at most 123 bytes);
  without `code`, an empty close frame.
- `stall_sending`: keep reading (and recording) client events but send nothing, not even
  answers to what was read, for `seconds` (default: until the connection ends); then what was
  held back is sent in order. `when = "before"` on `response.created` stalls with a response
  due and nothing announced. WebSocket pings from the client are still answered.
- `stall_reading`: a frozen peer: stop reading the socket (the client's sends block once the
  buffers fill; its pings go unanswered) and send nothing, for `seconds` (default: until the
  client goes away, noticed from the TCP state on Linux).
- `send`: one extra frame: `text = "..."` verbatim (e.g. "not json"), or `json = ...` any value
  as JSON (e.g. `{}` or `{event_id = "x"}` without a type, `{type = "error", error = "boom"}`);
  `binary = true` sends it as a binary frame; `pad_to = N` pads it with spaces (still valid
  JSON) to N bytes, e.g. 10485760 for a 10 MiB frame.
- `replace`: the event itself, changed: `unset = ["item_id"]`, `null = ["session.audio"]` (TOML
  has no null), `set = {delta = 5}` or `set = {"response.output" = ["oops"]}` (dotted paths,
  digits index lists; a table merges into the table already there), then `binary`/`pad_to`.
- `duplicate`: the event again, `copies` more times (default 1), with fresh event ids unless
  `same_event_id = true`. On `response.done` of a tool call turn the call arrives twice.
- `error`: an `error` event with `error = {type, code, message}` (default a server_error);
  `when = "instead"` on `response.done` sends it in place of the response's end.
- `http` (only `at = "upgrade"`): refuse the upgrade with `status` (e.g. 503, 429), an optional
  `retry_after` (seconds or an HTTP date), more `headers = {name = "value"}` and a JSON error
  body (`error = {...}` overrides it).
- At the upgrade, `stall_sending` never answers the handshake (for `seconds`, then it goes
  on), and `drop` / `reset` end TCP before any answer.

Examples:

    [[fault]]                             # the first reply breaks off after 3 audio deltas
    at = "response.output_audio.delta"
    nth = 3
    do = "reset"

    [[fault]]                             # the first connection attempt is refused
    at = "upgrade"
    do = "http"
    status = 503
    retry_after = 2

    [[fault]]                             # turn 2's response.done arrives twice
    at = "response.done"
    turn = 2
    do = "duplicate"

    [[fault]]                             # every audio delta's `delta` is an integer
    at = "response.output_audio.delta"
    times = "always"
    do = "replace"
    set = {delta = 5}

Problems in a file (unknown keys, wrong types, `reply` with `call`, a key the action does not
use, ...) raise `rtd.exceptions.ConfigError`, one line per problem:
`<path>: turn N: key: what is wrong` or `<path>: fault N: key: what is wrong`
(`Emulator(faults=...) item N: ...` and `--fault N: ...` for the others).

Demo data
---------
`DEMO_SCENARIO` asks "What time is it?" and calls the `clock` tool; `DEMO_QUESTION_WAV` is that
question spoken by espeak-ng as a 16 kHz mono 16-bit WAV (so the daemon's resampling is
exercised), made with::

    espeak-ng -v en-us -w q.wav "What time is it?"
    sox q.wav -D -r 16000 -c 1 -b 16 demo-question.wav gain -n -3 pad 0.5 1.5
"""

from __future__ import annotations

from pathlib import Path

from rtd.emulator.scenario import (
    Fault,
    Scenario,
    ScriptedError,
    Turn,
    format_then,
    load_scenario,
    parse_faults,
)
from rtd.emulator.server import BANNER, Emulator, serve
from rtd.emulator.state import SessionRecord
from rtd.emulator.voice import synthesize

_DATA = Path(__file__).resolve().parent / "data"

DEMO_SCENARIO: Path = _DATA / "demo.toml"
"""One turn: "What time is it?" -> call `clock` -> "It is {time} on {date}."."""

DEMO_QUESTION_WAV: Path = _DATA / "demo-question.wav"
""""What time is it?" spoken, 16 kHz mono 16-bit, with 0.5 s / 1.5 s of silence around it."""

__all__ = [
    "BANNER",
    "DEMO_QUESTION_WAV",
    "DEMO_SCENARIO",
    "Emulator",
    "Fault",
    "Scenario",
    "ScriptedError",
    "SessionRecord",
    "Turn",
    "format_then",
    "load_scenario",
    "parse_faults",
    "serve",
    "synthesize",
]
