"""Energy-based voice activity detection standing in for the service's server VAD.

The real service uses a model; the emulator only needs something predictable that behaves the
same way on clean test audio: speech starts when 20 ms frames stay louder than a level derived
from `threshold` for at least 60 ms, and stops after `silence_duration_ms` of quieter frames.
Levels are computed per frame with numpy; the state machine steps per frame (50 per second of
audio), never per sample.

Positions are absolute sample indexes (24 kHz) over all audio appended on the connection, so
`audio_start_ms` / `audio_end_ms` follow directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

SAMPLE_RATE = 24000
FRAME = SAMPLE_RATE // 50  # 20 ms
FRAME_MS = 20


@dataclass(frozen=True)
class VadSettings:
    """Turn-detection parameters, as in `session.audio.input.turn_detection`."""

    threshold: float = 0.5
    """0..1; mapped to a frame level of -60 + 50 * threshold dBFS (0.5 -> -35 dBFS)."""
    prefix_padding_ms: int = 300
    """Audio kept before the detected start (milliseconds); included in `audio_start_ms`."""
    silence_duration_ms: int = 200
    """Quiet time that ends speech (milliseconds)."""
    min_speech_ms: int = 60
    """Loud time needed before speech counts as started (milliseconds)."""

    @property
    def level_dbfs(self) -> float:
        """Frame RMS level (dBFS) above which a frame counts as speech."""
        return -60.0 + 50.0 * self.threshold


@dataclass(frozen=True)
class VadEvent:
    """Speech started or stopped at an absolute sample index (24 kHz)."""

    kind: Literal["start", "stop"]
    sample: int


class EnergyVad:
    """Frame-energy speech detector over a stream of int16 samples."""

    def __init__(self, settings: VadSettings, position: int = 0) -> None:
        self.settings = settings
        self._pos = position  # absolute index of the first sample not yet in a frame
        self._tail = np.zeros(0, dtype=np.int16)
        self._min_frames = max(1, -(-settings.min_speech_ms // FRAME_MS))
        self._quiet_frames = max(1, -(-settings.silence_duration_ms // FRAME_MS))
        self._padding = settings.prefix_padding_ms * SAMPLE_RATE // 1000
        self.speaking = False
        self._loud_run = 0
        self._run_start = 0
        self._quiet_run = 0
        self._last_stop = position  # a new start never reaches back before the last stop

    def reset(self, position: int) -> None:
        """Forget any speech in progress and continue from `position` (after a commit/clear)."""
        self._pos = position
        self._tail = np.zeros(0, dtype=np.int16)
        self.speaking = False
        self._loud_run = 0
        self._quiet_run = 0
        self._last_stop = position

    def feed(self, samples: np.ndarray, floor: int = 0) -> list[VadEvent]:
        """Analyse more samples; `floor` is the earliest sample a start may reach back to."""
        data = np.concatenate([self._tail, samples]) if self._tail.size else samples
        count = data.size // FRAME
        self._tail = np.array(data[count * FRAME:], dtype=np.int16)
        if count == 0:
            return []
        frames = data[: count * FRAME].astype(np.float64).reshape(count, FRAME)
        rms = np.sqrt(np.mean(frames * frames, axis=1)) / 32768.0
        loud = 20.0 * np.log10(np.maximum(rms, 1e-10)) > self.settings.level_dbfs
        events: list[VadEvent] = []
        for index, is_loud in enumerate(loud.tolist()):
            start = self._pos + index * FRAME
            if not self.speaking:
                if not is_loud:
                    self._loud_run = 0
                    continue
                if self._loud_run == 0:
                    self._run_start = start
                self._loud_run += 1
                if self._loud_run >= self._min_frames:
                    self.speaking = True
                    self._quiet_run = 0
                    begin = max(floor, self._last_stop, self._run_start - self._padding, 0)
                    events.append(VadEvent("start", begin))
            elif is_loud:
                self._quiet_run = 0
            else:
                self._quiet_run += 1
                if self._quiet_run >= self._quiet_frames:
                    self.speaking = False
                    self._loud_run = 0
                    self._last_stop = start + FRAME
                    events.append(VadEvent("stop", self._last_stop))
        self._pos += count * FRAME
        return events
