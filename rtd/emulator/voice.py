"""Speech for the emulator's replies: PCM16 little-endian mono at 24 kHz.

Two engines, because tests and demos want different things:

- "espeak" runs `espeak-ng` (real, intelligible speech) and resamples it to 24 kHz. It is what
  `rtd demo` should play, so a person hears an answer.
- "tones" is a deterministic buzz computed from the text alone with numpy (a voiced tone per
  character, ~60 ms each, with smooth envelopes so there are no clicks). No subprocess, same
  bytes on every run: what tests use.

"auto" picks espeak when `espeak-ng` is on PATH, else tones. Results are cached per text.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from rtd.exceptions import ConfigError, RtdError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24000
"""Output sample rate in Hz (the only PCM rate the GA protocol allows)."""

ENGINES = ("auto", "espeak", "tones")

_SEGMENT = int(0.060 * SAMPLE_RATE)  # samples per character (60 ms)
_PAUSES = frozenset(".,;:!?")
_VOWELS = frozenset("aeiouy")
_ESPEAK = "espeak-ng"


def resolve_engine(engine: str) -> str:
    """Map "auto" to the engine that will really run; reject unknown names."""
    if engine not in ENGINES:
        raise ConfigError([f"voice engine {engine!r}: unknown (use one of {', '.join(ENGINES)})"])
    if engine == "auto":
        return "espeak" if shutil.which(_ESPEAK) else "tones"
    if engine == "espeak" and not shutil.which(_ESPEAK):
        raise ConfigError([f"voice engine 'espeak': {_ESPEAK} is not on PATH; install it "
                           "(apt-get install espeak-ng) or use 'tones'"])
    return engine


def synthesize(text: str, engine: str = "auto") -> bytes:
    """Speak `text` as PCM16 LE mono 24 kHz; the same text gives the same bytes per engine."""
    return _synthesize(text, resolve_engine(engine))


@functools.lru_cache(maxsize=256)
def _synthesize(text: str, engine: str) -> bytes:
    if engine == "espeak":
        return espeak(text)
    return tones(text)


def tones(text: str) -> bytes:
    """Deterministic voice-like audio for `text`: one smooth voiced tone per character.

    Letters and digits sound (vowels louder), spaces are short dips, punctuation a longer pause.
    Pitch and loudness are smoothed over ~10-20 ms and the phase is continuous, so the result
    has no clicks; it is clearly above any VAD threshold while "speaking".
    """
    if not text.strip():
        return b""
    levels: list[float] = []
    freqs: list[float] = []
    lengths: list[int] = []
    pitch = 150.0
    for ch in text:  # per character, never per sample
        low = ch.lower()
        if ch.isspace():
            level, length = 0.0, _SEGMENT
        elif ch in _PAUSES:
            level, length = 0.0, 2 * _SEGMENT
        else:
            pitch = 100.0 + (ord(low) * 53) % 120
            level = 0.55 if low in _VOWELS else (0.35 if ch.isalnum() else 0.25)
            length = _SEGMENT
        levels.append(level)
        freqs.append(pitch)
        lengths.append(length)
    # Trailing pauses make the reply longer without saying anything: keep at most one.
    while len(levels) > 1 and levels[-1] == 0.0 and levels[-2] == 0.0:
        levels.pop(), freqs.pop(), lengths.pop()

    amp = _smooth(np.repeat(np.asarray(levels), lengths), 0.010)
    freq = _smooth(np.repeat(np.asarray(freqs), lengths), 0.020)
    fade = min(int(0.010 * SAMPLE_RATE), amp.size // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        amp[:fade] *= ramp
        amp[-fade:] *= ramp[::-1]
    phase = 2.0 * np.pi * np.cumsum(freq) / SAMPLE_RATE
    voice = np.zeros_like(phase)
    for harmonic in range(1, 7):  # six vectorised passes: a buzz with a voice-like spectrum
        voice += np.sin(harmonic * phase) / harmonic
    voice /= 1.8
    pcm = np.clip(amp * voice * 0.9 * 32767.0, -32768, 32767).astype("<i2")
    return pcm.tobytes()


def _smooth(values: np.ndarray, seconds: float) -> np.ndarray:
    """Moving Hann-window average that keeps the edges at their own values."""
    width = max(3, int(seconds * SAMPLE_RATE) | 1)
    kernel = np.hanning(width)
    kernel /= kernel.sum()
    padded = np.pad(values, width // 2, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def espeak(text: str) -> bytes:
    """Real speech from espeak-ng, resampled to 24 kHz."""
    if not text.strip():
        return b""
    exe = shutil.which(_ESPEAK)
    if exe is None:
        raise RtdError(f"{_ESPEAK} is not on PATH; install it or use the 'tones' voice engine")
    with tempfile.TemporaryDirectory(prefix="rtd-espeak-") as tmp:
        out = Path(tmp) / "speech.wav"
        try:
            subprocess.run([exe, "-v", "en-us", "-w", str(out), "--stdin"],
                           input=text.encode("utf-8"), capture_output=True, check=True,
                           timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            raise RtdError(f"{_ESPEAK} failed: {exc} {detail.decode(errors='replace')}".strip()
                           ) from exc
        with wave.open(str(out), "rb") as wav:
            rate = wav.getframerate()
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise RtdError(f"{_ESPEAK} produced unexpected audio "
                               f"({wav.getnchannels()} channels, {8 * wav.getsampwidth()} bit)")
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if rate != SAMPLE_RATE and samples.size:
        import soxr  # type: ignore[import-untyped]  # imported here: only espeak needs it

        samples = soxr.resample(samples, rate, SAMPLE_RATE)
    return np.asarray(samples, dtype="<i2").tobytes()
