"""rtd's offline development peer: a local WebSocket server speaking the GA Realtime protocol.

The emulator stands in for the realtime service in tests, in `rtd demo` and while developing.
It is **not** the OpenAI service and never pretends to be: there is no model behind it. It
checks what clients send the way the service does (an unknown event type or a malformed field
gets an `error` event and the session stays open), detects speech in the input audio by energy,
answers from a *scenario*, and can inject faults (error events, closes, stalls, dropped
connections).

    from rtd.emulator import Emulator

    with Emulator(scenario="tests/data/clock.toml", voice_engine="tones") as emu:
        ...  # connect a client to emu.url, then assert on emu.received / emu.sent

Behaviour worth knowing
-----------------------
- Any path is accepted; `?model=` is recorded (default "gpt-realtime-2"). With `api_key` set,
  `Authorization: Bearer <key>` or `api-key: <key>` is required (HTTP 401 otherwise, or an
  `invalid_api_key` error and close 3000 with `auth_failure="close"`). A client sending
  `OpenAI-Beta: realtime=v1` gets `beta_api_shape_disabled` and close 4000.
- Each connection is a new, empty conversation. The scenario's turn counter belongs to the
  emulator, not the connection: after a reconnect the next user turn is the next scripted turn.
- A user turn is an input audio buffer committed (by the VAD or `input_audio_buffer.commit`), or
  a user message item created with `conversation.item.create` and followed by `response.create`.
  A `response.create` with no new user input, or with `"conversation": "none"`, gets the
  default reply and does not use up a turn.
- Server VAD is energy based: 20 ms frames above -60 + 50 * threshold dBFS for 60 ms start
  speech; `silence_duration_ms` of quieter frames end it. `semantic_vad` uses the same detector
  with a silence of 1200/800/400 ms for eagerness low/medium (auto)/high. `idle_timeout_ms` and
  noise reduction are accepted and ignored. Speech that starts during a response cancels it
  when `interrupt_response` is true; speech that ends while a response is still active is
  answered as soon as that response has ended.
- Transcription events are sent only when `audio.input.transcription` names a model; they carry
  the turn's `transcript`, or "[emulator: 1.8 s of speech]" when the scenario has none.
- Audio replies come in 150 ms `response.output_audio.delta` chunks, sent as fast as the client
  reads them (the service also sends faster than real time), with the transcript spread across
  them. An item ends with `conversation.item.done` then `response.output_item.done` (the order
  seen on the live service), and `response.done` is followed by `rate_limits.updated`. Usage
  figures in `response.done` are rough estimates, not billing.
- `max_session_seconds` ends each connection like the service's 60-minute limit: an error event
  with code `session_expired`, then close 1001 "maximum duration".
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

Faults, each replacing the turn's response (at most one per turn; not combined with
reply/call):

    error = {type = "server_error", code = "overloaded", message = "Try again."}
    close = 1001                          # close the WebSocket with this code
    drop = true                           # drop the TCP connection (no close frame)

and `stall_seconds = 2.5`, which may be combined with anything: a reply or call turn sends
`response.created`, then waits (a `response.cancel` ends the wait), then answers; a fault turn
waits before the fault and sends nothing meanwhile.

Problems in a file (unknown keys, wrong types, `reply` with `call`, ...) raise
`rtd.exceptions.ConfigError`, one line per problem: `<path>: turn N: key: what is wrong`.

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

from rtd.emulator.scenario import Scenario, ScriptedError, Turn, format_then, load_scenario
from rtd.emulator.server import BANNER, Emulator, serve
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
    "Scenario",
    "ScriptedError",
    "Turn",
    "format_then",
    "load_scenario",
    "serve",
    "synthesize",
]
