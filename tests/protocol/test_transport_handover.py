"""The transport's handover (a second connection beside the first, then a switch) and its
held audio, against the real emulator on loopback.

What matters is the microphone stream: across a switch none of it may be lost or sent twice,
and what the caller puts first (a replay) goes before it. The signal is low-level noise from a
fixed seed, so the emulator's records identify every sample.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from rtd.emulator import Emulator
from rtd.protocol import events
from rtd.protocol.endings import Ending
from rtd.protocol.providers import Endpoint
from rtd.protocol.transport import Backoff, Transport

TIMEOUT = 10.0
FAST = Backoff(first=0.05, limit=0.2, healthy_after=30.0)
HELLO = {"type": "session.update",
         "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}}
FIRST = events.user_text("replayed", item_id="item_replayed")
BLOCK = 2400  # bytes: 50 ms of pcm24


def wait_until(predicate: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


def signal(seconds: float, seed: int = 7) -> bytes:
    """Noise of +-8 (about -72 dBFS: never speech to the emulator's detector)."""
    rng = np.random.default_rng(seed)
    return rng.integers(-8, 9, int(24000 * seconds)).astype("<i2").tobytes()


class Peer:
    def __init__(self) -> None:
        self.log: list[tuple[str, int, Any]] = []
        self.lock = threading.Lock()
        self.transport: Transport | None = None
        self.standby = threading.Event()
        self.release = True

    def record(self, kind: str, generation: int, what: Any = None) -> None:
        with self.lock:
            self.log.append((kind, generation, what))

    def kinds(self) -> list[tuple[str, int]]:
        with self.lock:
            return [(k, g) for k, g, _ in self.log if k != "event"]

    def on_connected(self, generation: int, url: str) -> None:
        self.record("connected", generation)
        assert self.transport is not None
        if self.release:
            self.transport.release(generation, [FIRST] if generation > 1 else [])

    def on_standby(self, generation: int, url: str) -> None:
        self.record("standby", generation)
        self.standby.set()


@pytest.fixture
def make() -> Iterator[Callable[..., tuple[Emulator, Transport, Peer]]]:
    made: list[tuple[Emulator, Transport]] = []

    def build(**emulator: Any) -> tuple[Emulator, Transport, Peer]:
        emu = Emulator(voice_engine="tones", **emulator).start()
        peer = Peer()
        transport = Transport(
            Endpoint(emu.url), hello=lambda: [HELLO],
            on_event=lambda n, e: peer.record("event", n, e),
            on_connected=peer.on_connected,
            on_disconnected=lambda n, ending: peer.record("disconnected", n, ending),
            on_standby=peer.on_standby,
            on_standby_failed=lambda ending: peer.record("standby failed", 0, ending),
            hold_audio=True, backoff=FAST, connect_timeout=5.0)
        peer.transport = transport
        made.append((emu, transport))
        return emu, transport, peer

    yield build
    for emu, transport in made:
        transport.stop()
        emu.stop()


def pump(transport: Transport, pcm: bytes, stop: threading.Event) -> threading.Thread:
    """Feed ``pcm`` in 50 ms blocks at about real time, as the microphone does."""
    def run() -> None:
        for i in range(0, len(pcm), BLOCK):
            transport.send_audio(pcm[i:i + BLOCK])
            if stop.wait(0.05):
                break
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def received(emu: Emulator) -> bytes:
    return b"".join(s.input_audio for s in emu.sessions)


def test_held_audio_waits_for_release_and_goes_after_what_comes_first(make):
    emu, transport, peer = make()
    peer.release = False
    transport.send_audio(signal(0.2))
    transport.start()
    wait_until(lambda: ("connected", 1) in peer.kinds())
    wait_until(lambda: emu.sessions and emu.sessions[0].client_events)
    transport.send(events.response_create(), 1)  # queued behind the held audio
    assert transport.queued_audio_ms == 200
    transport.release(1, [FIRST])
    wait_until(lambda: len(emu.sessions[0].client_events) >= 4)
    types = [e["type"] for e in emu.sessions[0].client_events]
    assert types[:3] == ["session.update", "conversation.item.create",
                         "input_audio_buffer.append"]
    assert types[-1] == "response.create"
    assert emu.sessions[0].input_audio == signal(0.2)


def test_switching_loses_and_doubles_no_audio_and_closes_the_old_politely(make):
    emu, transport, peer = make()
    transport.start()
    wait_until(lambda: ("connected", 1) in peer.kinds())
    pcm, stop = signal(3.0), threading.Event()
    feeder = pump(transport, pcm, stop)
    for generation in (2, 3):  # two handovers in a row
        time.sleep(0.5)
        peer.standby.clear()
        assert transport.standby()
        assert peer.standby.wait(TIMEOUT)
        assert transport.switch(generation, [FIRST])
        assert emu.sessions[generation - 2].ended.wait(TIMEOUT)
    feeder.join(TIMEOUT)
    wait_until(lambda: len(received(emu)) >= len(pcm))
    assert received(emu) == pcm  # every sample once, in order, across both switches
    assert all(len(s.input_audio) > 0 for s in emu.sessions)
    for old in emu.sessions[:2]:
        assert old.client_close is not None and old.client_close[0] == 1000
    for new in emu.sessions[1:]:
        types = [e["type"] for e in new.client_events]
        assert types[:2] == ["session.update", "conversation.item.create"]
        assert "input_audio_buffer.append" not in types[:2]
    assert [k for k in peer.kinds() if k[0] != "standby"] == [("connected", 1)]
    assert transport.generation == 3 and transport.connected
    assert len(emu.sessions) == 3 and emu.attempts == 3


def test_the_standby_takes_over_when_the_current_connection_ends_first(make):
    emu, transport, peer = make(faults=[{"at": "response.created", "do": "close",
                                         "code": 1001, "reason": "going away"}])
    transport.start()
    wait_until(lambda: ("connected", 1) in peer.kinds())
    assert transport.standby()
    assert peer.standby.wait(TIMEOUT)
    transport.send(events.response_create(), 1)  # the first connection then closes with 1001
    wait_until(lambda: ("connected", 2) in peer.kinds())
    assert peer.kinds() == [("connected", 1), ("standby", 2), ("disconnected", 1),
                            ("connected", 2)]
    ending = [w for k, g, w in peer.log if k == "disconnected"][0]
    assert isinstance(ending, Ending)
    assert emu.attempts == 2  # no new attempt: the second connection was already open
    transport.send_audio(signal(0.1))
    wait_until(lambda: emu.sessions[1].input_audio == signal(0.1))
    assert [e["type"] for e in emu.sessions[1].client_events][:2] == [
        "session.update", "conversation.item.create"]


def test_a_standby_that_fails_leaves_the_current_connection_alone(make):
    emu, transport, peer = make(faults=[{"at": "upgrade", "nth": 2, "do": "http",
                                         "status": 503}])
    transport.start()
    wait_until(lambda: ("connected", 1) in peer.kinds())
    assert transport.standby()
    wait_until(lambda: [k for k in peer.kinds() if k[0] == "standby failed"])
    assert not transport.standby_open and transport.connected
    transport.send_audio(signal(0.1))
    wait_until(lambda: emu.sessions[0].input_audio == signal(0.1))
    assert transport.standby()  # may be tried again
    assert peer.standby.wait(TIMEOUT)
