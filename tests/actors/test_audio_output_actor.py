"""The speaker actor: what it plays, and what it tells the bus about each item's fate.

`PlaybackStarted` / `PlaybackStopped` are what barge-in truncation and the `speaking` state are
built on, so they are checked against what the listener really got: the file the file backend
wrote, and the audio recorded from the PulseAudio virtual speaker.
"""

from __future__ import annotations

import threading
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pykka
import pytest

from rtd.actors.audio_output import AudioOutputActor
from rtd.audio import RATE, open_output
from rtd.messages import AudioChunk, Interrupt, OutputAudioDone, PlaybackStarted, PlaybackStopped
from rtd.supervisor import Bus, Ping

DELTA = 2400
"""Samples per delta: 100 ms, as the server sends them."""
LOUD = 1000.0
"""RMS above which a 10 ms window counts as the assistant speaking."""


class Speaker:
    """An output actor on a bus, and every message published on it."""

    def __init__(self, backend: Any) -> None:
        self.bus = Bus()
        self.seen: list[object] = []
        self._cond = threading.Condition()
        self.bus.observe(self._saw)
        self.bus.subscribe("audio_output", AudioOutputActor.receives)
        self.backend = backend
        self.ref = AudioOutputActor.start(self.bus, lambda n, e: None, backend)
        self.bus.attach("audio_output", self.ref)
        assert self.ref.ask(Ping(), timeout=5) is None

    def _saw(self, message: object) -> None:
        with self._cond:
            self.seen.append(message)
            self._cond.notify_all()

    def of(self, kind: type) -> list:
        with self._cond:
            return [m for m in self.seen if isinstance(m, kind)]

    def wait_for(self, kind: type, n: int = 1, timeout: float = 10.0) -> list:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.of(kind)) >= n, timeout):
                pytest.fail(f"no {kind.__name__} (#{n}) within {timeout} s; saw {self.seen}")
        return self.of(kind)

    def say(self, item_id: str, samples: np.ndarray, end: bool = True) -> None:
        for i in range(0, len(samples), DELTA):
            self.bus.publish(AudioChunk(item_id, samples[i : i + DELTA].tobytes()))
        if end:
            self.bus.publish(OutputAudioDone(item_id))


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def _tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.rint(0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _loud_ms(samples: np.ndarray) -> int:
    """Milliseconds of 10 ms windows above LOUD."""
    n = len(samples) // 240
    x = samples[: n * 240].astype(np.float64).reshape(n, 240)
    return int(np.count_nonzero(np.sqrt((x * x).mean(axis=1)) > LOUD)) * 10


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


def test_an_item_played_to_its_end_is_reported_started_then_stopped(tmp_path: Path) -> None:
    s = Speaker(open_output("file", path=str(tmp_path / "out.wav")))
    s.say("item_a", _tone(0.35))
    stopped = s.wait_for(PlaybackStopped)
    assert s.of(PlaybackStarted) == [PlaybackStarted("item_a")]
    assert stopped == [PlaybackStopped("item_a", 350, 350, interrupted=False)]
    started_at = s.seen.index(PlaybackStarted("item_a"))
    assert started_at < s.seen.index(stopped[0])
    s.ref.stop()
    assert _loud_ms(_wav(tmp_path / "out.wav")) == pytest.approx(350, abs=10)


def test_an_interrupt_cuts_the_item_and_reports_what_was_heard(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    s = Speaker(open_output("file", path=str(path)))
    s.say("item_a", _tone(3.0), end=False)  # the server is still sending
    s.wait_for(PlaybackStarted)
    threading.Event().wait(0.4)
    s.bus.publish(Interrupt())
    (stopped,) = s.wait_for(PlaybackStopped)
    assert stopped.item_id == "item_a" and stopped.interrupted
    assert stopped.received_ms == 3000
    assert 300 <= stopped.played_ms < 1500
    s.say("item_a", _tone(1.0))  # late deltas of the cut item: dropped, not played
    s.say("item_b", _tone(0.2, 880))
    s.wait_for(PlaybackStopped, 2)
    s.ref.stop()
    assert s.of(PlaybackStopped)[1] == PlaybackStopped("item_b", 200, 200, interrupted=False)
    assert len(s.of(PlaybackStopped)) == 2  # the late deltas did not make the cut item report
    heard = _wav(path)
    assert _loud_ms(heard) == pytest.approx(stopped.played_ms + 200, abs=20)


def test_an_interrupt_with_nothing_playing_reports_nothing(tmp_path: Path) -> None:
    s = Speaker(open_output("file", path=str(tmp_path / "out.wav")))
    s.bus.publish(Interrupt())
    s.say("item_a", _tone(0.1))
    s.wait_for(PlaybackStopped)
    assert s.of(PlaybackStopped) == [PlaybackStopped("item_a", 100, 100, interrupted=False)]


@pytest.mark.pulse
def test_on_the_sound_device_played_ms_is_what_reached_the_speaker(
    pulse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PULSE_SINK", "speaker")
    recording = tmp_path / "speaker.wav"
    with pulse.record_speaker(recording):
        s = Speaker(open_output("sounddevice", device="pulse"))
        latency = s.backend.buffer.latency
        s.say("item_a", _tone(0.5))
        assert s.wait_for(PlaybackStopped) == [PlaybackStopped("item_a", 500, 500, False)]
        threading.Event().wait(0.3)  # a gap between the two in the recording
        s.say("item_b", _tone(3.0, 660), end=False)
        s.wait_for(PlaybackStarted, 2)
        threading.Event().wait(0.5)
        s.bus.publish(Interrupt())
        stopped = s.wait_for(PlaybackStopped, 2)[1]
        threading.Event().wait(0.3)  # the recording gets the tail of the cut
        s.ref.stop()
    assert latency > 0  # the device's reported latency is what played_ms is corrected by
    assert stopped.item_id == "item_b" and stopped.interrupted
    heard = _wav_data(recording)
    first_end = _loud_end(heard)
    heard_b = _loud_ms(heard[first_end:])
    assert _loud_ms(heard[:first_end]) == pytest.approx(500, abs=20)
    assert stopped.played_ms == pytest.approx(heard_b, abs=50)


def _wav_data(path: Path) -> np.ndarray:
    """Samples after the `data` chunk header; parecord patches sizes only when it exits."""
    raw = path.read_bytes()
    body = raw[raw.find(b"data") + 8 :]
    return np.frombuffer(body[: len(body) - len(body) % 2], "<i2")


def _loud_end(samples: np.ndarray) -> int:
    """Sample index just past the first loud stretch."""
    n = len(samples) // 240
    x = samples[: n * 240].astype(np.float64).reshape(n, 240)
    loud = np.sqrt((x * x).mean(axis=1)) > LOUD
    start = int(np.argmax(loud))
    quiet = np.flatnonzero(~loud[start:])
    return (start + int(quiet[0])) * 240 if len(quiet) else n * 240
