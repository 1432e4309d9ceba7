"""The echo policies and the speaker's reference, without a sound card: signals in, what the
server would get out. The room itself is tested in test_echo_pulse.py."""

from __future__ import annotations

import builtins
import logging

import numpy as np
import pytest

from rtd.audio.echo import (
    FRAME,
    MAX_LEAD_FRAMES,
    CancelEcho,
    MuteEcho,
    NoEcho,
    Reference,
    cancel_unavailable,
    make_policy,
)
from rtd.audio.resample import FirResampler

RATE = 24000


def _tone(seconds: float, freq: float = 440.0, rate: int = RATE, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.rint(amp * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def test_the_reference_hands_over_in_order_and_never_lags_far_behind() -> None:
    ref = Reference()
    ref.write(np.arange(480, dtype=np.int16).tobytes())
    got, waiting = ref.take(240)
    assert np.array_equal(got[:, 0], np.arange(240)) and waiting == 240
    # the microphone side stalls: what waits beyond the allowed lead is dropped, oldest first
    for _ in range(20):
        ref.write(np.full(240, 7, np.int16).tobytes())
    got, waiting = ref.take(240)
    assert waiting == MAX_LEAD_FRAMES * 240
    assert ref.dropped > 0


def test_the_reference_follows_the_speakers_format() -> None:
    ref = Reference()
    ref.configure(48000, 2)
    generation = ref.generation
    ref.write(np.ones((480, 2), np.int16).tobytes())
    got, _ = ref.take(960)
    assert got.shape == (480, 2)
    ref.configure(48000, 2)  # the same format: nothing changes
    assert ref.generation == generation


def test_mute_sends_silence_while_the_speaker_sounds_and_for_the_tail() -> None:
    ref = Reference()
    mute = MuteEcho(ref, tail_ms=200)
    mic = _tone(0.02, 1000).tobytes()  # 20 ms blocks of "user"
    assert mute.process(mic) == mic  # nothing played: the microphone is live
    out = []
    for i in range(60):  # 1.2 s: 0.4 s of speaker, then quiet
        if i < 20:
            ref.write(_tone(0.02, 300).tobytes())
        else:
            ref.write(bytes(960))
        out.append(np.frombuffer(mute.process(mic), "<i2"))
    blocks = [b.any() for b in out]
    hold_blocks = (200 + (ref.latency + mute.input_latency + 0.1) * 1000) / 20
    assert not any(blocks[:20]), "the microphone was live while the speaker played"
    assert not any(blocks[20 : 20 + int(hold_blocks)]), "the tail was not muted"
    assert all(blocks[20 + int(hold_blocks) + 1 :]), "the microphone did not come back"
    assert all(len(b) == 480 for b in out)  # silence is streamed, not withheld


def test_policies_carry_a_partial_frame_to_the_next_block() -> None:
    mute = MuteEcho(Reference(), tail_ms=0)
    # 12.5 ms blocks: 10 ms frames go out, the rest waits for the next block
    out = [len(mute.process(bytes(2 * 300))) // (2 * FRAME) for _ in range(4)]
    assert out == [1, 1, 1, 2]
    assert NoEcho().process(b"abcd") == b"abcd"


@pytest.mark.skipif(cancel_unavailable() is not None, reason=str(cancel_unavailable()))
@pytest.mark.parametrize("speaker_rate", [24000, 48000, 44100])
def test_cancel_takes_the_echo_out_of_a_simulated_room(speaker_rate: int) -> None:
    """The speaker's own signal, delayed 40 ms and attenuated, is what the mic hears."""
    ref = Reference()
    ref.configure(speaker_rate, 1)
    aec = CancelEcho(ref)
    rng = np.random.default_rng(1)
    played = np.clip(rng.standard_normal(6 * RATE) * 3000 *
                     (np.sin(np.arange(6 * RATE) / RATE * 2 * np.pi * 2) > -0.3), -32768, 32767
                     ).astype(np.int16)
    from rtd.audio.resample import resample

    at_speaker = resample(played, RATE, speaker_rate) if speaker_rate != RATE else played
    delay = int(0.04 * RATE)
    mic = np.zeros_like(played)
    mic[delay:] = (played[:-delay] * 0.3).astype(np.int16)
    out = []
    step = speaker_rate // 50
    for i in range(len(played) // 480):  # 20 ms blocks, speaker first as in the room
        ref.write(at_speaker[i * step : (i + 1) * step].tobytes())
        out.append(np.frombuffer(aec.process(mic[i * 480 : (i + 1) * 480].tobytes()), "<i2"))
    heard = np.concatenate(out).astype(np.float64)
    late = slice(3 * RATE, 6 * RATE)  # after AEC3 converged
    before = np.sqrt((mic[late].astype(np.float64) ** 2).mean())
    after = np.sqrt((heard[late] ** 2).mean())
    assert 20 * np.log10(before / max(after, 1.0)) >= 15


def test_without_the_canceller_cancel_falls_back_to_mute_saying_why(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real_import = builtins.__import__

    def no_webrtc(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("pywebrtc_audio"):
            raise ImportError("No module named 'pywebrtc_audio'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_webrtc)
    with caplog.at_level(logging.WARNING):
        policy = make_policy("cancel", Reference(), tail_ms=300)
    assert policy.mode == "mute"
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "pywebrtc-audio" in lines[0] and "audio.echo" in lines[0]
    assert make_policy("none", Reference()).mode == "none"


@pytest.mark.parametrize(("a", "b"), [(24000, 16000), (48000, 24000), (16000, 24000)])
def test_fir_resampler_keeps_speech_band_and_rejects_aliases(a: int, b: int) -> None:
    def level(freq: float) -> float:
        r = FirResampler(a, b)
        x = _tone(1.0, freq, a).astype(np.float64)
        y = np.concatenate([r.process(x[i : i + a // 100]) for i in range(0, a, a // 100)])
        assert len(y) == b  # 10 ms in, 10 ms out: nothing held back
        y = y[b // 10 :]
        return 20 * np.log10(np.sqrt((y * y).mean()) / (0.5 * 32767 / np.sqrt(2)))

    assert abs(level(1000)) < 0.1 and abs(level(5000)) < 0.5
    if b < a:
        assert level(b / 2 + 1500) < -60  # above the new Nyquist: filtered, not folded
    assert FirResampler(a, b).delay < 0.0015


@pytest.mark.skipif(cancel_unavailable() is not None, reason=str(cancel_unavailable()))
def test_cancel_rests_while_the_speaker_is_quiet_and_wakes_when_it_sounds() -> None:
    from rtd.audio.echo import IDLE_FRAMES

    ref = Reference()
    aec = CancelEcho(ref)
    user = _tone(0.02, 500)
    for _ in range(IDLE_FRAMES // 2 + 1):  # it starts awake, to learn the quiet room
        ref.write(bytes(960))
        aec.process(user.tobytes())
    for _ in range(10):  # nothing played for 2 s: the microphone passes untouched
        ref.write(bytes(960))
        assert aec.process(user.tobytes()) == user.tobytes()
    ref.write(_tone(0.02, 300).tobytes())  # the speaker sounds: the canceller runs
    aec.process(user.tobytes())
    resting = aec.bypassed_frames
    for _ in range(IDLE_FRAMES // 2 - 1):  # the echo's tail: still cancelling
        ref.write(bytes(960))
        aec.process(user.tobytes())
    assert aec.bypassed_frames == resting
    for _ in range(10):
        ref.write(bytes(960))
        aec.process(user.tobytes())
    assert aec.bypassed_frames > resting  # quiet for 2 s: resting again
