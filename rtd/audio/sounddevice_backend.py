"""Microphone and speaker through sounddevice (PortAudio), resampled to and from the wire.

Input and output are separate Raw streams: a full-duplex `sounddevice.Stream` on ALSA's `pulse`
device spins a whole core. The PortAudio callbacks only copy bytes; conversion and delivery run
on threads rtd owns, so a slow consumer can never stall the audio thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from rtd.audio.base import RATE, AudioInput, BufferedOutput
from rtd.audio.devices import choose_rate, find_device, import_sounddevice
from rtd.audio.resample import StreamResampler
from rtd.exceptions import DeviceError

logger = logging.getLogger(__name__)

INPUT_QUEUE_SECONDS = 2.0
"""Captured audio held between the callback and the pump before blocks are dropped."""
OUTPUT_BLOCK_MS = 20
"""Output callback period: short enough that clear() is heard at once, long enough to be cheap."""
STALL_SECONDS = 5.0
"""No input for this long while running is logged: the device probably went away."""
STOP_WAIT_SECONDS = 0.5


def _open_error(where: str, kind: str, name: str, rate: int, ch: int, exc: BaseException) -> str:
    return (
        f"{where}.device: cannot open {kind} device {name!r} at {rate} Hz, {ch} ch: {exc}. "
        "It may be busy (a raw hw: device allows one user) or unplugged; run `rtd devices`."
    )


class SoundDeviceInput(AudioInput):
    """Captures from a PortAudio device and delivers pcm24 in `block_ms` blocks."""

    def __init__(
        self, device: str = "default", *, block_ms: int = 40, where: str = "audio.input"
    ) -> None:
        self._sd = import_sounddevice(where)
        self.where = where
        self.block_ms = int(block_ms)
        self.info = find_device(device, "input", where)
        self.rate, self.channels = choose_rate(self.info, "input", where=where)
        self.description = f"sounddevice {self.info.name!r} at {self.rate} Hz, {self.channels} ch"
        self._block_frames = max(1, self.rate * self.block_ms // 1000)
        self._out_block = max(2, RATE * self.block_ms // 1000 * 2)
        depth = max(4, int(INPUT_QUEUE_SECONDS * 1000 / max(1, self.block_ms)))
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=depth)
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._deliver_lock = threading.Lock()
        self._stopped = False
        self.overflows = 0
        """PortAudio reported input overflow (the device dropped samples)."""
        self.dropped_blocks = 0
        """Blocks the callback discarded because the pump fell behind."""

    def start(self, on_audio: Callable[[bytes], None]) -> None:
        if self._stream is not None or self._stopped:
            raise RuntimeError(f"{self.where}: input already started (inputs are single-use)")
        try:
            stream = self._sd.RawInputStream(
                device=self.info.index,
                samplerate=self.rate,
                channels=self.channels,
                dtype="int16",
                blocksize=self._block_frames,
                callback=self._callback,
            )
        except Exception as exc:
            raise DeviceError(
                _open_error(self.where, "input", self.info.name, self.rate, self.channels, exc)
            ) from None
        self._stream = stream
        self._thread = threading.Thread(
            target=self._pump,
            args=(on_audio,),
            name=f"rtd-audio-in[{self.info.name}]",
            daemon=True,
        )
        self._thread.start()
        try:
            stream.start()
        except Exception as exc:
            self.stop()
            raise DeviceError(
                _open_error(self.where, "input", self.info.name, self.rate, self.channels, exc)
            ) from None
        logger.info("%s: capturing from %s", self.where, self.description)

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's thread: copy and hand over, nothing else (no logging, no blocking).
        if status:
            self.overflows += 1
        try:
            self._queue.put_nowait(bytes(indata))
        except queue.Full:
            self.dropped_blocks += 1

    def _pump(self, on_audio: Callable[[bytes], None]) -> None:
        resampler = StreamResampler(self.rate, RATE, self.channels, 1)
        pending = bytearray()
        last_data = time.monotonic()
        stalled = False
        while not self._stopping.is_set():
            try:
                block = self._queue.get(timeout=0.1)
            except queue.Empty:
                if not stalled and time.monotonic() - last_data > STALL_SECONDS:
                    stalled = True
                    logger.warning(
                        "%s: no audio from input device %r for %.0f s; is it still connected?",
                        self.where,
                        self.info.name,
                        STALL_SECONDS,
                    )
                continue
            last_data = time.monotonic()
            if stalled:
                stalled = False
                logger.info(
                    "%s: input device %r is delivering audio again", self.where, self.info.name
                )
            pending += resampler.process(block)
            while len(pending) >= self._out_block:
                chunk = bytes(pending[: self._out_block])
                del pending[: self._out_block]
                with self._deliver_lock:
                    if self._stopping.is_set():
                        return
                    try:
                        on_audio(chunk)
                    except Exception:
                        logger.exception("%s: on_audio callback failed", self.where)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            _close_stream(stream, self.where)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=STOP_WAIT_SECONDS)
            # Wait out a delivery already in progress so none happens after we return.
            if self._deliver_lock.acquire(timeout=STOP_WAIT_SECONDS):
                self._deliver_lock.release()
            else:
                logger.warning("%s: on_audio callback still running at stop", self.where)
        if self.overflows or self.dropped_blocks:
            logger.info(
                "%s: %d input overflows, %d blocks dropped",
                self.where,
                self.overflows,
                self.dropped_blocks,
            )

    @property
    def stats(self) -> dict[str, int]:
        return {"overflows": self.overflows, "dropped_blocks": self.dropped_blocks}


class SoundDeviceOutput(BufferedOutput):
    """Plays pcm24 on a PortAudio device; the callback drains a PlaybackBuffer."""

    def __init__(
        self, device: str = "default", *, buffer_seconds: float = 60.0, where: str = "audio.output"
    ) -> None:
        self._sd = import_sounddevice(where)
        self.where = where
        self.info = find_device(device, "output", where)
        rate, channels = choose_rate(self.info, "output", where=where)
        super().__init__(rate, channels, buffer_seconds)
        self.description = f"sounddevice {self.info.name!r} at {rate} Hz, {channels} ch"
        self._stream: Any = None
        self._stopped = False
        self.underflows = 0
        """Callbacks PortAudio flagged with an output underflow (the device ran dry)."""

    def start(self) -> None:
        if self._stream is not None or self._stopped:
            raise RuntimeError(f"{self.where}: output already started (outputs are single-use)")
        try:
            stream = self._sd.RawOutputStream(
                device=self.info.index,
                samplerate=self.rate,
                channels=self.channels,
                dtype="int16",
                blocksize=max(1, self.rate * OUTPUT_BLOCK_MS // 1000),
                callback=self._callback,
            )
            stream.start()
        except Exception as exc:
            raise DeviceError(
                _open_error(self.where, "output", self.info.name, self.rate, self.channels, exc)
            ) from None
        self._stream = stream
        logger.info("%s: playing to %s", self.where, self.description)

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's thread: fill from the ring (silence on underrun), count flags, no logging.
        if status:
            self.underflows += 1
        self.buffer.read_into(outdata)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        stream, self._stream = self._stream, None
        if stream is not None:
            _close_stream(stream, self.where)
        if self.underflows:
            logger.info("%s: %d output underflows", self.where, self.underflows)

    @property
    def stats(self) -> dict[str, int]:
        return {"underflows": self.underflows, "queued_frames": self.buffer.queued_frames}


def _close_stream(stream: Any, where: str) -> None:
    """abort() rather than stop(): stop() waits for queued device buffers to play out."""
    for step in (stream.abort, stream.close):
        try:
            step()
        except Exception as exc:  # a vanished device fails here too; nothing left to do
            logger.debug("%s: %s failed: %s", where, step.__name__, exc)
