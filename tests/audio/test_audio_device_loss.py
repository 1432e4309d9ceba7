"""Devices that go away and come back, through the real PortAudio -> ALSA -> PulseAudio path.

`pulse.unplug(sink)` unloads a virtual cable's module and kills the streams on it, which gives
PortAudio what a USB unplug gives it: host errors, callbacks that stop, an inactive stream, and
opens that fail until `pulse.replug(sink)`. Everything happens in this one process, as in the
daemon: the backends must notice, close, re-initialise PortAudio and reopen by name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtd.audio import RATE, open_input, open_output
from rtd.audio import sounddevice_backend as sdb
from rtd.audio.sounddevice_backend import SoundDeviceInput, SoundDeviceOutput

pytestmark = pytest.mark.pulse

FLOOR = 1000.0


@pytest.fixture
def cables(pulse: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The virtual cables, both plugged in again after the test whatever it did."""
    monkeypatch.setenv("PULSE_SOURCE", "mic.monitor")
    monkeypatch.setenv("PULSE_SINK", "speaker")
    try:
        yield pulse
    finally:
        plugged = {row[1] for row in pulse._short("sinks")}
        for sink in ("mic", "speaker"):
            if sink not in plugged:
                pulse.replug(sink)


def _captures(pulse: Any, inp: SoundDeviceInput, collector, sig, tmp_path: Path) -> float:
    """Play a chirp into `mic` and return how well the microphone's capture matches it."""
    chirp = sig.chirp(300, 3000, 0.6, RATE)
    wav = sig.write_wav(tmp_path / "chirp.wav", chirp, RATE)
    # from half a second before: a sound server may hand over what it mixed a little early
    mark = max(0, collector.count - 12)
    pulse.play_into_mic(wav)
    collector.wait_blocks(collector.count + 12, timeout=10)
    _lag, score = sig.xcorr_peak(collector.samples(mark), chirp)
    return score


def _plays(pulse: Any, out: SoundDeviceOutput, sig, tmp_path: Path, wait, name: str) -> float:
    """Play a tone and return its frequency as recorded from `speaker.monitor` (0: silence)."""
    tone = sig.tone(660, 0.5, RATE)
    recording = tmp_path / f"{name}.wav"
    with pulse.record_speaker(recording):
        out.play(name, tone.tobytes())
        out.end_item(name)
        wait(lambda: out.played_ms(name) >= 500, 10, f"{name} to be played")
        time.sleep(0.4)  # the path's latency
    raw = recording.read_bytes()
    body = raw[raw.find(b"data") + 8:]
    recorded = np.frombuffer(body[: len(body) - len(body) % 2], "<i2")
    start, end = sig.loud_span(recorded, RATE, FLOOR)
    if end - start < RATE // 10:
        return 0.0
    return sig.dominant_frequency(recorded[start:end], RATE)


def test_unplugged_microphone_is_noticed_and_reopened_when_back(
    cables: Any, collector, sig, wait, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "rtd.audio")
    inp = open_input("sounddevice", device="pulse", block_ms=40)
    assert isinstance(inp, SoundDeviceInput)
    inp.start(collector)
    try:
        collector.wait_blocks(5, timeout=10)
        gone_at = time.monotonic()
        cables.unplug("mic")
        wait(lambda: inp.state == "waiting", 3, "the lost microphone to be noticed")
        noticed = time.monotonic() - gone_at
        print(f"microphone loss noticed after {noticed:.2f} s (target: within 1 s)")
        went = [r for r in caplog.records if "went away" in r.getMessage()]
        assert len(went) == 1 and went[0].levelno == logging.WARNING
        assert "audio.input: input device 'pulse' went away" in went[0].getMessage()
        time.sleep(1.5)  # gone for a while: the watcher keeps trying without a flood of lines
        assert inp.state == "waiting"
        cables.replug("mic")
        wait(lambda: inp.state == "running", 15, "the microphone to be reopened")
        assert inp.reopened == 1
        assert any("input device is back" in r.getMessage() for r in caplog.records)
        assert _captures(cables, inp, collector, sig, tmp_path) > 0.8
    finally:
        inp.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "went away" in warnings[0]  # the retries are quiet


def test_a_microphone_that_stops_delivering_is_noticed(
    cables: Any, collector, sig, wait, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No error at all: the stream stays active and its callbacks stop (a hung device)."""
    caplog.set_level(logging.INFO, "rtd.audio")
    inp = open_input("sounddevice", device="pulse", block_ms=40)
    inp.start(collector)
    try:
        collector.wait_blocks(5, timeout=10)
        cables.suspend("mic")
        try:
            wait(lambda: inp.state == "waiting", 3, "the silent microphone to be noticed")
            assert "(no callbacks for" in caplog.text
        finally:
            cables.suspend("mic", False)
        wait(lambda: inp.state == "running" and inp.reopened >= 1, 15,
             "the microphone to be reopened")
        assert _captures(cables, inp, collector, sig, tmp_path) > 0.8
    finally:
        inp.stop()


def test_unplugged_speaker_is_reopened_and_plays_again(
    cables: Any, sig, wait, tmp_path: Path
) -> None:
    out = open_output("sounddevice", device="pulse")
    assert isinstance(out, SoundDeviceOutput)
    out.start()
    try:
        assert _plays(cables, out, sig, tmp_path, wait, "before") == pytest.approx(660, abs=5)
        out.play("lost", sig.tone(440, 3.0, RATE).tobytes())
        cables.unplug("speaker")
        wait(lambda: out.state == "waiting", 3, "the lost speaker to be noticed")
        # what was queued for a speaker that is gone is dropped, and so is what comes meanwhile
        assert out.idle
        out.play("meanwhile", sig.tone(880, 0.5, RATE).tobytes())
        assert out.idle and out.received_ms("meanwhile") == 500
        cables.replug("speaker")
        wait(lambda: out.state == "running", 15, "the speaker to be reopened")
        assert _plays(cables, out, sig, tmp_path, wait, "after") == pytest.approx(660, abs=5)
    finally:
        out.stop()


def test_both_unplugged_at_once_come_back_together(
    cables: Any, collector, sig, wait, tmp_path: Path
) -> None:
    inp = open_input("sounddevice", device="pulse", block_ms=40)
    out = open_output("sounddevice", device="pulse")
    inp.start(collector)
    out.start()
    try:
        collector.wait_blocks(5, timeout=10)
        cables.unplug("speaker")
        cables.unplug("mic")
        wait(lambda: inp.state == out.state == "waiting", 3, "both losses to be noticed")
        time.sleep(1.0)
        cables.replug("mic")
        cables.replug("speaker")
        wait(lambda: inp.state == out.state == "running", 15, "both devices to be reopened")
        assert _captures(cables, inp, collector, sig, tmp_path) > 0.8
        assert _plays(cables, out, sig, tmp_path, wait, "both") == pytest.approx(660, abs=5)
    finally:
        inp.stop()
        out.stop()


def test_the_other_device_keeps_working_while_one_is_gone(
    cables: Any, collector, sig, wait, tmp_path: Path
) -> None:
    """Looking for the lost speaker re-initialises PortAudio, which closes the microphone's
    stream too: it is reopened each time, and capture goes on."""
    inp = open_input("sounddevice", device="pulse", block_ms=40)
    out = open_output("sounddevice", device="pulse")
    inp.start(collector)
    out.start()
    try:
        collector.wait_blocks(5, timeout=10)
        cables.unplug("speaker")
        wait(lambda: out.state == "waiting", 3, "the lost speaker to be noticed")
        time.sleep(1.5)  # a few attempts to find the speaker
        assert inp.state == "running"
        assert _captures(cables, inp, collector, sig, tmp_path) > 0.8
    finally:
        inp.stop()
        out.stop()


def test_device_missing_at_start_is_waited_for(
    cables: Any, collector, wait, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "rtd.audio")
    cables.unplug("mic")
    # probing the device fails (its source is gone), as for a busy or missing card: no error
    inp = open_input("sounddevice", device="pulse", block_ms=40, wait=True)
    assert "not available yet" in inp.description
    inp.start(collector)
    try:
        assert inp.state == "waiting"
        assert inp.waiting_for and "input device 'pulse' accepts none" in inp.waiting_for
        assert "(rtd keeps looking for it)" in caplog.text
        cables.replug("mic")
        wait(lambda: inp.state == "running", 15, "the microphone to be opened")
        collector.wait_blocks(collector.count + 5, timeout=10)
    finally:
        inp.stop()


def test_without_wait_a_missing_device_fails_at_once(cables: Any) -> None:
    """`rtd check` and library users get the error at once."""
    from rtd.exceptions import DeviceError

    cables.unplug("mic")
    with pytest.raises(DeviceError, match="audio.input.device: input device 'pulse' accepts "
                       "none of the formats"):
        open_input("sounddevice", device="pulse", block_ms=40)


def test_xruns_are_logged_at_most_once_a_minute(
    pulse: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "rtd.audio")
    out = SoundDeviceOutput("pulse")
    now = time.monotonic()
    out._xruns_at = now
    out.xruns = 7
    out._report_xruns(now + 30)  # within the minute: nothing yet
    assert "underflows" not in caplog.text
    out._report_xruns(now + sdb.XRUN_REPORT_SECONDS)
    out.xruns = 9
    out._report_xruns(now + sdb.XRUN_REPORT_SECONDS + 1)
    lines = [r.getMessage() for r in caplog.records if "underflows" in r.getMessage()]
    assert lines == ["audio.output: 7 output underflows in the last 60 s (7 since start)"]
