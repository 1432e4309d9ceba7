"""On-demand conversations: the session actor with its real transport, the emulator as peer.

Nothing connects and no microphone audio leaves before a wake; a sleep or the idle cut-off
closes with a close frame and no reconnect; each wake is a fresh conversation.
"""

from __future__ import annotations

import time

import numpy as np
import pykka
import pytest
from rtdproc import wait_until

from rtd.actors.session import SessionActor, SessionPolicy, TransportSettings
from rtd.components import SenderContext
from rtd.emulator import Emulator
from rtd.messages import (
    AudioChunk,
    ConnectionState,
    InputAudio,
    Sleep,
    Wake,
)
from rtd.protocol.providers import Endpoint
from rtd.supervisor import Bus, Ping

UPDATE = {"type": "session.update", "session": {
    "type": "realtime", "output_modalities": ["audio"],
    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None},
              "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}}}}
FAST = TransportSettings(ping_interval=0.5, pong_timeout=1.0, response_timeout=2.0)


def quiet(n: int, start: int = 0) -> bytes:
    """``n`` samples of a signal far below any speech threshold, each block distinct."""
    return ((np.arange(start, start + n) % 7) - 3).astype("<i2").tobytes()


class Session:
    """The session actor routed on a bus, as the supervisor does, plus a sender's context."""

    def __init__(self, emu: Emulator, **policy: object) -> None:
        self.bus = Bus()
        self.seen: list[object] = []
        self.bus.observe(self.seen.append)
        self.bus.subscribe("audio_output", [AudioChunk])
        self.bus.subscribe("session", SessionActor.receives)
        self.ref = SessionActor.start(self.bus, lambda n, e: None, Endpoint(emu.url), UPDATE,
                                      transport=FAST,
                                      policy=SessionPolicy(start="on_demand", **policy))
        self.bus.attach("session", self.ref)
        assert self.ref.ask(Ping(), timeout=5) is None
        self.ctx = SenderContext("button", self.bus.publish)

    def of(self, kind: type) -> list:
        return [m for m in self.seen if isinstance(m, kind)]

    def connected(self, n: int = 1) -> bool:
        return sum(m.connected for m in self.of(ConnectionState)) >= n

    def closed(self, n: int = 1) -> bool:
        return sum(m.expected and not m.connected for m in self.of(ConnectionState)) >= n + 1


def answered(emu: Emulator, session: int) -> bool:
    return len(emu.sessions) > session and any(
        e["type"] == "response.done" for e in emu.sessions[session].server_events)


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def emu():
    with Emulator(voice_engine="tones") as e:
        yield e


def test_nothing_connects_and_no_audio_leaves_before_a_wake(emu):
    s = Session(emu)
    before, after = quiet(24000), quiet(12000, start=5)
    s.bus.publish(InputAudio(before))
    assert s.ref.ask(Ping(), timeout=5) is None
    assert emu.attempts == 0 and emu.sessions == []
    asleep = s.of(ConnectionState)
    assert len(asleep) == 1 and asleep[0].expected and not asleep[0].connected

    assert s.ctx.wake()
    assert wait_until(s.connected, timeout=10)
    for i in range(0, len(after), 2400):
        s.bus.publish(InputAudio(after[i:i + 2400]))
    assert wait_until(lambda: len(emu.sessions[0].input_audio) >= len(after), timeout=10)
    assert emu.sessions[0].input_audio == after  # what was said before the wake never left
    assert s.of(ConnectionState)[-1].connected  # the open is marked (the state: listening)


def test_sleep_closes_with_a_close_frame_and_does_not_reconnect(emu):
    s = Session(emu)
    s.bus.publish(Wake("control"))
    assert wait_until(s.connected, timeout=10)
    s.bus.publish(Sleep("control"))
    assert emu.sessions[0].ended.wait(10)
    assert emu.sessions[0].client_close is not None and emu.sessions[0].client_close[0] == 1000
    assert wait_until(s.closed, timeout=10)
    last = s.of(ConnectionState)[-1]
    assert not last.connected and last.expected and "sleep" in last.detail
    s.bus.publish(InputAudio(quiet(4800)))  # asleep again: not queued anywhere
    time.sleep(1.5)  # longer than the first reconnect delay: none may come
    assert len(emu.sessions) == 1 and emu.attempts == 1

    s.ctx.wake()  # a new conversation on a new connection
    assert wait_until(lambda: s.connected(2), timeout=10)
    assert len(emu.sessions) == 2


def test_idle_close_after_nobody_spoke_and_silent_frames_do_not_count(emu):
    s = Session(emu, idle_close_s=1.0)
    s.bus.publish(Wake("control"))
    assert wait_until(s.connected, timeout=10)
    deadline = time.monotonic() + 10
    n = 0
    while not s.closed() and time.monotonic() < deadline:
        s.bus.publish(InputAudio(quiet(2400, n)))  # 100 ms of near-silence, in real time
        n += 2400
        time.sleep(0.1)
    assert s.closed()
    assert "nobody spoke" in s.of(ConnectionState)[-1].detail
    assert emu.sessions[0].ended.wait(10)
    assert emu.sessions[0].client_close is not None and emu.sessions[0].client_close[0] == 1000
    assert len(emu.sessions) == 1


def test_text_from_a_sender_opens_the_conversation_and_is_answered(emu):
    s = Session(emu, idle_close_s=1.0)
    assert s.ctx.send_text("Hello?")
    assert wait_until(s.connected, timeout=10)
    assert wait_until(lambda: answered(emu, 0), timeout=10)
    texts = [e["item"]["content"][0]["text"] for e in emu.sessions[0].client_events
             if e["type"] == "conversation.item.create"]
    assert texts == ["Hello?"]
    assert s.of(AudioChunk)
    assert wait_until(s.closed, timeout=15)  # once the answer has played and nobody spoke


def test_each_wake_is_a_new_conversation(emu):
    s = Session(emu)
    s.ctx.send_text("First.")
    assert wait_until(lambda: answered(emu, 0), timeout=10)
    s.ctx.sleep()
    assert wait_until(s.closed, timeout=10)
    s.ctx.send_text("Second.")
    assert wait_until(lambda: answered(emu, 1), timeout=10)
    created = [e["item"]["content"][0]["text"] for e in emu.sessions[1].client_events
               if e["type"] == "conversation.item.create"]
    assert created == ["Second."]
