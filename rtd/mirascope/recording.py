"""Mirascope's input helpers: `async_input`, `record`, `record_as_stream`.

Recordings come from the default sounddevice input as WAV files in memory (``BytesIO``, 24 kHz
mono 16-bit), which `rtd.Realtime` decodes when a sender returns them. A device that cannot
record at 24 kHz (a raw USB ``hw:`` device) is opened at its own rate and resampled here, in
process, as rtd's microphone does. The PortAudio callback only copies into a bounded queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import logging
import os
import queue
import sys
import threading
import wave
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import numpy as np

from rtd.app import read_stdin_line, stdin_fd
from rtd.audio.resample import StreamResampler

logger = logging.getLogger(__name__)

FRAME_RATE = 24000
"""Hz: the rate of every recording (the realtime protocol's)."""
CHANNELS = 1
SAMPLE_WIDTH = 2
CHUNK_BYTES = 32 * 1024
"""Bytes of pcm24 per WAV `record_as_stream` yields (about 0.68 s, as Mirascope's)."""
BLOCK_SECONDS = 0.05
"""Seconds of audio per PortAudio callback."""
MAX_QUEUED_SECONDS = 60.0
"""Audio held between the callback and a consumer that is not reading; beyond it the newest
blocks are dropped (with one warning) rather than the process's memory."""
MAX_RECORD_SECONDS = 600.0
"""The longest `record()`: later audio is dropped, with one warning."""

# -- async_input ------------------------------------------------------------------------------

_reading: concurrent.futures.Future[str] | None = None
_reading_lock = threading.Lock()


def _read_line(prompt: str, future: concurrent.futures.Future[str]) -> None:
    try:
        fd = stdin_fd()
        if fd is None or os.isatty(fd):  # a terminal: the builtin edits the line, locks nothing
            future.set_result(input(prompt))
            return
        future.set_result(read_stdin_line(fd, prompt))
    except BaseException as exc:  # EOFError at the end of input, above all
        future.set_exception(exc)


async def async_input(prompt: str = "") -> str:
    """``input(prompt)`` without blocking the event loop: the prompt goes to stdout, the line
    comes back without its newline, and the end of input raises `EOFError`.

    The line is read on a daemon thread of its own (not the loop's executor), from a pipe
    with `rtd.app.read_stdin_line` (not through `sys.stdin`'s buffer), so a program ending
    while it waits for a line (Ctrl-C) is neither held up nor aborted by it. A read that was
    given up (its awaiter cancelled) is not lost: the next call gets its line.
    """
    global _reading
    with _reading_lock:
        future = _reading
        if future is None or future.done():
            future = concurrent.futures.Future()
            future.set_running_or_notify_cancel()  # running: cancelling an awaiter keeps it
            _reading = future
            threading.Thread(target=_read_line, args=(prompt, future), name="rtd-input",
                             daemon=True).start()
        elif prompt:
            sys.stdout.write(prompt)
            sys.stdout.flush()
    try:
        return await asyncio.wrap_future(future)
    finally:
        with _reading_lock:
            if future.done() and _reading is future:
                _reading = None


# -- recording --------------------------------------------------------------------------------


def _wav(pcm: bytes) -> io.BytesIO:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(CHANNELS)
        w.setsampwidth(SAMPLE_WIDTH)
        w.setframerate(FRAME_RATE)
        w.writeframes(pcm)
    buffer.seek(0)
    return buffer


class _Microphone:
    """The default input device, delivering pcm24 blocks to a bounded queue."""

    def __init__(self, on_block: Callable[[], None] | None = None) -> None:
        import sounddevice as sd

        self.blocks: queue.Queue[bytes] = queue.Queue(
            maxsize=int(MAX_QUEUED_SECONDS / BLOCK_SECONDS))
        self._on_block = on_block
        self._dropped = 0
        self._warned = False
        rate = FRAME_RATE
        try:
            sd.check_input_settings(samplerate=FRAME_RATE, channels=CHANNELS, dtype="int16")
        except sd.PortAudioError:  # a raw device: record at its own rate, resample here
            rate = int(sd.query_devices(kind="input")["default_samplerate"])
        self.resampler = StreamResampler(rate, FRAME_RATE)
        self.stream = sd.InputStream(samplerate=rate, channels=CHANNELS, dtype="int16",
                                     blocksize=int(rate * BLOCK_SECONDS),
                                     callback=self._callback)

    def _callback(self, indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        try:
            self.blocks.put_nowait(indata.tobytes())
        except queue.Full:
            self._dropped += 1
            return
        if self._on_block is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed under us
                self._on_block()

    def take(self) -> bytes:
        """Everything recorded so far, as pcm24."""
        parts = []
        while True:
            try:
                parts.append(self.blocks.get_nowait())
            except queue.Empty:
                break
        if self._dropped and not self._warned:  # once: the callback itself must not log
            self._warned = True
            logger.warning("recording: the consumer fell more than %.0f s behind; audio dropped",
                           MAX_QUEUED_SECONDS)
        return self.resampler.process(b"".join(parts)) if parts else b""

    def flush(self) -> bytes:
        return self.take() + self.resampler.flush()

    def __enter__(self) -> _Microphone:
        self.stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.stop()
        self.stream.close()


async def record(custom_blocking_event: Callable[[], Awaitable[Any]]) -> io.BytesIO:
    """Record from the default input until ``custom_blocking_event()`` returns; the whole
    recording as a WAV file (24 kHz mono 16-bit) in a ``BytesIO``.

    An exception from the event (``EOFError`` from `async_input`) ends the recording and is
    raised.
    """
    pcm = bytearray()
    limit = int(MAX_RECORD_SECONDS * FRAME_RATE * SAMPLE_WIDTH)
    with _Microphone() as mic:
        try:
            await custom_blocking_event()
        finally:
            pcm += mic.flush()
    if len(pcm) > limit:
        logger.warning("record(): kept the first %.0f s of the recording", MAX_RECORD_SECONDS)
        del pcm[limit:]
    return _wav(bytes(pcm))


async def record_as_stream(
    custom_blocking_event: Callable[[], Awaitable[Any]] | None = None,
) -> AsyncGenerator[io.BytesIO, None]:
    """Record from the default input, yielding WAV files (``BytesIO``) of about
    `CHUNK_BYTES` as the audio comes, until ``custom_blocking_event()`` returns (without
    one: until the consumer stops iterating); the rest comes as one last, shorter WAV.

    An exception from the event ends the recording and is raised after the last WAV.
    """
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    ended = asyncio.Event()

    async def watch() -> None:
        try:
            if custom_blocking_event is not None:
                await custom_blocking_event()
            else:
                await asyncio.Event().wait()  # the consumer decides when it has enough
        finally:
            ended.set()
            ready.set()

    mic = _Microphone(on_block=lambda: loop.call_soon_threadsafe(ready.set))
    watcher = asyncio.create_task(watch())
    try:
        with mic:
            pending = bytearray()
            while not ended.is_set():
                await ready.wait()
                ready.clear()
                pending += mic.take()
                if len(pending) >= CHUNK_BYTES:
                    yield _wav(bytes(pending))
                    pending.clear()
            pending += mic.flush()
        if pending:
            yield _wav(bytes(pending))
        if watcher.done() and not watcher.cancelled() and watcher.exception() is not None:
            raise watcher.exception()  # type: ignore[misc]
    finally:
        if not watcher.done():
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher


__all__ = ["CHANNELS", "FRAME_RATE", "SAMPLE_WIDTH", "async_input", "record",
           "record_as_stream"]
