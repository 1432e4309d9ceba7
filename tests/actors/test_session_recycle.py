"""Recycling with replay: the session actor, its real transport, the emulator's session limit.

The emulator ends each session at its ``expires_at`` (``max_session_seconds``) with
``session_expired`` and 1001, like the service at 60 minutes. With a short limit and a short
``recycle_before_s`` the session moves to a new connection several times in a row; every new
session must get the conversation so far, in order and once, and the microphone stream (a
low-level noise signal from a fixed seed, which identifies every sample) must arrive whole:
none lost, none doubled.
"""

from __future__ import annotations

import threading

import numpy as np
import pykka
import pytest
from rtdproc import wait_until

from rtd.actors.session import SessionActor, SessionPolicy, TransportSettings
from rtd.emulator import Emulator
from rtd.messages import (
    AudioChunk,
    ConnectionState,
    Fatal,
    InputAudio,
    StatusReport,
    ToolCall,
    ToolCallEvent,
    TurnState,
    UserText,
)
from rtd.protocol.providers import Endpoint
from rtd.supervisor import Bus, Ping

SCENARIO = """
[[turn]]
call = "clock"
arguments = {zone = "UTC"}
then = "It is {time}."

[[turn]]
reply = "You are welcome."
"""
UPDATE = {"type": "session.update", "session": {
    "type": "realtime", "output_modalities": ["audio"],
    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None},
              "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}},
    "tools": [{"type": "function", "name": "clock", "description": "The time.",
               "parameters": {"type": "object", "properties": {}}}]}}
FAST = TransportSettings(ping_interval=0.5, pong_timeout=1.0, response_timeout=2.0)
OUTPUT = '{"time": "10:00"}'
BLOCK = 1200  # samples: 50 ms


def noise(seconds: float, seed: int = 11) -> bytes:
    """+-8 (about -72 dBFS): never speech to the emulator's detector."""
    rng = np.random.default_rng(seed)
    return rng.integers(-8, 9, int(24000 * seconds)).astype("<i2").tobytes()


class Session:
    def __init__(self, emu: Emulator, **policy: object) -> None:
        self.bus = Bus()
        self.seen: list[object] = []
        self.bus.observe(self.seen.append)
        self.bus.subscribe("audio_output", [AudioChunk])
        self.ref = SessionActor.start(self.bus, lambda n, e: None, Endpoint(emu.url), UPDATE,
                                      transport=FAST, policy=SessionPolicy(**policy))
        assert self.ref.ask(Ping(), timeout=5) is None

    def of(self, kind: type) -> list:
        return [m for m in self.seen if isinstance(m, kind)]

    def idle_after(self, responses: int) -> bool:
        turns = self.of(TurnState)
        return bool(turns) and turns[-1].idle and turns[-1].responses_done >= responses

    def session_recycles(self) -> int:
        return self.ref.proxy().recycles.get(timeout=5)

    def tool_turn(self) -> None:
        """The user asks; the model calls the clock; rtd answers it; the model replies."""
        self.ref.tell(UserText("What time is it?"))
        assert wait_until(lambda: self.of(ToolCall), timeout=10)
        call = self.of(ToolCall)[0]
        self.ref.tell(ToolCallEvent(call.call_id, call.name, call.arguments, OUTPUT))
        assert wait_until(lambda: self.idle_after(2), timeout=10)


def pump(ref: pykka.ActorRef, pcm: bytes, stop: threading.Event) -> threading.Thread:
    """The microphone: 50 ms blocks at about real time."""
    def run() -> None:
        for i in range(0, len(pcm), BLOCK * 2):
            ref.tell(InputAudio(pcm[i:i + BLOCK * 2]))
            if stop.wait(0.05):
                return
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def created_items(emu: Emulator, session: int) -> list[dict]:
    return [e["item"] for e in emu.sessions[session].client_events
            if e["type"] == "conversation.item.create"]


def shape(item: dict) -> tuple:
    """What a replayed item must carry, without the ids."""
    if item["type"] == "message":
        part = item["content"][0]
        return item["role"], part["type"], part["text"]
    if item["type"] == "function_call":
        return "call", item["call_id"], item["name"], item["arguments"]
    return "output", item["call_id"], item["output"]


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def test_several_recycles_in_a_row_replay_everything_and_keep_the_microphone_whole(tmp_path):
    (tmp_path / "s.toml").write_text(SCENARIO)
    with Emulator(scenario=tmp_path / "s.toml", voice_engine="tones",
                  max_session_seconds=3) as emu:
        s = Session(emu, recycle_before_s=2.0)
        assert wait_until(lambda: s.of(ConnectionState), timeout=10)
        pcm, stop = noise(12.0), threading.Event()
        mic = pump(s.ref, pcm, stop)
        s.tool_turn()
        assert wait_until(lambda: len(emu.sessions) >= 4, timeout=30)  # three recycles
        mic.join(30)
        assert wait_until(
            lambda: sum(len(x.input_audio) for x in emu.sessions) >= len(pcm), timeout=10)
        sessions = emu.sessions

        # the microphone: every sample once, in order, across all switches
        assert b"".join(x.input_audio for x in sessions) == pcm
        # every switch closed the old connection politely before its limit
        for old in sessions[:-1]:
            assert old.ended.wait(10)
            assert old.client_close is not None and old.client_close[0] == 1000
            assert not any(e["type"] == "error" and e["error"]["code"] == "session_expired"
                           for e in old.server_events)

        server = sessions[0].server_events
        asked = [e for e in server if e["type"] == "response.function_call_arguments.done"][0]
        answer = [e for e in server
                  if e["type"] == "response.output_audio_transcript.done"][-1]["transcript"]
        expected = [("user", "input_text", "What time is it?"),
                    ("call", asked["call_id"], "clock", asked["arguments"]),
                    ("output", asked["call_id"], OUTPUT),  # exactly the string sent before
                    ("assistant", "output_text", answer)]
        assert [shape(i) for i in created_items(emu, 0)] == [expected[0], expected[2]]
        for later in range(1, len(sessions)):
            replayed = created_items(emu, later)
            assert [shape(i) for i in replayed] == expected  # in order, once each
            assert len({i["id"] for i in replayed}) == len(replayed)
            kinds = [e["type"] for e in sessions[later].client_events]
            assert "response.create" not in kinds  # the replay asks for no answer
            assert kinds[0] == "session.update"
            assert kinds[1:1 + len(expected)] == ["conversation.item.create"] * len(expected)
        assert s.session_recycles() >= 3
        assert s.of(Fatal) == []
        assert wait_until(lambda: s.of(StatusReport)
                          and s.of(StatusReport)[-1].fields["recycles"] >= 3, timeout=5)
        report = s.of(StatusReport)[-1]
        assert report.source == "session"
        assert report.fields["tool_calls"] == 1 and report.fields["turns"] == 1
        assert report.fields["reconnects"] == 0 and report.fields["dropped_audio_ms"] == 0

        # the conversation goes on in the newest session, with its history
        s.ref.tell(UserText("Thanks"))
        assert wait_until(lambda: s.idle_after(3), timeout=10)


def test_a_dropped_connection_reconnects_into_the_replayed_conversation(tmp_path):
    (tmp_path / "s.toml").write_text(SCENARIO)
    with Emulator(scenario=tmp_path / "s.toml", voice_engine="tones",
                  faults=[{"at": "response.done", "do": "drop", "turn": 2}]) as emu:
        s = Session(emu)
        assert wait_until(lambda: s.of(ConnectionState), timeout=10)
        s.tool_turn()
        s.ref.tell(UserText("Thanks"))
        assert wait_until(lambda: len(emu.sessions) >= 2, timeout=15)
        assert wait_until(lambda: len(created_items(emu, 1)) >= 5, timeout=15)
        replayed = [shape(i) for i in created_items(emu, 1)]
        assert replayed[:3] == [("user", "input_text", "What time is it?"),
                                ("call", replayed[1][1], "clock", '{"zone": "UTC"}'),
                                ("output", replayed[1][1], OUTPUT)]
        assert replayed[3][:2] == ("assistant", "output_text")
        assert replayed[4] == ("user", "input_text", "Thanks")
        assert "response.create" not in [e["type"] for e in emu.sessions[1].client_events]


def test_without_expires_at_the_session_is_assumed_to_last_the_default(tmp_path):
    with Emulator(voice_engine="tones", faults=[
            {"at": "session.created", "do": "replace", "unset": ["session.expires_at"],
             "times": "always"}]) as emu:
        s = Session(emu, default_session_s=2.5, recycle_before_s=1.5)
        s.ref.tell(UserText("Hello"))
        assert wait_until(lambda: len(emu.sessions) >= 2, timeout=15)
        assert wait_until(lambda: created_items(emu, 1), timeout=10)
        assert [shape(i)[:2] for i in created_items(emu, 1)][0] == ("user", "input_text")
        assert emu.sessions[0].ended.wait(10)
        assert emu.sessions[0].client_close is not None



def test_after_session_expired_the_reconnect_replays_the_conversation():
    # the successor connection is refused once, so the session reaches its limit
    # (5 s: time for the turn to end well before the limit, even on a loaded machine)
    with Emulator(voice_engine="tones", max_session_seconds=5,
                  faults=[{"at": "upgrade", "nth": 2, "do": "http", "status": 503}]) as emu:
        s = Session(emu, recycle_before_s=2.0)
        s.ref.tell(UserText("Hello"))
        assert wait_until(lambda: s.idle_after(1), timeout=10)
        assert wait_until(lambda: len(emu.sessions) >= 2 and created_items(emu, 1),
                          timeout=20)
        first = emu.sessions[0]
        assert first.ended.wait(10)
        assert any(e["type"] == "error" and e["error"]["code"] == "session_expired"
                   for e in first.server_events)
        replayed = [shape(i) for i in created_items(emu, 1)]
        answer = [e for e in first.server_events
                  if e["type"] == "response.output_audio_transcript.done"][-1]["transcript"]
        assert replayed == [("user", "input_text", "Hello"),
                            ("assistant", "output_text", answer)]
        assert s.session_recycles() == 0
