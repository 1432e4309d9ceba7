"""Keeping the assistant from hearing itself: the speaker's reference, and the echo policies.

A loudspeaker in the room reaches the microphone; without a policy the server hears the
assistant and answers its own voice. `[audio] echo` chooses one:

- ``cancel``: WebRTC's AEC3 (`pywebrtc-audio`) subtracts the speaker's sound from the
  microphone, which keeps listening, so the user can interrupt. Its reference is what rtd
  itself handed to the speaker, taken where samples leave for the device (`Reference`, written
  by the output's device callback or file writer): the server sends audio faster than real
  time, so when a delta arrived says nothing of when it is heard. AEC3 tolerates a reference
  that leads its echo by a few hundred ms, not one that lags, so the reference is consumed in
  step with the microphone and never allowed to fall behind it.
- ``mute``: the microphone sends digital silence (still at real-time pace) while the speaker
  plays and for ``echo_tail_ms`` after, plus the time sound takes from the speaker's buffer to
  the microphone's.
- ``none``: a headset, or echo cancelled elsewhere (a sound server's echo-cancel device).

AEC3 runs at the wire's 24 kHz on 10 ms frames; a speaker at another rate has its reference
converted by `FirResampler` (2:1 and the like, about 1 ms) or soxr.
"""

from __future__ import annotations

import abc
import logging
import threading

import numpy as np

from rtd.audio.base import RATE
from rtd.audio.resample import FirResampler, StreamResampler

logger = logging.getLogger(__name__)

FRAME = RATE // 100
"""Samples per 10 ms frame of wire audio: the unit every policy works in."""
REFERENCE_SECONDS = 1.0
"""Speaker audio the reference holds for the microphone side before the oldest is dropped."""
MAX_LEAD_FRAMES = 4
"""10 ms frames of speaker audio the reference may hold beyond what the microphone took: more
means the microphone side fell behind (a stall, clocks drifting apart), and what the listener
heard long ago is dropped, so the reference never lags the echo it has to cancel."""
LOUD = 64
"""A speaker sample above this (-54 dBFS) counts as sound for `mute`."""
PATH_SLACK_SECONDS = 0.1
"""Added to the devices' reported latencies for `mute`: the room and the sound server."""
IDLE_FRAMES = 200
"""10 ms frames (2 s) of a quiet speaker after which `cancel` stops running the canceller and
passes the microphone through: most of a day the box only listens, and AEC3 costs CPU on
silence too. Its filter is kept, and it runs again from the first loud reference frame, which
leads its echo by the devices' latencies."""

Mode = str
"""`[audio] echo`: "cancel", "mute" or "none"."""


class Reference:
    """What the speaker handed to its device, for the microphone side.

    The output's reader (PortAudio's callback, the file writer's thread) calls `write` with
    each block it hands over, silence included: a memcpy under a lock held for nothing else,
    into a ring allocated beforehand. The microphone side calls `take` on its own thread.
    """

    def __init__(self, seconds: float = REFERENCE_SECONDS) -> None:
        self._lock = threading.Lock()
        self._seconds = seconds
        self.rate = RATE
        self.channels = 1
        self.latency = 0.0
        """The speaker's reported output latency, seconds."""
        self.generation = 0
        """Bumped when the speaker's format changes (its frames mean something else)."""
        self._ring = np.zeros((int(seconds * RATE), 1), np.int16)
        self._write = 0
        self._read = 0
        self.dropped = 0
        """Frames dropped because the microphone side did not take them in time."""

    def configure(self, rate: int, channels: int) -> None:
        """The speaker's device format; called by the output, never from its callback."""
        with self._lock:
            if (rate, channels) == (self.rate, self.channels):
                return
            self.rate, self.channels = int(rate), int(channels)
            self._ring = np.zeros((max(1, int(self._seconds * rate)), channels), np.int16)
            self._write = self._read = 0
            self.generation += 1

    def write(self, block: object) -> None:
        """Frames handed to the device (int16 interleaved, the device's format)."""
        data = np.frombuffer(block, dtype=np.int16)  # type: ignore[call-overload]
        with self._lock:
            ring = self._ring
            n = len(data) // self.channels
            if n == 0 or n > len(ring):
                return
            frames = data[: n * self.channels].reshape(n, self.channels)
            idx = self._write % len(ring)
            first = min(n, len(ring) - idx)
            ring[idx : idx + first] = frames[:first]
            if n > first:
                ring[: n - first] = frames[first:]
            self._write += n

    def take(self, frames: int) -> tuple[np.ndarray, int]:
        """Up to ``frames`` of the oldest untaken speaker frames (a copy), shaped (n, channels),
        and how many are still waiting after them. Older frames beyond the lead the microphone
        side may keep are dropped first."""
        with self._lock:
            ring = self._ring
            waiting = self._write - self._read
            limit = frames + MAX_LEAD_FRAMES * self.rate // 100
            if waiting > limit or waiting > len(ring):
                skip = waiting - min(limit, len(ring))
                self._read += skip
                self.dropped += skip
                waiting -= skip
            n = min(frames, waiting)
            idx = self._read % len(ring)
            first = min(n, len(ring) - idx)
            out = np.empty((n, self.channels), np.int16)
            out[:first] = ring[idx : idx + first]
            if n > first:
                out[first:] = ring[: n - first]
            self._read += n
            return out, waiting - n


class EchoPolicy(abc.ABC):
    """Turns microphone audio (pcm24) into what the server should hear."""

    mode: Mode
    input_latency: float = 0.0
    """The microphone's reported input latency, seconds (set once its stream is open)."""

    @abc.abstractmethod
    def process(self, pcm24: bytes) -> bytes:
        """One block from the microphone's thread; returns what to send (may be shorter or
        longer by a partial 10 ms frame carried to the next block)."""


class NoEcho(EchoPolicy):
    mode = "none"

    def process(self, pcm24: bytes) -> bytes:
        return pcm24


class _Framed(EchoPolicy):
    """Cuts the microphone into 10 ms frames and pairs each with 10 ms of the speaker."""

    def __init__(self, reference: Reference, input_latency: float = 0.0) -> None:
        self.reference = reference
        self.input_latency = input_latency
        self._carry = b""
        self._generation = -1

    def process(self, pcm24: bytes) -> bytes:
        data = self._carry + pcm24 if self._carry else pcm24
        usable = len(data) - len(data) % (2 * FRAME)
        self._carry = data[usable:]
        if not usable:
            return b""
        near = np.frombuffer(data[:usable], "<i2").reshape(-1, FRAME)
        ref = self.reference
        if ref.generation != self._generation:
            self._generation = ref.generation
            self._format(ref.rate, ref.channels)
        per_frame = ref.rate // 100
        far, _ = ref.take(per_frame * len(near))
        if len(far) < per_frame * len(near):  # the speaker did not play: that was silence
            # (after what it did play, so the reference leads rather than lags)
            far = np.concatenate((far, np.zeros((per_frame * len(near) - len(far),
                                                 ref.channels), np.int16)))
        far = far.reshape(len(near), per_frame, ref.channels)
        return self._frames(near, far).astype("<i2", copy=False).tobytes()

    def _format(self, rate: int, channels: int) -> None:
        """The speaker's format changed (or is first seen)."""

    @abc.abstractmethod
    def _frames(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        """near (frames, 240) int16 at 24 kHz; far (frames, per_frame, channels) int16 at the
        speaker's rate. Returns (frames, 240) int16."""


class MuteEcho(_Framed):
    """Silence to the server while the speaker sounds and for the tail after."""

    mode = "mute"

    def __init__(self, reference: Reference, tail_ms: int, input_latency: float = 0.0) -> None:
        super().__init__(reference, input_latency)
        self.tail_ms = tail_ms
        self._quiet_frames = 10**9
        """10 ms frames since the speaker last sounded."""
        self.muted_frames = 0

    def _frames(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        loud = np.abs(far.reshape(len(far), -1)).max(axis=1) > LOUD
        # the echo of what the speaker was handed comes back this much later
        path_ms = (self.reference.latency + self.input_latency + PATH_SLACK_SECONDS) * 1000
        hold = int((self.tail_ms + path_ms) // 10)
        out = near.copy()
        for i in range(len(near)):  # a handful of frames per block
            self._quiet_frames = 0 if loud[i] else self._quiet_frames + 1
            if self._quiet_frames <= hold:
                out[i] = 0
                self.muted_frames += 1
        return out


class CancelEcho(_Framed):
    """WebRTC AEC3 on 10 ms frames at the wire's 24 kHz, the speaker's output as reference.

    pywebrtc-audio's `EchoCanceller` takes 16, 32 or 48 kHz only; its `AudioProcessor` runs the
    same AEC3 at 24 kHz (splitting bands inside), so the microphone is not converted and keeps
    its full band. AEC3 delays what it returns by about 9 ms (its internal blocks).
    """

    mode = "cancel"

    def __init__(self, reference: Reference, input_latency: float = 0.0) -> None:
        super().__init__(reference, input_latency)
        from pywebrtc_audio import AudioProcessor

        self._aec = AudioProcessor(RATE, 1, echo_cancellation=True)
        self._far: FirResampler | StreamResampler | None = None
        self._far_pending = np.zeros(0, np.int16)
        self._quiet_frames = 0
        """10 ms frames since the speaker last sounded; past IDLE_FRAMES the canceller rests.
        It starts awake: AEC3 first run on the room's own sound converges far deeper (~65 dB
        here against ~37 dB) than one woken cold by the first reply."""
        self.bypassed_frames = 0

    def _format(self, rate: int, channels: int) -> None:
        try:
            self._far = None if rate == RATE else FirResampler(rate, RATE)
        except ValueError:  # 44.1 kHz and the like: soxr, whose hold-back only delays the
            # reference a little (it still leads the echo by the devices' latencies)
            self._far = StreamResampler(rate, RATE, channels, 1, quality="LQ")
        self._far_pending = np.zeros(0, np.int16)
        self._aec.reset()

    def _far24(self, far: np.ndarray) -> np.ndarray:
        """The speaker's frames as 24 kHz mono int16, len(far) * 240 samples."""
        want = len(far) * FRAME
        frames = far.reshape(-1, far.shape[-1])
        if isinstance(self._far, StreamResampler):
            got = np.frombuffer(self._far.process(frames.tobytes()), "<i2")
        else:
            mono = frames.mean(axis=1) if frames.shape[1] > 1 else frames[:, 0]
            if self._far is None:
                got = mono.astype(np.int16)
            else:
                got = _to_int16(self._far.process(mono.astype(np.float64)))
        pending = np.concatenate((self._far_pending, got)) if len(self._far_pending) else got
        if len(pending) < want:  # soxr's lumps: what is not out yet counts as silence now
            pending = np.concatenate((pending, np.zeros(want - len(pending), np.int16)))
        self._far_pending = pending[want:]
        return pending[:want]

    def _frames(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        far24 = self._far24(far).reshape(len(near), FRAME)
        loud = np.abs(far24).max(axis=1) > LOUD
        out = np.empty_like(near)
        for i in range(len(near)):
            self._quiet_frames = 0 if loud[i] else self._quiet_frames + 1
            if self._quiet_frames > IDLE_FRAMES:
                out[i] = near[i]  # nothing played for a while: no echo to take out
                self.bypassed_frames += 1
            else:
                out[i] = self._aec.process(near[i], far24[i])
        return out


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def cancel_unavailable() -> str | None:
    """Why in-process echo cancellation cannot run here, or None when it can."""
    try:
        import pywebrtc_audio  # noqa: F401
    except ImportError as exc:
        return (f"pywebrtc-audio is not installed ({exc}); it has wheels for x86_64 and "
                "aarch64 only (64-bit Raspberry Pi OS)")
    return None


def make_policy(mode: Mode, reference: Reference, *, tail_ms: int = 300,
                input_latency: float = 0.0) -> EchoPolicy:
    """The policy for `[audio] echo`; ``cancel`` falls back to ``mute`` (said once, why) where
    the canceller is not installed."""
    if mode == "cancel":
        problem = cancel_unavailable()
        if problem is None:
            return CancelEcho(reference, input_latency)
        logger.warning("audio.echo: cancel is not available: %s; muting the microphone while "
                       "the assistant speaks instead (set audio.echo = \"mute\" to say so, or "
                       "\"none\" with a headset)", problem)
        mode = "mute"
    if mode == "mute":
        return MuteEcho(reference, tail_ms, input_latency)
    return NoEcho()
