"""The real path: sounddevice -> PortAudio -> ALSA `pulse` -> PulseAudio null sinks.

`mic` and `speaker` are virtual cables (see tests/pulse.py). Audio is paced in real time, so
each test moves only a second or two of sound.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtd.audio import RATE, open_input, open_output
from rtd.audio.file_backend import read_wav
from rtd.audio.sounddevice_backend import SWITCH_INTERVAL, SoundDeviceInput, SoundDeviceOutput

pytestmark = pytest.mark.pulse

FLOOR = 1000.0
"""RMS above which a 10 ms window counts as signal (the tones peak at about 16000)."""


def test_microphone_captures_what_plays_into_mic(
    pulse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sig, collector
) -> None:
    monkeypatch.setenv("PULSE_SOURCE", "mic.monitor")
    chirp = sig.chirp(300, 3000, 1.0, 48000)
    wav = sig.write_wav(tmp_path / "chirp.wav", chirp, 48000)
    reference = np.frombuffer(read_wav(wav)[0], "<i2")  # the chirp as pcm24

    inp = open_input("sounddevice", device="pulse", block_ms=40)
    assert isinstance(inp, SoundDeviceInput)
    assert "'pulse'" in inp.description
    inp.start(collector)
    try:
        collector.wait_blocks(5, timeout=10)  # the stream is live
        mark = collector.count
        pulse.play_into_mic(wav)
        # paplay returns once the sink has played it; take 0.5 s more for the path's latency.
        collector.wait_blocks(collector.count + 13, timeout=10)
    finally:
        inp.stop()
    after_stop = collector.count
    time.sleep(0.2)
    assert collector.count == after_stop  # on_audio is not called after stop() returns
    assert all(len(b) == RATE * 40 // 1000 * 2 for b in collector.blocks)

    captured = collector.samples(mark)
    start, end = sig.loud_span(captured, RATE, FLOOR)
    assert end > start, "no signal above the floor arrived from mic.monitor"
    assert 0.8 * len(reference) <= end - start <= 1.2 * len(reference)
    lag, score = sig.xcorr_peak(captured, reference)
    assert score > 0.9, f"captured audio does not match the chirp played (correlation {score})"
    assert start - 480 <= lag <= start + 480


def test_speaker_plays_tone_and_counts_it(
    pulse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sig, wait
) -> None:
    monkeypatch.setenv("PULSE_SINK", "speaker")
    out = open_output("sounddevice", device="pulse")
    assert isinstance(out, SoundDeviceOutput)
    tone = sig.tone(660, 1.0, RATE)
    recording = tmp_path / "speaker.wav"
    with pulse.record_speaker(recording):
        out.start()
        try:
            for i in range(0, len(tone), 2400):  # 100 ms deltas, as the server sends them
                out.play("item_1", tone[i : i + 2400].tobytes())
            out.end_item("item_1")
            assert out.received_ms("item_1") == 1000
            wait(lambda: out.idle, 10, "the speaker to read the item")
            # read whole; heard whole once the device played out what it holds (its latency)
            assert out.played_ms("item_1") >= 1000 - out.buffer.latency * 1000 // out.rate
            wait(lambda: out.played_ms("item_1") == 1000, 10, "the item to be heard whole")
            wait(lambda: _tone_ended(recording, sig), 10, "the tone to come out of speaker")
        finally:
            out.stop()
    out.stop()

    recorded = _read_wav_data(recording)
    start, end = sig.loud_span(recorded, RATE, FLOOR)
    assert end > start, "nothing above the floor was recorded from speaker.monitor"
    assert 0.8 * len(tone) <= end - start <= 1.2 * len(tone)
    assert sig.dominant_frequency(recorded[start:end], RATE) == pytest.approx(660, abs=5)


def test_clear_silences_the_speaker_at_once(
    pulse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sig, wait
) -> None:
    monkeypatch.setenv("PULSE_SINK", "speaker")
    out = open_output("sounddevice", device="pulse")
    out.start()
    try:
        out.play("long", sig.tone(440, 3.0, RATE).tobytes())
        wait(lambda: out.played_ms("long") >= 300, 10, "playback to start")
        out.clear()
        assert out.idle
        # what the device read before the cut is heard: it still holds its latency's worth
        played = out.buffer.read_frames("long") * 1000 // out.rate
        assert 300 <= played < 3000
        out.play("next", sig.tone(880, 0.2, RATE).tobytes())
        out.end_item("next")
        wait(lambda: out.played_ms("next") == 200, 10, "the next item to be heard")
        assert out.played_ms("long") == played
    finally:
        out.stop()


def _read_wav_data(path: Path) -> np.ndarray:
    """Samples after the `data` chunk header; parecord patches sizes only when it exits."""
    raw = path.read_bytes()
    pos = raw.find(b"data")
    if pos < 0:
        return np.zeros(0, np.int16)
    body = raw[pos + 8 :]
    return np.frombuffer(body[: len(body) - len(body) % 2], "<i2")


def _tone_ended(path: Path, sig) -> bool:
    """The recording holds the tone followed by at least 200 ms of quiet."""
    samples = _read_wav_data(path)
    start, end = sig.loud_span(samples, RATE, FLOOR)
    return end > start and len(samples) - end >= RATE // 5


def test_streams_shorten_the_switch_interval_while_open_and_put_it_back(
    pulse: Any, monkeypatch: pytest.MonkeyPatch, collector
) -> None:
    """Every callback needs the GIL: while a stream is open no thread keeps it 5 ms at a time
    (bench/underruns.py measures what that costs the speaker); after the last one closes, the
    interpreter has its own setting back."""
    monkeypatch.setenv("PULSE_SOURCE", "mic.monitor")
    monkeypatch.setenv("PULSE_SINK", "speaker")
    before = sys.getswitchinterval()
    assert before > SWITCH_INTERVAL  # CPython's default, 5 ms
    out = open_output("sounddevice", device="pulse")
    inp = open_input("sounddevice", device="pulse", block_ms=20)
    out.start()
    inp.start(collector)
    try:
        collector.wait_blocks(2, timeout=10)
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        out.stop()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)  # the mic is open
    finally:
        out.stop()
        inp.stop()
    assert sys.getswitchinterval() == pytest.approx(before)
