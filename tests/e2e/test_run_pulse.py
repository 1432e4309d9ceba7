"""`rtd run` through the real sounddevice → PortAudio → ALSA → PulseAudio path.

The question is played into the `mic` null sink, rtd records `mic.monitor` as its microphone,
plays into the `speaker` sink, and the test records `speaker.monitor`: the whole round trip a Pi
makes, paced in real time.
"""

from __future__ import annotations

import threading
import wave

import numpy as np
import pytest
from rtdproc import KEY

from rtd.emulator import DEMO_QUESTION_WAV
from rtd.emulator.voice import synthesize

pytestmark = pytest.mark.pulse


def best_match(recorded: np.ndarray, reference: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``reference`` inside ``recorded`` (1.0: identical)."""
    rec = recorded.astype(np.float64)
    ref = reference.astype(np.float64)
    n = len(rec) + len(ref)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(rec, size) * np.conj(np.fft.rfft(ref, size)), size)
    energy = np.convolve(rec * rec, np.ones(len(ref)), "full")[len(ref) - 1: len(ref) - 1 +
                                                                 len(rec)]
    peak = int(np.argmax(corr[: len(rec)]))
    return float(corr[peak] / np.sqrt(max(energy[peak], 1e-9) * np.dot(ref, ref)))


def test_conversation_through_virtual_cables(pulse, run_rtd, demo_emulator, tmp_path):
    emu = demo_emulator
    conf = tmp_path / "rtd.toml"
    conf.write_text(f"""
[provider]
name = "custom"
url = "{emu.url}"
[audio.input]
device = "pulse"
[audio.output]
device = "pulse"
[tools.clock]
""")
    d = run_rtd("run", "--config", str(conf),
                extra_env={**pulse.env, "PULSE_SOURCE": "mic.monitor", "PULSE_SINK": "speaker"})
    assert "sounddevice" in d.wait_for_line("microphone: ")
    d.wait_for_line("session ready")
    rec_path = tmp_path / "speaker.wav"
    with pulse.record_speaker(rec_path):
        pulse.play_into_mic(DEMO_QUESTION_WAV)
        answer = d.wait_for_line("assistant: It is", timeout=30).split("assistant: ", 1)[1]
        spoken = np.frombuffer(synthesize(answer, "tones"), np.int16)
        # the speaker plays in real time: wait for the answer's length plus a margin
        threading.Event().wait(len(spoken) / 24000 + 2.0)
    assert d.stop() == 0
    assert "user: What time is it?" in d.output
    assert "Traceback" not in d.output and KEY not in d.output

    with wave.open(str(rec_path)) as w:
        assert w.getframerate() == 24000
        recorded = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    # the spoken answer is in the recording, resampled by PulseAudio but recognisably itself
    assert best_match(recorded, spoken) > 0.8
