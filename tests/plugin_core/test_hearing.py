"""Senders that hear the microphone (`Sender.audio_rate`, `Sender.hear`): a wake word's input.

The sender actor subscribes to the microphone's `InputAudio` on a real bus, as the daemon
wires it, and gets it resampled to the rate the sender asked for, losing blocks rather than
ever holding up the publisher.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pykka
import pytest
from rtdproc import wait_until

from rtd import hookimpl, plugins
from rtd.actors.sender import SenderActor
from rtd.components import Sender, SenderContext
from rtd.messages import InputAudio
from rtd.supervisor import LOSSY_BACKLOG, Bus, Ping


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def tone(hz: float, seconds: float, rate: int = 24000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 12000).astype(np.int16)


class Ears(Sender):
    """Keeps what it hears; run() only waits."""

    name = "ears"
    audio_rate = 16000

    def __init__(self, settings=None) -> None:
        super().__init__(settings)
        self.heard: list[bytes] = []
        self.gate: threading.Event | None = None
        self.ctx: SenderContext | None = None

    def run(self, ctx: SenderContext) -> None:
        self.ctx = ctx
        ctx.stopping.wait()

    def hear(self, pcm: bytes, ctx: SenderContext) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        self.heard.append(pcm)

    def samples(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.heard), np.int16)


def start(sender: Sender) -> tuple[Bus, pykka.ActorRef]:
    """The actor subscribed as the daemon subscribes it: lossily, to what `receives` says."""
    bus = Bus()
    bus.subscribe("senders.ears", SenderActor.receives(type(sender)), lossy=True)
    ref = SenderActor.start(bus, lambda n, e: None, sender)
    bus.attach("senders.ears", ref)
    ref.ask(Ping(), timeout=5)
    return bus, ref


def publish_blocks(bus: Bus, samples: np.ndarray, block: int = 480, source: str = "microphone"
                   ) -> None:
    for i in range(0, len(samples), block):
        bus.publish(InputAudio(samples[i:i + block].tobytes(), source))


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / len(samples))


def test_a_sender_hears_the_microphone_at_the_rate_it_asked_for():
    ears = Ears()
    bus, ref = start(ears)
    publish_blocks(bus, tone(440, 1.0))
    # one second in: all but the filter's delay of one second at 16 kHz comes out
    assert wait_until(lambda: len(ears.samples()) >= 15500, timeout=10)
    heard = ears.samples()
    assert len(heard) <= 16000
    assert abs(dominant_hz(heard[2000:], 16000) - 440) < 5
    ref.stop(timeout=5)


def test_only_the_microphone_is_heard_not_what_senders_send():
    ears = Ears()
    bus, ref = start(ears)
    # another sender's audio and the sender's own send_audio are not the microphone
    publish_blocks(bus, tone(440, 0.5), source="other")
    assert wait_until(lambda: ears.ctx is not None, timeout=5)
    ears.ctx.send_audio(tone(440, 0.5).tobytes())
    publish_blocks(bus, tone(1000, 0.5))
    assert wait_until(lambda: len(ears.samples()) >= 7500, timeout=10)
    ref.ask(Ping(), timeout=5)  # everything published before has been handled
    heard = ears.samples()
    assert len(heard) <= 8000
    assert abs(dominant_hz(heard[1000:], 16000) - 1000) < 5


def test_a_sender_without_audio_rate_hears_nothing():
    class Deaf(Sender):
        name = "deaf"

        def run(self, ctx: SenderContext) -> None:
            ctx.stopping.wait()

    assert SenderActor.receives(Deaf) == ()
    assert SenderActor.receives(Ears) == (InputAudio,)


def test_a_slow_hearer_loses_blocks_and_never_holds_up_the_microphone():
    ears = Ears()
    ears.gate = threading.Event()
    bus, ref = start(ears)
    blocks = 5 * LOSSY_BACKLOG
    done = threading.Event()

    def mic() -> None:  # the audio input's thread publishes straight to the bus, as here
        publish_blocks(bus, tone(440, blocks * 0.02))
        done.set()

    threading.Thread(target=mic, daemon=True).start()
    # the publisher finishes while hear() is still stuck on its first block
    assert done.wait(30)
    assert ears.heard == []
    ears.gate.set()
    ref.ask(Ping(), timeout=10)
    # what waited was bounded: the backlog, not the five times as many blocks published
    assert 0 < len(ears.heard) <= LOSSY_BACKLOG + 2
    ref.stop(timeout=5)


def test_a_failing_hear_costs_its_block_and_hearing_goes_on(caplog):
    class Flaky(Ears):
        def hear(self, pcm: bytes, ctx: SenderContext) -> None:
            if not self.heard:
                self.heard.append(b"")
                raise RuntimeError("first block is cursed")
            self.heard.append(pcm)

    ears = Flaky()
    bus, ref = start(ears)
    with caplog.at_level(logging.WARNING, logger="rtd.actors.sender"):
        publish_blocks(bus, tone(440, 0.5))
        assert wait_until(lambda: len(ears.heard) > 5, timeout=10)
    assert "senders.ears: hear() failed (1 so far): RuntimeError: first block is cursed" \
        in caplog.text
    assert ref.is_alive()
    ref.stop(timeout=5)


@pytest.mark.parametrize("rate", [0, 4000, 96000, 16000.0, True, "16000"])
def test_a_wrong_audio_rate_refuses_the_sender(rate):
    class Odd(Ears):
        name = "odd"
        audio_rate = rate  # type: ignore[assignment]

    class Plugin:
        @staticmethod
        @hookimpl
        def register_senders():
            return [Odd]

    registry = plugins.load(extra=[("odd", Plugin)], entry_points=[])
    assert "odd" not in registry.senders
    info = registry.info("odd")
    assert any("Odd.audio_rate must be None or a sample rate in Hz from 8000 to 48000; "
               f"got {rate!r}" in p for p in info.problems), info.problems
