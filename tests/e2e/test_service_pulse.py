"""The microphone and the speaker unplugged under a running `rtd run`, and plugged back.

Through the real sounddevice -> PortAudio -> ALSA -> PulseAudio path (see tests/pulse.py for how
a virtual cable is unplugged). The same process must notice, keep the watchdog fed while it
looks for the devices, and hold the next conversation once they are back.
"""

from __future__ import annotations

import threading
import wave

import numpy as np
import pytest
from notifysock import NotifySocket
from rtdproc import KEY

from rtd.emulator import DEMO_QUESTION_WAV
from rtd.emulator.voice import synthesize

pytestmark = pytest.mark.pulse


def best_match(recorded: np.ndarray, reference: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``reference`` inside ``recorded`` (1.0: identical)."""
    rec, ref = recorded.astype(np.float64), reference.astype(np.float64)
    size = 1 << (len(rec) + len(ref) - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(rec, size) * np.conj(np.fft.rfft(ref, size)), size)
    energy = np.convolve(rec * rec, np.ones(len(ref)), "full")[len(ref) - 1:
                                                               len(ref) - 1 + len(rec)]
    peak = int(np.argmax(corr[: len(rec)]))
    return float(corr[peak] / np.sqrt(max(energy[peak], 1e-9) * np.dot(ref, ref)))


def test_devices_unplugged_and_back_under_a_running_daemon(pulse, run_rtd, demo_emulator,
                                                          tmp_path):
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
    notify = NotifySocket(tmp_path / "notify")
    try:
        d = run_rtd("run", "--config", str(conf),
                    extra_env={**pulse.env, "PULSE_SOURCE": "mic.monitor",
                               "PULSE_SINK": "speaker", "NOTIFY_SOCKET": notify.address,
                               "WATCHDOG_USEC": "2000000"})
        pid = d.proc.pid
        d.wait_for_line("session ready")
        try:
            pulse.unplug("mic")
            pulse.unplug("speaker")
            d.wait_for_line("audio.input: input device 'pulse' went away")
            d.wait_for_line("audio.output: output device 'pulse' went away")
            gone = notify.wait_for(
                lambda ms: any("microphone not available" in m.fields.get("STATUS", "")
                               and "speaker not available" in m.fields.get("STATUS", "")
                               for m in ms), what="STATUS= naming both missing devices")
            lost_at = next(m.at for m in gone if "speaker not available"
                           in m.fields.get("STATUS", ""))
            # looking for them is healthy: the watchdog is fed meanwhile
            notify.wait_for(lambda ms: sum("WATCHDOG" in m and m.at > lost_at
                                           for m in ms) >= 2, what="beats while devices are gone")
        finally:
            pulse.replug("mic")
            pulse.replug("speaker")
        d.wait_for_line("audio.input: input device is back", timeout=20)
        d.wait_for_line("audio.output: output device is back", timeout=20)
        assert d.count("went away") == 2  # once per device, however often it was looked for

        rec_path = tmp_path / "speaker.wav"
        with pulse.record_speaker(rec_path):
            pulse.play_into_mic(DEMO_QUESTION_WAV)
            answer = d.wait_for_line("assistant: It is", timeout=30).split("assistant: ", 1)[1]
            spoken = np.frombuffer(synthesize(answer, "tones"), np.int16)
            threading.Event().wait(len(spoken) / 24000 + 2.0)
        assert d.proc.pid == pid and d.proc.poll() is None  # the same process, never restarted
        assert d.stop() == 0
    finally:
        notify.close()
    assert "user: What time is it?" in d.output
    assert "Traceback" not in d.output and KEY not in d.output
    with wave.open(str(rec_path)) as w:
        recorded = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    match = best_match(recorded, spoken)
    # what the daemon said (its underflows, a device lost again) is what tells why it failed
    assert match > 0.8, f"the reply after the re-plug matches {match:.2f}; rtd said:\n{d.output}"
