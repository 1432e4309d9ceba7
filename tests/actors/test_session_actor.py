"""The session actor with its real parts: transport and conversation, the emulator as peer.

The turn rules themselves are the conversation's and are tested there, event by event; these
tests check the glue: what reaches the wire, what reaches the bus, and which endings end the
daemon.
"""

from __future__ import annotations

import pykka
import pytest
from rtdproc import wait_until

from rtd.actors.session import SessionActor, TransportSettings
from rtd.emulator import Emulator
from rtd.exitcodes import EX_CONFIG, EX_NOPERM
from rtd.messages import (
    AudioChunk,
    ConnectionState,
    Fatal,
    ToolCall,
    ToolCallEvent,
    TurnState,
    UserText,
)
from rtd.protocol.providers import Endpoint, endpoint
from rtd.supervisor import Bus, Ping

SCENARIO = """
[[turn]]
call = "clock"
arguments = {}
then = "It is {time}."

[[turn]]
reply = "Hello again."
"""
UPDATE = {"type": "session.update", "session": {
    "type": "realtime", "output_modalities": ["audio"],
    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None},
              "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}},
    "tools": [{"type": "function", "name": "clock", "description": "The time.",
               "parameters": {"type": "object", "properties": {}}}]}}
FAST = TransportSettings(ping_interval=0.5, pong_timeout=1.0, response_timeout=2.0)


class Session:
    def __init__(self, emu: Emulator) -> None:
        self.bus = Bus()
        self.seen: list[object] = []
        self.bus.observe(self.seen.append)
        self.bus.subscribe("audio_output", [AudioChunk])  # as the speaker does
        # the client speaks whatever dialect the emulator does
        target = endpoint("custom", "gpt-realtime-2", None, emu.url,
                          dialect=emu.dialect.name) if emu.dialect.name != "ga" \
            else Endpoint(emu.url)
        self.ref = SessionActor.start(self.bus, lambda n, e: None,
                                      target, UPDATE, transport=FAST)
        assert self.ref.ask(Ping(), timeout=5) is None

    def of(self, kind: type) -> list:
        return [m for m in self.seen if isinstance(m, kind)]

    def tell(self, message: object) -> None:
        self.ref.tell(message)


@pytest.fixture(params=["ga", "beta", "xai"])
def emu(tmp_path, request):
    """The emulator in each dialect: the same conversation must hold in all of them."""
    (tmp_path / "s.toml").write_text(SCENARIO)
    with Emulator(scenario=tmp_path / "s.toml", voice_engine="tones",
                  dialect=request.param) as e:
        yield e


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def test_a_text_turn_with_a_tool_call_end_to_end(emu):
    s = Session(emu)
    assert wait_until(lambda: any(m.connected for m in s.of(ConnectionState)), timeout=10)
    first = emu.sessions[0].client_events[0]
    assert first["type"] == "session.update" and first["event_id"].startswith("rtd_")
    wire = first.get("_wire", first)["session"]  # what the socket carried
    if emu.dialect.name == "beta":
        assert (wire["modalities"], wire["input_audio_format"]) == (["audio", "text"], "pcm16")
    elif emu.dialect.name == "xai":
        assert wire["voice"] == "marin" and "type" not in wire
        assert wire["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    s.tell(UserText("What time is it?"))
    assert wait_until(lambda: s.of(ToolCall), timeout=10)
    call = s.of(ToolCall)[0]
    s.tell(ToolCallEvent(call.call_id, call.name, call.arguments, '{"time": "10:00"}'))
    assert wait_until(lambda: s.of(TurnState) and s.of(TurnState)[-1].idle
                      and s.of(TurnState)[-1].responses_done >= 2, timeout=10)
    assert s.of(AudioChunk)  # the spoken answer reached the bus once, for the speaker
    names = {"ga": "response.output_audio.delta", "beta": "response.audio.delta",
             "xai": "response.output_audio.delta"}
    deltas = [e for e in emu.sent if e["type"] == "response.output_audio.delta"]
    assert deltas and all(e.get("_wire_types", [e["type"]]) == [names[emu.dialect.name]]
                          for e in deltas)
    types = [e["type"] for e in emu.sessions[0].client_events]
    output = types.index("conversation.item.create", types.index("conversation.item.create") + 1)
    assert "response.create" in types[output:]


def test_a_dropped_connection_is_replaced_and_the_next_turn_answered(tmp_path):
    (tmp_path / "s.toml").write_text(SCENARIO)
    with Emulator(scenario=tmp_path / "s.toml", voice_engine="tones",
                  faults=[{"at": "response.created", "do": "drop", "turn": 1}]) as emu:
        s = Session(emu)
        s.tell(UserText("What time is it?"))
        assert wait_until(lambda: len(emu.sessions) >= 2, timeout=15)
        assert wait_until(lambda: sum(m.connected for m in s.of(ConnectionState)) >= 2,
                          timeout=15)
        s.tell(UserText("Hello?"))
        assert wait_until(lambda: any(
            e["type"] == "response.done" for e in emu.sessions[1].server_events), timeout=15)
        assert s.of(Fatal) == []


@pytest.mark.parametrize(("emu_kw", "code"), [
    ({"api_key": "sk-right"}, EX_NOPERM),
    ({"api_key": "sk-right", "auth_failure": "close"}, EX_NOPERM),
    ({"faults": [{"at": "session.created", "do": "error", "error": {
        "type": "invalid_request_error", "code": "beta_api_shape_disabled",
        "message": "no"}}]}, EX_CONFIG),
], ids=["401", "invalid_api_key then 3000", "beta_api_shape_disabled"])
def test_fatal_answers_publish_fatal_with_their_exit_code(emu_kw, code):
    with Emulator(voice_engine="tones", **emu_kw) as emu:
        s = Session(emu)
        assert wait_until(lambda: s.of(Fatal), timeout=10)
        assert s.of(Fatal)[0].exit_code == code


def test_stop_never_waits_on_a_frozen_server():
    with Emulator(voice_engine="tones",
                  faults=[{"at": "session.updated", "do": "stall_reading"}]) as emu:
        s = Session(emu)
        emu.wait_for_injected(timeout=10)
        for _ in range(50):
            s.tell(UserText("x" * 20000))
        s.ref.stop(block=True, timeout=3)  # raises pykka.Timeout if the actor hung
