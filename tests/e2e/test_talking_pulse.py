"""Barge-in through the real sounddevice → PortAudio → ALSA → PulseAudio path.

The user's voice is played into the `mic` null sink while rtd plays the story into `speaker`,
whose monitor the test records: what the speaker really played is in the recording, with the
device's output latency, so the truncation's `audio_end_ms` is checked against what left it.
"""

from __future__ import annotations

import re
import wave

import numpy as np
import pytest
from rtdproc import KEY
from test_talking import STORY, quiet, speech, write_wav

from rtd.emulator import Emulator, load_scenario
from rtd.emulator.voice import synthesize

pytestmark = pytest.mark.pulse

FRAME = 480  # 20 ms at 24 kHz


def onset(recorded: np.ndarray, reference: np.ndarray) -> int:
    """Where ``reference`` starts in ``recorded`` (the peak of their cross-correlation)."""
    rec, ref = recorded.astype(np.float64), reference.astype(np.float64)
    size = 1 << (len(rec) + len(ref) - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(rec, size) * np.conj(np.fft.rfft(ref, size)), size)
    return int(np.argmax(corr[: len(rec)]))


def loud_until(recorded: np.ndarray, start: int, gap_s: float = 0.4) -> int:
    """The end of the sound that begins at ``start``: the last loud 20 ms frame before the
    first ``gap_s`` of quiet."""
    frames = recorded[start: len(recorded) // FRAME * FRAME].astype(np.float64)
    frames = frames[: len(frames) // FRAME * FRAME].reshape(-1, FRAME)
    loud = np.sqrt(np.mean(frames * frames, axis=1)) > 300
    last, quiet_run = 0, 0
    for index, is_loud in enumerate(loud.tolist()):
        if is_loud:
            last, quiet_run = index, 0
        else:
            quiet_run += 1
            if quiet_run * FRAME >= gap_s * 24000:
                break
    return start + (last + 1) * FRAME


def test_barge_in_through_virtual_cables_cuts_at_what_the_speaker_played(
        pulse, run_rtd, tmp_path):
    voice = write_wav(tmp_path / "voice.wav", quiet(0.3), speech(1.0), quiet(3.0), speech(1.0),
                      quiet(1.5))
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'[[turn]]\nreply = "{STORY}"\n[[turn]]\nreply = "Okay."\n')
    story = np.frombuffer(synthesize(STORY, "tones"), np.int16)
    with Emulator(scenario=load_scenario(scenario), voice_engine="tones") as emu:
        conf = tmp_path / "rtd.toml"
        conf.write_text(f"""
[provider]
name = "custom"
url = "{emu.url}"
[audio]
echo = "none"
[audio.input]
device = "pulse"
[audio.output]
device = "pulse"
[control]
path = "{tmp_path / 'control.sock'}"
""")
        d = run_rtd("run", "--config", str(conf), extra_env={
            **pulse.env, "PULSE_SOURCE": "mic.monitor", "PULSE_SINK": "speaker"})
        d.wait_for_line("session ready", timeout=20)
        rec_path = tmp_path / "speaker.wav"
        with pulse.record_speaker(rec_path):
            pulse.play_into_mic(voice)
            d.wait_for_line("assistant (interrupted): ", timeout=30)
            d.wait_for_line("assistant: Okay.", timeout=30)
        assert d.stop() == 0
    [truncate] = [e for e in emu.received if e["type"] == "conversation.item.truncate"]
    assert not [e for e in emu.sent if e["type"] == "error"]
    assert 0 < truncate["audio_end_ms"] < len(story) // 24
    with wave.open(str(rec_path)) as w:
        recorded = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    start = onset(recorded, story[:24000])
    played_ms = (loud_until(recorded, start) - start) * 1000 // 24000
    print(f"audio_end_ms {truncate['audio_end_ms']}, the speaker played {played_ms} ms "
          f"({truncate['audio_end_ms'] - played_ms:+d} ms)")
    # what the speaker played, give or take a device buffer (bench/truncation.py measures)
    assert abs(truncate["audio_end_ms"] - played_ms) < 500
    said = re.search(r"assistant \(interrupted\): (.*)", d.output).group(1)
    assert said and STORY.startswith(said) and len(said) < len(STORY)
    assert "Traceback" not in d.output and KEY not in d.output
