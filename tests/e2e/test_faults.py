"""The fault suite: the real `rtd run` process against a hostile realtime server.

One fault at a time, injected by the emulator into an otherwise normal conversation. After each
one the daemon must still be alive (or have exited at once with the right code for an answer
that retrying cannot fix), a normal turn afterwards must reach the speaker WAV and the
transcript, what was written before the fault must still be there, nothing may be a
traceback, and SIGTERM must stop it within 2 s with a valid WAV.

Turns are typed with `rtd say` through the socket sender, so each test decides exactly when a
turn starts; the microphone is off.
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import pytest
from rtdproc import KEY, wait_until

from rtd.emulator import Emulator
from rtd.emulator.voice import synthesize

SCENARIO = """
[[turn]]
transcript = "What time is it?"
call = "clock"
arguments = {}
then = "It is {time} on {date}."

[[turn]]
reply = "The second answer arrived."

[[turn]]
reply = "The third answer arrived."
"""
SECOND = "The second answer arrived."
STOP_WITHIN = 2.0
"""Seconds SIGTERM may take to stop rtd, whatever the server does."""


def _config(path: Path, url: str, tmp: Path) -> Path:
    path.write_text(f"""
[provider]
name = "custom"
url = "{url}"
api_key_env = "OPENAI_API_KEY"
# short deadlines, so a stalled peer is noticed within the test's patience
ping_interval = 1.0
pong_timeout = 2.0
response_timeout = 3.0

[session]
transcription_model = ""

[audio.input]
backend = "none"

[audio.output]
backend = "file"
path = "{tmp / 'speaker.wav'}"

[log]
level = "info"

[tools.clock]

[senders.socket]
path = "{tmp / 'rtd.sock'}"

[receivers.transcript_log]
path = "{tmp / 'transcript.jsonl'}"
""")
    return path


class Run:
    """One daemon against one emulator with one fault."""

    def __init__(self, run_rtd: Any, env: dict[str, str], tmp: Path,
                 faults: list[dict[str, Any]], **emu: Any) -> None:
        (tmp / "scenario.toml").write_text(SCENARIO)
        self.tmp = tmp
        self.env = env
        self.emu = Emulator(scenario=tmp / "scenario.toml", voice_engine="tones", faults=faults,
                            **emu)
        self.emu.start()
        self.conf = _config(tmp / "rtd.toml", self.emu.url, tmp)
        self.d = run_rtd("run", "--config", str(self.conf))
        self.speaker = tmp / "speaker.wav"
        self.transcript = tmp / "transcript.jsonl"

    def say(self, text: str) -> None:
        """`rtd say`, retried while the daemon is (re)starting its socket."""
        def sent() -> bool:
            done = subprocess.run([sys.executable, "-m", "rtd", "say", "--config",
                                   str(self.conf), text], capture_output=True, text=True,
                                  timeout=20, env=self.env)
            return done.returncode == 0
        assert wait_until(sent, timeout=20, interval=0.2), self.d.output

    def transcript_lines(self) -> list[dict[str, Any]]:
        if not self.transcript.exists():
            return []
        return [json.loads(line) for line in self.transcript.read_text().splitlines()]

    def assistant_said(self, text: str, timeout: float = 30) -> None:
        ok = wait_until(lambda: any(r["role"] == "assistant" and text in r["text"]
                                    for r in self.transcript_lines()), timeout, 0.1)
        assert ok, f"no assistant line with {text!r} in the transcript:\n{self.d.output}"

    def heard(self, text: str, timeout: float = 30) -> None:
        spoken = synthesize(text, "tones")
        ok = wait_until(lambda: _pcm(self.speaker).find(spoken) >= 0, timeout, 0.1)
        assert ok, f"{text!r} never reached the speaker:\n{self.d.output}"

    def close(self) -> None:
        self.emu.stop()


def _pcm(path: Path) -> bytes:
    try:
        with wave.open(str(path)) as w:
            return w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error):
        return b""


@pytest.fixture
def faulty(run_rtd, env, tmp_path):
    runs: list[Run] = []

    def start(*faults: dict[str, Any], **emu: Any) -> Run:
        run = Run(run_rtd, env, tmp_path, list(faults), **emu)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()


def _survives(run: Run) -> None:
    """After the fault: a normal turn reaches speaker and transcript; then a clean stop."""
    before = run.transcript_lines()
    spoken_before = _pcm(run.speaker)
    run.say("And now?")
    run.assistant_said(SECOND)
    run.heard(SECOND)
    assert run.d.proc.poll() is None, run.d.output
    # nothing written before the fault was lost
    assert run.transcript_lines()[: len(before)] == before
    assert _pcm(run.speaker)[: len(spoken_before)] == spoken_before
    code = run.d.stop(timeout=STOP_WITHIN)
    assert code == 0, run.d.output
    assert "Traceback" not in run.d.output, run.d.output
    assert KEY not in run.d.output
    with wave.open(str(run.speaker)) as w:  # a valid WAV
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)


def _first_turn(run: Run) -> None:
    run.d.wait_for_line("connected to", timeout=20)
    run.say("What time is it?")


# -- the connection goes away mid-reply ------------------------------------------------------

@pytest.mark.parametrize("do", ["drop", "reset"])
def test_tcp_ends_mid_reply(faulty, do):
    run = faulty({"at": "response.output_audio.delta", "nth": 2, "turn": 1, "do": do})
    _first_turn(run)
    run.emu.wait_for_injected(timeout=20)
    assert wait_until(lambda: len(run.emu.sessions) >= 2, timeout=20), run.d.output
    _survives(run)


@pytest.mark.parametrize("code", [1000, 1001, 1011, 4000, 4321, 1005])
def test_close_with_any_code_is_retried(faulty, code):
    run = faulty({"at": "response.created", "turn": 1, "do": "close", "code": code})
    _first_turn(run)
    run.emu.wait_for_injected(timeout=20)
    assert wait_until(lambda: len(run.emu.sessions) >= 2, timeout=20), run.d.output
    _survives(run)


# -- a stalled peer --------------------------------------------------------------------------

@pytest.mark.parametrize("do", ["stall_sending", "stall_reading"], ids=["silent", "frozen"])
def test_a_stalled_server_is_noticed_and_replaced(faulty, do):
    """Silent: it reads but says nothing while a reply is due. Frozen: it stops reading."""
    run = faulty({"at": "response.created", "when": "before", "turn": 1, "do": do})
    _first_turn(run)
    run.d.wait_for_line("stalled", timeout=20)
    assert wait_until(lambda: len(run.emu.sessions) >= 2, timeout=20), run.d.output
    _survives(run)


def test_sigterm_stops_rtd_behind_a_frozen_server(faulty):
    """Sends blocked behind a peer that stopped reading must not hold the process."""
    run = faulty({"at": "session.updated", "do": "stall_reading"})
    run.d.wait_for_line("connected to", timeout=20)
    run.emu.wait_for_injected(timeout=20)
    for n in range(20):  # fill the socket buffers with text turns
        subprocess.run([sys.executable, "-m", "rtd", "say", "--config", str(run.conf),
                        "x" * 3000 + str(n)], capture_output=True, timeout=20, env=run.env)
    assert run.d.stop(timeout=STOP_WITHIN) == 0, run.d.output
    assert "Traceback" not in run.d.output


# -- malformed events ------------------------------------------------------------------------

MALFORMED = {
    "audio delta not base64": {"at": "response.output_audio.delta", "turn": 1, "do": "replace",
                               "set": {"delta": 5}},
    "audio delta bad base64": {"at": "response.output_audio.delta", "turn": 1, "do": "replace",
                               "set": {"delta": "!!not base64!!"}},
    "audio delta without item_id": {"at": "response.output_audio.delta", "turn": 1,
                                    "do": "replace", "unset": ["item_id"]},
    "response.done response a string": {"at": "response.done", "turn": 1, "do": "replace",
                                        "set": {"response": "oops"}},
    "response.done output items strings": {"at": "response.done", "turn": 1, "do": "replace",
                                           "set": {"response.output": ["a", "b"]}},
    "arguments.done without call_id": {"at": "response.function_call_arguments.done",
                                       "turn": 1, "do": "replace", "unset": ["call_id"]},
    "error a string": {"at": "response.created", "turn": 1, "do": "send",
                       "json": {"type": "error", "error": "boom"}},
    "session.updated audio null": {"at": "session.updated", "do": "replace",
                                   "null": ["session.audio"]},
    "not JSON": {"at": "session.created", "do": "send", "text": "not json"},
    "JSON without a type": {"at": "session.created", "do": "send", "json": {"event_id": "x"}},
    "binary frame": {"at": "session.created", "do": "send", "text": "\u0000\u0001",
                     "binary": True},
    "10 MB frame": {"at": "response.done", "turn": 1, "do": "send",
                    "json": {"type": "rate_limits.updated", "rate_limits": []},
                    "pad_to": 10 * 1024 * 1024},
}


@pytest.mark.parametrize("fault", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_event_costs_only_itself(faulty, fault):
    run = faulty(fault)
    _first_turn(run)
    run.emu.wait_for_injected(timeout=20)
    _survives(run)
    # the connection was kept: one session, no reconnect
    assert len(run.emu.sessions) == 1, run.d.output


# -- repeated and missing events -------------------------------------------------------------

def test_a_duplicate_response_done_runs_the_tool_once(faulty):
    run = faulty({"at": "response.done", "turn": 1, "do": "duplicate", "copies": 2})
    _first_turn(run)
    run.assistant_said("It is ")
    run.emu.wait_for_injected(timeout=20)
    _survives(run)
    outputs = [e for e in run.emu.received if e["type"] == "conversation.item.create"
               and e["item"]["type"] == "function_call_output"]
    assert len(outputs) == 1
    assert run.d.output.count("tool: clock(") == 1


def test_an_error_in_place_of_response_done_does_not_block_the_next_turn(faulty):
    run = faulty({"at": "response.done", "when": "instead", "turn": 1, "do": "error",
                  "error": {"type": "server_error", "code": "overloaded", "message": "Busy."}})
    _first_turn(run)
    run.emu.wait_for_injected(timeout=20)
    _survives(run)


# -- refused upgrades ------------------------------------------------------------------------

def test_retry_after_on_a_503_is_honoured(faulty):
    run = faulty({"at": "upgrade", "do": "http", "status": 503, "retry_after": 2})
    line = run.d.wait_for_line("retrying in", timeout=20)
    assert "HTTP 503" in line
    run.d.wait_for_line("connected to", timeout=20)
    # the transport waited what the server asked (it says so), not its own 1 s backoff
    assert "retrying in 2.0 s" in line, line
    run.say("What time is it?")
    run.assistant_said("It is ")
    _survives(run)


@pytest.mark.parametrize(("fault", "emu", "code"), [
    ({"at": "upgrade", "do": "http", "status": 401}, {}, 77),
    (None, {"api_key": "sk-other", "auth_failure": "close"}, 77),
    ({"at": "upgrade", "do": "http", "status": 404}, {}, 78),
    ({"at": "session.created", "do": "error",
      "error": {"type": "invalid_request_error", "code": "beta_api_shape_disabled",
                "message": "The beta shape is switched off."}}, {}, 78),
], ids=["401", "invalid_api_key then 3000", "404", "beta_api_shape_disabled"])
def test_fatal_answers_exit_with_a_code_systemd_does_not_loop_on(faulty, fault, emu, code):
    run = faulty(*([fault] if fault else []), **emu)
    assert run.d.wait(timeout=20) == code, run.d.output
    assert "Traceback" not in run.d.output and KEY not in run.d.output
