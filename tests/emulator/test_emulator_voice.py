"""Speech synthesis and the energy VAD, without any network."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from rtd.emulator.vad import EnergyVad, VadSettings
from rtd.emulator.voice import synthesize
from rtd.exceptions import ConfigError


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(max(np.sqrt(np.mean(x * x)) / 32768.0, 1e-10)))


def test_tones_are_deterministic_audible_and_click_free() -> None:
    text = "What time is it?"
    pcm = synthesize(text, "tones")
    assert pcm == synthesize(text, "tones")
    assert pcm != synthesize("Something else entirely.", "tones")
    x = samples(pcm)
    assert len(pcm) % 2 == 0
    assert 0.05 * len(text) < x.size / 24000 < 0.08 * len(text) + 0.2  # ~60 ms per character
    assert dbfs(x) > -25
    assert abs(x[0]) < 100 and abs(x[-1]) < 100  # fades in and out
    assert np.abs(np.diff(x)).max() < 6000  # no jumps: smooth envelopes, continuous phase


def test_empty_text_is_no_audio() -> None:
    assert synthesize("", "tones") == b""
    assert synthesize("   ", "tones") == b""


def test_unknown_engine_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        synthesize("hi", "festival")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_speaks_at_24_khz() -> None:
    pcm = synthesize("It is five past two.", "espeak")
    assert pcm == synthesize("It is five past two.", "espeak")
    x = samples(pcm)
    assert 0.8 < x.size / 24000 < 4.0
    assert dbfs(x) > -35
    assert synthesize("It is five past two.", "auto") == pcm


def feed_all(vad: EnergyVad, pcm: bytes, chunk: int = 2400) -> list[tuple[str, int]]:
    x = np.frombuffer(pcm, dtype="<i2")
    events = []
    for start in range(0, x.size, chunk):
        events += [(e.kind, e.sample * 1000 // 24000) for e in vad.feed(x[start:start + chunk])]
    return events


def test_vad_finds_speech_between_silences() -> None:
    speech = synthesize("What time is it?", "tones")
    pcm = bytes(24000) + speech + bytes(48000)  # 0.5 s, speech, 1 s
    events = feed_all(EnergyVad(VadSettings()), pcm)
    assert [kind for kind, _ in events] == ["start", "stop"]
    (_, start_ms), (_, stop_ms) = events
    assert 200 <= start_ms <= 500  # 300 ms of prefix padding before the speech at 500 ms
    end_of_speech = 500 + len(speech) // 48
    assert end_of_speech <= stop_ms <= end_of_speech + 300


def test_vad_ignores_quiet_noise_and_clicks() -> None:
    rng = np.random.default_rng(7)
    noise = (rng.normal(0, 100, 24000 * 2)).astype("<i2")  # about -50 dBFS
    noise[24000] = 30000  # a single loud sample is not speech
    assert feed_all(EnergyVad(VadSettings()), noise.tobytes()) == []


def test_vad_threshold_and_reset() -> None:
    speech = synthesize("Hello there", "tones")
    quiet = (samples(speech) * 0.05).astype("<i2").tobytes()  # about -40 dBFS
    assert feed_all(EnergyVad(VadSettings(threshold=0.5)), quiet + bytes(24000)) == []
    assert [k for k, _ in feed_all(EnergyVad(VadSettings(threshold=0.1)),
                                   quiet + bytes(24000))] == ["start", "stop"]
    vad = EnergyVad(VadSettings())
    feed_all(vad, speech[: len(speech) // 2])
    assert vad.speaking
    vad.reset(position=100 * 24000)
    assert not vad.speaking
    events = feed_all(vad, speech + bytes(24000))
    assert events[0] == ("start", 100_000)  # the padding never reaches back past a reset
