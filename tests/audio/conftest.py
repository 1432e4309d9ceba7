"""Signals, WAV writers and analysis shared by the audio tests."""

from __future__ import annotations

import struct
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


class Signals:
    """Test signals and the measurements the tests assert on."""

    @staticmethod
    def tone(
        freq: float, seconds: float, rate: int, amplitude: float = 0.5, fade_ms: float = 10.0
    ) -> np.ndarray:
        """A sine as int16, with short fades so it starts and stops without clicks."""
        n = int(round(seconds * rate))
        t = np.arange(n) / rate
        x = amplitude * np.sin(2 * np.pi * freq * t)
        fade = min(n // 2, int(rate * fade_ms / 1000))
        if fade:
            ramp = np.linspace(0.0, 1.0, fade)
            x[:fade] *= ramp
            x[n - fade :] *= ramp[::-1]
        return np.rint(x * 32767).astype(np.int16)

    @staticmethod
    def chirp(
        f0: float, f1: float, seconds: float, rate: int, amplitude: float = 0.5
    ) -> np.ndarray:
        """A linear sweep: its cross-correlation has one sharp peak, unlike a tone's."""
        n = int(round(seconds * rate))
        t = np.arange(n) / rate
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
        x = amplitude * np.sin(phase)
        fade = int(rate * 0.01)
        ramp = np.linspace(0.0, 1.0, fade)
        x[:fade] *= ramp
        x[n - fade :] *= ramp[::-1]
        return np.rint(x * 32767).astype(np.int16)

    @staticmethod
    def write_wav(path: Path, frames: np.ndarray, rate: int, sampwidth: int = 2) -> Path:
        """Write int16 frames (n,) or (n, ch) with the stdlib writer at 8/16/24/32 bits."""
        frames = np.asarray(frames, dtype=np.int16)
        if frames.ndim == 1:
            frames = frames.reshape(-1, 1)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(frames.shape[1])
            w.setsampwidth(sampwidth)
            w.setframerate(rate)
            w.writeframes(Signals.encode(frames, sampwidth))
        return path

    @staticmethod
    def encode(frames: np.ndarray, sampwidth: int) -> bytes:
        s = frames.astype(np.int32).reshape(-1)
        if sampwidth == 1:
            return ((s >> 8) + 128).astype(np.uint8).tobytes()
        if sampwidth == 2:
            return s.astype("<i2").tobytes()
        if sampwidth == 3:
            b = (s << 8).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
            return np.ascontiguousarray(b).tobytes()
        if sampwidth == 4:
            return (s << 16).astype("<i4").tobytes()
        raise ValueError(sampwidth)

    @staticmethod
    def write_extensible(
        path: Path,
        frames: np.ndarray,
        rate: int,
        bits: int = 16,
        subformat: int = 1,
        data: bytes | None = None,
    ) -> Path:
        """A WAVE_FORMAT_EXTENSIBLE file, which Python 3.11's `wave` refuses to read."""
        frames = np.asarray(frames, dtype=np.int16)
        if frames.ndim == 1:
            frames = frames.reshape(-1, 1)
        ch = frames.shape[1]
        if data is None:
            data = Signals.encode(frames, bits // 8)
        block = ch * bits // 8
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = (
            struct.pack("<HHIIHHHHI", 0xFFFE, ch, rate, rate * block, block, bits, 22, bits, 0)
            + struct.pack("<H", subformat)
            + guid_tail
        )
        body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        body += b"data" + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")
        path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
        return path

    @staticmethod
    def dominant_frequency(samples: np.ndarray, rate: int) -> float:
        x = np.asarray(samples, dtype=np.float64)
        x = (x - x.mean()) * np.hanning(len(x))
        spectrum = np.abs(np.fft.rfft(x))
        k = int(np.argmax(spectrum[1:])) + 1
        # Parabolic interpolation around the peak bin for sub-bin accuracy.
        if 0 < k < len(spectrum) - 1:
            a, b, c = spectrum[k - 1], spectrum[k], spectrum[k + 1]
            denom = a - 2 * b + c
            if denom:
                k = k + 0.5 * (a - c) / denom
        return float(k * rate / len(x))

    @staticmethod
    def window_rms(samples: np.ndarray, window: int) -> np.ndarray:
        n = len(samples) // window
        x = np.asarray(samples[: n * window], dtype=np.float64).reshape(n, window)
        return np.sqrt((x * x).mean(axis=1))

    @staticmethod
    def loud_span(samples: np.ndarray, rate: int, floor: float = 1000.0) -> tuple[int, int]:
        """[start, end) sample indices of the 10 ms windows above `floor` RMS (0, 0 if none)."""
        window = rate // 100
        loud = np.flatnonzero(Signals.window_rms(samples, window) > floor)
        if len(loud) == 0:
            return 0, 0
        return int(loud[0]) * window, (int(loud[-1]) + 1) * window

    @staticmethod
    def xcorr_peak(signal: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
        """Offset of `reference` in `signal` and the normalised correlation there (1 = exact)."""
        x = np.asarray(signal, dtype=np.float64)
        r = np.asarray(reference, dtype=np.float64)
        n = 1 << int(np.ceil(np.log2(len(x) + len(r))))
        corr = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(r, n)), n)[: len(x)]
        lag = int(np.argmax(corr))
        segment = x[lag : lag + len(r)]
        denom = np.linalg.norm(segment) * np.linalg.norm(r[: len(segment)])
        return lag, float(corr[lag] / denom) if denom else 0.0


@pytest.fixture
def sig() -> type[Signals]:
    return Signals


class Collector:
    """An on_audio callback that records blocks and lets a test wait for an amount of audio."""

    def __init__(self) -> None:
        self.blocks: list[bytes] = []
        self._cond = threading.Condition()

    def __call__(self, pcm: bytes) -> None:
        with self._cond:
            self.blocks.append(pcm)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"timed out after {timeout} s waiting for {what}")
                self._cond.wait(left)

    def wait_blocks(self, n: int, timeout: float) -> None:
        self.wait_for(lambda: len(self.blocks) >= n, timeout, f"{n} audio blocks")

    @property
    def count(self) -> int:
        with self._cond:
            return len(self.blocks)

    def samples(self, start_block: int = 0) -> np.ndarray:
        with self._cond:
            data = b"".join(self.blocks[start_block:])
        return np.frombuffer(data, dtype="<i2")


@pytest.fixture
def collector() -> Collector:
    return Collector()


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.01
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def wait() -> Callable[..., None]:
    """`wait(predicate, timeout, what)`: poll with a deadline, failing with `what`."""
    return wait_until
