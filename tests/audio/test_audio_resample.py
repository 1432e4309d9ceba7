"""StreamResampler: seamless across blocks, exact channel mixing, identity passthrough."""

from __future__ import annotations

import numpy as np
import pytest

from rtd.audio.resample import StreamResampler, mix_channels, resample

RATE_PAIRS = [
    (16000, 24000),
    (44100, 24000),
    (48000, 24000),
    (24000, 16000),
    (24000, 44100),
    (24000, 48000),
]


def _signal(rate: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    x = 9000 * np.sin(2 * np.pi * 440 * t) + 4000 * np.sin(2 * np.pi * 3100 * t)
    x += rng.normal(0, 1500, len(t))
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def _stream(r: StreamResampler, data: bytes, rng: np.random.Generator, max_bytes: int) -> bytes:
    """Feed `data` in random byte-sized pieces (splitting frames too), then flush."""
    out = []
    i = 0
    while i < len(data):
        n = int(rng.integers(1, max_bytes))
        out.append(r.process(data[i : i + n]))
        i += n
    out.append(r.flush())
    return b"".join(out)


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_chunked_stream_equals_one_shot(in_rate: int, out_rate: int) -> None:
    """Random block splits give the same samples as resampling the whole signal: no clicks."""
    x = _signal(in_rate, 1.0, seed=in_rate + out_rate)
    expected = resample(x, in_rate, out_rate)
    rng = np.random.default_rng(7)
    for max_bytes in (7, 301, 9000):
        got = np.frombuffer(
            _stream(StreamResampler(in_rate, out_rate), x.tobytes(), rng, max_bytes), dtype="<i2"
        )
        assert len(got) == len(expected) == round(len(x) * out_rate / in_rate)
        assert np.abs(got.astype(int) - expected).max() <= 1


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_tone_survives_resampling(in_rate: int, out_rate: int, sig) -> None:
    tone = sig.tone(1000, 0.5, in_rate)
    out = resample(tone, in_rate, out_rate)
    assert sig.dominant_frequency(out, out_rate) == pytest.approx(1000, abs=2)
    assert np.abs(out).max() == pytest.approx(np.abs(tone).max(), rel=0.02)


def test_reusable_after_flush() -> None:
    """After flush() the resampler starts clean: the same input gives the same output."""
    x = _signal(48000, 0.3, seed=1).tobytes()
    r = StreamResampler(48000, 24000)
    first = r.process(x) + r.flush()
    second = r.process(x) + r.flush()
    assert first == second
    assert first == resample(np.frombuffer(x, "<i2"), 48000, 24000).tobytes()


def test_silence_stays_digital_zero() -> None:
    """No dither: a quiet room stays exactly 0 (matters to VAD and to silence tests)."""
    r = StreamResampler(44100, 24000, 2, 1)
    out = r.process(bytes(4410 * 4)) + r.flush()
    assert out and not any(out)


def test_reset_drops_pending_audio() -> None:
    """reset() (barge-in) forgets buffered input, a partial frame included."""
    x = _signal(48000, 0.2, seed=3).tobytes()
    r = StreamResampler(48000, 24000)
    r.process(x[:999])  # odd length: leaves a partial frame carried
    r.reset()
    fresh = StreamResampler(48000, 24000)
    assert r.process(x) + r.flush() == fresh.process(x) + fresh.flush()


def test_identity_passes_bytes_through() -> None:
    r = StreamResampler(24000, 24000)
    assert r.identity
    data = _signal(24000, 0.1, seed=4).tobytes()
    assert r.process(data[:11]) + r.process(data[11:]) == data
    assert r.flush() == b""


def test_stereo_to_mono_averages() -> None:
    n = 480
    frames = np.empty((n, 2), dtype=np.int16)
    frames[:, 0] = 1000
    frames[:, 1] = 3000
    out = StreamResampler(24000, 24000, 2, 1).process(frames.tobytes())
    assert np.all(np.frombuffer(out, "<i2") == 2000)
    extremes = np.array([[32767, 32767], [-32768, -32768], [32767, -32768]], dtype=np.int16)
    mixed = mix_channels(extremes, 1).reshape(-1)
    assert list(mixed) == [32767, -32768, 0]


def test_stereo_to_mono_with_resampling_matches_mono() -> None:
    mono = _signal(48000, 0.5, seed=5)
    stereo = np.repeat(mono.reshape(-1, 1), 2, axis=1)
    r = StreamResampler(48000, 24000, 2, 1)
    got = np.frombuffer(r.process(stereo.tobytes()) + r.flush(), "<i2")
    assert np.abs(got.astype(int) - resample(mono, 48000, 24000)).max() <= 1


def test_mono_to_stereo_duplicates() -> None:
    mono = _signal(24000, 0.5, seed=6)
    r = StreamResampler(24000, 48000, 1, 2)
    got = np.frombuffer(r.process(mono.tobytes()) + r.flush(), "<i2").reshape(-1, 2)
    assert np.array_equal(got[:, 0], got[:, 1])
    assert np.abs(got[:, 0].astype(int) - resample(mono, 24000, 48000)).max() <= 1
    same_rate = StreamResampler(24000, 24000, 1, 2).process(mono.tobytes())
    assert np.array_equal(np.frombuffer(same_rate, "<i2").reshape(-1, 2)[:, 1], mono)


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        StreamResampler(0, 24000)
    with pytest.raises(ValueError):
        StreamResampler(24000, 24000, 0, 1)
