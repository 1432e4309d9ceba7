"""The WAV file backends: any WAV in as pcm24 paced in real time; pcm24 out as a valid WAV."""

from __future__ import annotations

import struct
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from rtd import config
from rtd.audio import RATE, open_input, open_output
from rtd.audio.file_backend import WavFileInput, WavFileOutput, read_wav
from rtd.audio.resample import resample
from rtd.exceptions import AudioFileError, ConfigError


def _pcm(path: Path) -> np.ndarray:
    return np.frombuffer(read_wav(path)[0], "<i2")


# -- reading --------------------------------------------------------------------------------


def test_44k_stereo_is_mixed_and_resampled(tmp_path: Path, sig) -> None:
    left = sig.tone(440, 0.5, 44100, amplitude=0.6)
    right = sig.tone(440, 0.5, 44100, amplitude=0.2)
    path = sig.write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 44100)
    pcm, fmt = read_wav(path)
    got = np.frombuffer(pcm, "<i2")
    assert (fmt.rate, fmt.channels, fmt.bits) == (44100, 2, 16)
    assert len(got) == 12000  # 0.5 s at 24 kHz
    mono = np.rint((left.astype(np.float64) + right) / 2).astype(np.int16)
    assert np.abs(got.astype(int) - resample(mono, 44100, RATE)).max() <= 1
    assert sig.dominant_frequency(got, RATE) == pytest.approx(440, abs=2)


def test_8k_8bit_is_decoded_and_upsampled(tmp_path: Path, sig) -> None:
    tone = sig.tone(500, 0.4, 8000, amplitude=0.5)
    path = sig.write_wav(tmp_path / "u8.wav", tone, 8000, sampwidth=1)
    got = _pcm(path)
    assert len(got) == 9600
    assert sig.dominant_frequency(got, RATE) == pytest.approx(500, abs=2)
    # 8-bit keeps the top byte: compare with the same quantisation, resampled.
    quantised = ((tone.astype(np.int32) >> 8) << 8).astype(np.int16)
    assert np.abs(got.astype(int) - resample(quantised, 8000, RATE)).max() <= 1
    assert np.abs(got).max() == pytest.approx(16384, rel=0.05)


@pytest.mark.parametrize("width", [2, 3, 4])
def test_wider_pcm_keeps_top_16_bits(tmp_path: Path, sig, width: int) -> None:
    tone = sig.tone(1000, 0.2, 24000)
    path = sig.write_wav(tmp_path / f"w{width}.wav", tone, 24000, sampwidth=width)
    assert np.array_equal(_pcm(path), tone)


def test_extensible_header_is_read(tmp_path: Path, sig) -> None:
    tone = sig.tone(700, 0.2, 48000)
    frames = np.stack([tone, tone], axis=1)
    path = sig.write_extensible(tmp_path / "ext.wav", frames, 48000, bits=24)
    with pytest.raises(wave.Error):  # what the stdlib says, which is why we parse it ourselves
        wave.open(str(path)).close()
    got = _pcm(path)
    assert len(got) == 4800
    assert np.abs(got.astype(int) - resample(tone, 48000, RATE)).max() <= 1


def test_float_wav_is_read(tmp_path: Path, sig) -> None:
    tone = sig.tone(300, 0.1, 24000)
    data = (tone.astype("<f4") / 32767).tobytes()
    path = sig.write_extensible(
        tmp_path / "float.wav", tone, 24000, bits=32, subformat=3, data=data
    )
    assert np.abs(_pcm(path).astype(int) - tone).max() <= 1


def test_bad_files_say_what_and_where(tmp_path: Path, sig) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioFileError, match=r"audio\.input\.path: cannot read .*nope\.wav"):
        open_input("file", path=str(missing))

    text = tmp_path / "notes.wav"
    text.write_text("hello, not audio\n" * 10)
    with pytest.raises(AudioFileError) as info:
        open_input("file", path=str(text), where="senders.mic")
    msg = str(info.value)
    assert msg.startswith("senders.mic.path:") and "notes.wav" in msg
    assert "not a usable WAV" in msg and "expected a RIFF/WAVE" in msg

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty"):
        open_input("file", path=str(empty))

    adpcm = sig.write_extensible(tmp_path / "adpcm.wav", np.zeros(10, np.int16), 8000, subformat=2)
    with pytest.raises(AudioFileError, match="compressed or unknown"):
        open_input("file", path=str(adpcm))

    with pytest.raises(AudioFileError, match="cannot read"):
        open_input("file", path=str(tmp_path))



def test_backend_and_path_are_checked_by_the_config_schema() -> None:
    """One layer checks them: the config, which names the key; the backends trust it."""
    with pytest.raises(ConfigError) as caught:
        config.parse({"audio": {"input": {"backend": "file"}, "output": {"backend": "alsa"}}},
                     require_key=False)
    text = str(caught.value)
    assert "audio.input.path: required when audio.input.backend is 'file'" in text
    assert "audio.output.backend: expected one of sounddevice, file, none, got 'alsa'" in text


# -- input pacing ---------------------------------------------------------------------------


def test_input_delivers_file_then_silence(tmp_path: Path, sig, collector) -> None:
    tone = sig.tone(440, 0.3, 24000)
    path = sig.write_wav(tmp_path / "in.wav", tone, 24000)
    inp = open_input("file", path=str(path), block_ms=20)
    assert isinstance(inp, WavFileInput)
    assert "in.wav" in inp.description and "24000 Hz" in inp.description
    inp.start(collector)
    try:
        assert inp.finished.wait(timeout=10)
        n = collector.count
        collector.wait_blocks(n + 5, timeout=10)
    finally:
        inp.stop()
    stopped_at = collector.count
    time.sleep(0.1)
    assert collector.count == stopped_at  # nothing delivered after stop() returned
    assert all(len(b) == 960 for b in collector.blocks)  # 20 ms of pcm24 each
    got = collector.samples()
    assert np.array_equal(got[: len(tone)], tone)
    assert len(got) >= len(tone) + 5 * 480
    assert not got[len(tone) :].any()


def test_input_stop_is_prompt_and_idempotent(tmp_path: Path, sig, collector) -> None:
    path = sig.write_wav(tmp_path / "in.wav", sig.tone(440, 2.0, 16000), 16000)
    inp = open_input("file", path=str(path), block_ms=40)
    inp.start(collector)
    collector.wait_blocks(2, timeout=5)
    inp.stop()
    inp.stop()
    assert not inp.finished.is_set()


# -- output ---------------------------------------------------------------------------------


def _wav_frames(path: Path) -> tuple[tuple[int, int, int], np.ndarray]:
    with wave.open(str(path), "rb") as w:
        params = (w.getnchannels(), w.getsampwidth(), w.getframerate())
        return params, np.frombuffer(w.readframes(w.getnframes()), "<i2")


def test_output_writes_what_was_played_plus_silence(tmp_path: Path, sig, wait) -> None:
    path = tmp_path / "out.wav"
    out = open_output("file", path=str(path))
    assert isinstance(out, WavFileOutput)
    params, frames = _wav_frames(path)  # valid (empty) WAV from the moment it is opened
    assert params == (1, 2, 24000) and len(frames) == 0
    out.start()
    tone = sig.tone(880, 0.25, 24000)
    try:
        for i in range(0, len(tone), 2400):  # 100 ms deltas, as the server sends them
            out.play("item1", tone[i : i + 2400].tobytes())
        out.end_item("item1")
        assert out.received_ms("item1") == 250
        wait(lambda: out.idle, 10, "the output to drain")
        assert out.played_ms("item1") == 250
        # The file is valid while it grows, and silence keeps being written after the item.
        wait(lambda: len(_wav_frames(path)[1]) > len(tone) + 2400, 10, "trailing silence")
    finally:
        out.stop()
    out.stop()
    params, frames = _wav_frames(path)
    assert params == (1, 2, 24000)
    start = int(np.flatnonzero(frames)[0] - np.flatnonzero(tone)[0])
    assert np.array_equal(frames[start : start + len(tone)], tone)
    assert not frames[:start].any() and not frames[start + len(tone) :].any()
    assert len(frames) - start - len(tone) >= 2400


def test_output_clear_stops_playback(tmp_path: Path, sig, wait) -> None:
    path = tmp_path / "out.wav"
    out = open_output("file", path=str(path))
    out.start()
    try:
        out.play("long", sig.tone(440, 3.0, 24000).tobytes())
        wait(lambda: out.played_ms("long") >= 100, 10, "playback to begin")
        out.clear()
        assert out.idle
        played = out.played_ms("long")
        assert 100 <= played < 3000
        out.play("long", sig.tone(440, 0.5, 24000).tobytes())  # in flight before the barge-in
        assert out.idle  # the cut item stays cut
        n = len(_wav_frames(path)[1])
        wait(lambda: len(_wav_frames(path)[1]) > n + 2400, 10, "more file output")
        assert out.played_ms("long") == played
        assert out.received_ms("long") == 3500
    finally:
        out.stop()
    _, frames = _wav_frames(path)
    loud = np.flatnonzero(frames)
    assert len(loud) and loud[-1] - loud[0] < 24000 * 2  # cut well before the 3 s end


def test_output_stop_keeps_only_what_was_played(tmp_path: Path, sig, wait) -> None:
    path = tmp_path / "out.wav"
    out = open_output("file", path=str(path))
    out.start()
    out.play("a", sig.tone(440, 5.0, 24000).tobytes())
    wait(lambda: out.played_ms("a") >= 60, 10, "playback to begin")
    out.stop()
    played = out.played_ms("a")
    _, frames = _wav_frames(path)
    assert np.count_nonzero(frames) <= played * 24 + 24
    assert len(frames) < 5 * 24000


def test_output_path_problems(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match=r"audio\.output\.path: .*does not exist"):
        open_output("file", path=str(tmp_path / "no" / "such" / "out.wav"))
    with pytest.raises(AudioFileError, match=r"receivers\.rec\.path: cannot write"):
        open_output("file", path=str(tmp_path), where="receivers.rec")


def test_riff_sizes_in_output_header(tmp_path: Path, sig, wait) -> None:
    """The RIFF and data sizes are right while writing, not only after close."""
    path = tmp_path / "out.wav"
    out = open_output("file", path=str(path))
    out.start()
    try:
        wait(lambda: path.stat().st_size > 44 + 4800, 10, "the file to grow")
        raw = path.read_bytes()
    finally:
        out.stop()
    riff_size = struct.unpack_from("<I", raw, 4)[0]
    data_size = struct.unpack_from("<I", raw, 40)[0]
    assert raw[36:40] == b"data"
    assert riff_size == len(raw) - 8 and data_size == len(raw) - 44
