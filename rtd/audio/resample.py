"""Rate and channel conversion between the wire format (24 kHz mono int16) and hardware.

sounddevice never resamples, and USB devices often only do 44.1/48 kHz stereo, so rtd converts
in process. One soxr stream is kept across blocks so the filter state carries over and block
boundaries are seamless (no clicks). soxr runs in float32 here: its int16 mode adds TPDF
dither, which turns digital silence into +-1 noise and makes output depend on the block split.
"""

from __future__ import annotations

import numpy as np
import soxr

_SCALE = 32768.0
_QUALITY = "HQ"


def _to_float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) * np.float32(1.0 / _SCALE)


def _to_int16(samples: np.ndarray) -> np.ndarray:
    scaled = np.rint(samples * np.float32(_SCALE))
    np.clip(scaled, -32768.0, 32767.0, out=scaled)
    return scaled.astype(np.int16)


def mix_channels(frames: np.ndarray, out_channels: int) -> np.ndarray:
    """Convert int16 frames shaped (n, in_channels) to (n, out_channels).

    Down to mono averages the channels (so a one-sided stereo mic keeps half its level rather
    than clipping); mono up to N duplicates. Other combinations go through mono.
    """
    in_channels = frames.shape[1]
    if in_channels == out_channels:
        return frames
    if in_channels == 1:
        mono = frames
    else:
        mono = frames.mean(axis=1, dtype=np.float32)
        mono = np.rint(mono).astype(np.int16).reshape(-1, 1)
    if out_channels == 1:
        return mono
    return np.repeat(mono, out_channels, axis=1)


class StreamResampler:
    """Converts a stream of int16 interleaved PCM blocks between rates and channel counts.

    `process()` may be fed any number of bytes; partial frames are carried to the next call.
    ``quality`` is soxr's recipe: "HQ" for files; the live device paths use "LQ", whose filter
    holds back about 1 ms instead of HQ's 32 ms at 24 <-> 48 kHz.
    `flush()` ends a stretch of audio (an item, a file) and returns the filter's tail; the
    resampler is then ready for a new, unrelated stretch.
    """

    def __init__(
        self, in_rate: int, out_rate: int, in_channels: int = 1, out_channels: int = 1,
        quality: str = _QUALITY,
    ) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"channel counts must be >= 1, got {in_channels} -> {out_channels}")
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self._in_frame_bytes = 2 * self.in_channels
        self._carry = b""
        self._same_rate = self.in_rate == self.out_rate
        self.identity = self._same_rate and self.in_channels == self.out_channels
        # Resample the fewest channels: mix down before, duplicate after.
        self._work_channels = self.in_channels if self.in_channels == self.out_channels else 1
        self._stream: soxr.ResampleStream | None = None
        if not self._same_rate:
            self._stream = soxr.ResampleStream(
                self.in_rate,
                self.out_rate,
                self._work_channels,
                dtype="float32",
                quality=quality,
            )

    def process(self, pcm: bytes) -> bytes:
        """Convert a block; returns whatever output the filter has ready (may be empty)."""
        if self._carry:
            pcm = self._carry + pcm
            self._carry = b""
        usable = len(pcm) - len(pcm) % self._in_frame_bytes
        if usable != len(pcm):
            self._carry = bytes(pcm[usable:])
            pcm = pcm[:usable]
        if self.identity:
            return bytes(pcm)
        if not pcm:
            return b""
        frames = np.frombuffer(pcm, dtype="<i2").reshape(-1, self.in_channels)
        return self._convert(frames, last=False)

    def flush(self) -> bytes:
        """End the current stretch: return the filter's tail and reset for the next one."""
        self._carry = b""
        if self._stream is None:
            return b""
        empty = np.zeros((0, self.in_channels), dtype=np.int16)
        out = self._convert(empty, last=True)
        self._stream.clear()
        return out

    def reset(self) -> None:
        """Drop buffered input and filter state without producing output (barge-in)."""
        self._carry = b""
        if self._stream is not None:
            self._stream.clear()

    def _convert(self, frames: np.ndarray, last: bool) -> bytes:
        if self._work_channels != self.in_channels:
            frames = mix_channels(frames, 1)
        if self._stream is not None:
            data = _to_float(frames)
            if self._work_channels == 1:
                data = data.reshape(-1)
            out = self._stream.resample_chunk(data, last=last)
            frames = _to_int16(out).reshape(-1, self._work_channels)
        frames = mix_channels(frames, self.out_channels)
        return frames.astype("<i2", copy=False).tobytes()


def resample(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a whole mono int16 signal in one go (test signals, prompts, files)."""
    samples = np.asarray(samples, dtype=np.int16).reshape(-1)
    if in_rate == out_rate:
        return samples.copy()
    out = soxr.resample(_to_float(samples), in_rate, out_rate, quality=_QUALITY)
    return _to_int16(out)


class FirResampler:
    """A small-ratio rate converter (up/down by 2, 3, ...) with a linear-phase FIR: ~1 ms delay.

    The echo canceller works at 16 kHz, between the 24 kHz wire and the 24 or 48 kHz devices,
    on every microphone block. soxr holds back 11 to 21 ms on average there (it releases output
    in lumps); this filter returns each block's output at once, delayed by half its length
    (about 1 ms). Blocks whose length times ``up`` is a multiple of ``down`` (10 ms blocks at
    these rates) keep the decimation phase; others are handled too, the phase carried across.
    Mono float arrays in, float arrays out (the caller converts to int16 once).
    """

    TAPS_PER_PHASE = 32
    """Taps per output phase: a 97-tap filter at 48 kHz for 24 <-> 16 kHz, about 1 ms delay."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        from math import gcd

        g = gcd(int(in_rate), int(out_rate))
        self.up = int(out_rate) // g
        self.down = int(in_rate) // g
        if self.up > 6 or self.down > 6:
            raise ValueError(f"FirResampler is for small ratios, not {in_rate} -> {out_rate}")
        n = self.TAPS_PER_PHASE * max(self.up, self.down) + 1
        # Windowed sinc at the lower Nyquist (a little inside it), at the up-sampled rate.
        cutoff = 0.5 / max(self.up, self.down) * 0.92
        k = np.arange(n) - (n - 1) / 2
        h = 2 * cutoff * np.sinc(2 * cutoff * k) * np.kaiser(n, 8.0)
        self._h = (h / h.sum() * self.up).astype(np.float64)
        self._state = np.zeros(n - 1)
        self._pos = 0
        """Samples of the up-sampled stream so far: the decimation phase."""
        self.delay = (n - 1) / 2 / (int(in_rate) * self.up)
        """Seconds the filter delays its input."""

    def process(self, x: np.ndarray) -> np.ndarray:
        if self.up == self.down == 1:
            return np.asarray(x, dtype=np.float64)
        y = np.zeros(len(x) * self.up)
        y[:: self.up] = x
        work = np.concatenate((self._state, y))
        filtered = np.convolve(work, self._h, mode="valid")
        first = (-self._pos) % self.down
        self._pos += len(y)
        self._state = work[len(work) - len(self._state):]
        return filtered[first :: self.down]

    def reset(self) -> None:
        self._state[:] = 0
        self._pos = 0
