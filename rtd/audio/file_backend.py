"""WAV files standing in for the microphone and the speaker, paced like the real thing.

The input plays a file in real time and then a quiet room, so a conversation driven from a file
behaves as one from a microphone (the server's turn detection sees the speech end). The output
writes what a speaker would have played, silence included, so its timeline matches a listener's.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rtd.audio.base import RATE, AudioInput, BufferedOutput
from rtd.audio.echo import Reference
from rtd.audio.resample import StreamResampler
from rtd.exceptions import AudioFileError

logger = logging.getLogger(__name__)

WRITE_BLOCK_MS = 100
"""How often the file output 'plays' a block."""
RESYNC_SECONDS = 1.0
"""Falling further behind schedule than this (a suspended process) re-anchors the schedule
instead of delivering a burst."""


def paced(period: float, stopping: threading.Event) -> Iterator[int]:
    """Yield once per ``period`` seconds on a drift-free schedule, until ``stopping`` is set.

    After a stall longer than RESYNC_SECONDS (a suspended process) the schedule restarts from
    now instead of bursting to catch up, as a real device would.
    """
    anchor = time.monotonic()
    k = 0
    while True:
        delay = anchor + (k + 1) * period - time.monotonic()
        if (delay > 0 and stopping.wait(delay)) or stopping.is_set():
            return
        if -delay > RESYNC_SECONDS:
            anchor += -delay
        yield k
        k += 1


_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_EXPECTED = (
    "expected a RIFF/WAVE file with 8, 16, 24 or 32-bit integer PCM (or 32/64-bit float) "
    "samples, any rate and channel count"
)


class WavFormat:
    """What a WAV header says, enough to decode its data."""

    def __init__(self, tag: int, channels: int, rate: int, bits: int) -> None:
        self.tag = tag
        self.channels = channels
        self.rate = rate
        self.bits = bits

    def __repr__(self) -> str:
        kind = "float" if self.tag == _WAVE_FORMAT_IEEE_FLOAT else "PCM"
        return f"{self.rate} Hz, {self.channels} ch, {self.bits}-bit {kind}"


def read_wav(path: str | os.PathLike[str], where: str = "audio.input") -> tuple[bytes, WavFormat]:
    """Read a WAV file and convert it to pcm24 (24 kHz mono int16).

    The stdlib `wave` reader handles plain PCM; headers it rejects (WAVE_FORMAT_EXTENSIBLE, as
    many recorders write, and float) go through a small RIFF parser of our own.
    """
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            fmt = WavFormat(
                _WAVE_FORMAT_PCM, w.getnchannels(), w.getframerate(), 8 * w.getsampwidth()
            )
            data = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        fmt, data = _read_riff(p, where, str(exc) or "file is truncated")
    except OSError as exc:
        raise AudioFileError(
            f"{where}.path: cannot read {str(p)!r}: {exc.strerror or exc}; "
            "give the path of an existing, readable WAV file"
        ) from None
    frames = _decode(data, fmt, p, where)
    resampler = StreamResampler(fmt.rate, RATE, fmt.channels, 1)
    pcm24 = resampler.process(frames.tobytes()) + resampler.flush()
    return pcm24, fmt


def _bad(p: Path, where: str, reason: str) -> AudioFileError:
    return AudioFileError(
        f"{where}.path: {str(p)!r} is not a usable WAV file ({reason}); {_EXPECTED}"
    )


def is_wav(data: bytes) -> bool:
    """Whether ``data`` starts like a WAV file (a RIFF/WAVE header) rather than raw PCM."""
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def decode_wav(data: bytes, where: str) -> bytes:
    """pcm24 (24 kHz mono int16) from a whole WAV file held in memory.

    For scripts that hand rtd a recording (``BytesIO`` or bytes of a WAV) instead of raw PCM:
    the same decoding as `read_wav`, so any rate, channel count and sample format it reads.
    ``where`` names the source in the error (``senders.NAME``).
    """
    label = Path("<WAV data>")
    try:
        try:
            with wave.open(io.BytesIO(data), "rb") as w:
                fmt = WavFormat(_WAVE_FORMAT_PCM, w.getnchannels(), w.getframerate(),
                                8 * w.getsampwidth())
                frames_data = w.readframes(w.getnframes())
        except (wave.Error, EOFError) as exc:
            fmt, frames_data = _read_riff(label, where, str(exc) or "data is truncated", data)
        frames = _decode(frames_data, fmt, label, where)
    except AudioFileError as exc:
        reason = str(exc).split("is not a usable WAV file ", 1)[-1]
        raise AudioFileError(f"{where}: returned WAV audio rtd cannot decode {reason}") from None
    resampler = StreamResampler(fmt.rate, RATE, fmt.channels, 1)
    return resampler.process(frames.tobytes()) + resampler.flush()


def _read_riff(p: Path, where: str, wave_reason: str,
               raw: bytes | None = None) -> tuple[WavFormat, bytes]:
    """Parse RIFF chunks directly, for the headers Python's `wave` turns down."""
    if raw is None:
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise AudioFileError(
                f"{where}.path: cannot read {str(p)!r}: {exc.strerror or exc}"
            ) from None
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise _bad(p, where, "no RIFF/WAVE header" if raw else "the file is empty")
    fmt: WavFormat | None = None
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        body = raw[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise _bad(p, where, "fmt chunk too short")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_FORMAT_EXTENSIBLE:
                if len(body) < 40:
                    raise _bad(p, where, "WAVE_FORMAT_EXTENSIBLE fmt chunk too short")
                # Samples are decoded by container size (wBitsPerSample); valid bits (e.g. 24 of
                # 32) are left-justified, so taking the top 16 bits is right either way.
                tag = struct.unpack_from("<H", body, 24)[0]  # first two bytes of SubFormat
            fmt = WavFormat(tag, channels, rate, bits)
        elif cid == b"data":
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise _bad(p, where, f"fmt or data chunk missing; {wave_reason}")
    if fmt.tag not in (_WAVE_FORMAT_PCM, _WAVE_FORMAT_IEEE_FLOAT):
        raise _bad(p, where, f"sample format 0x{fmt.tag:04x} is compressed or unknown")
    return fmt, data


def _decode(data: bytes, fmt: WavFormat, p: Path, where: str) -> np.ndarray:
    """Turn raw sample bytes into int16 frames shaped (n, channels)."""
    if fmt.channels < 1 or fmt.rate < 1:
        raise _bad(p, where, f"header says {fmt.channels} channels at {fmt.rate} Hz")
    width = fmt.bits // 8
    frame = width * fmt.channels
    if frame == 0:
        raise _bad(p, where, f"{fmt.bits}-bit samples")
    data = data[: len(data) - len(data) % frame]
    if fmt.tag == _WAVE_FORMAT_IEEE_FLOAT:
        if width not in (4, 8):
            raise _bad(p, where, f"{fmt.bits}-bit float samples")
        f = np.frombuffer(data, dtype="<f4" if width == 4 else "<f8")
        samples = np.rint(np.clip(f, -1.0, 1.0) * 32767.0).astype(np.int16)
    elif width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(data, dtype="<i2")
    elif width == 3:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
        samples = np.ascontiguousarray(b[:, 1:]).view("<i2").reshape(-1)
    elif width == 4:
        samples = (np.frombuffer(data, dtype="<i4") >> 16).astype(np.int16)
    else:
        raise _bad(p, where, f"{fmt.bits}-bit samples")
    return samples.astype(np.int16, copy=False).reshape(-1, fmt.channels)


class WavFileInput(AudioInput):
    """Delivers a WAV file as pcm24 in real time, then silence until stopped."""

    def __init__(
        self, path: str | os.PathLike[str], *, block_ms: int = 40, where: str = "audio.input"
    ) -> None:
        self.where = where
        self.path = Path(path)
        self.block_ms = int(block_ms)
        self.pcm24, self.format = read_wav(self.path, where)
        self.duration_ms = len(self.pcm24) * 1000 // (2 * RATE)
        self.description = (
            f"WAV file {self.path.name} ({self.format.rate} Hz, {self.format.channels} ch, "
            f"{self.duration_ms / 1000:.1f} s)"
        )
        self._block = max(2, RATE * self.block_ms // 1000 * 2)
        self._stopping = threading.Event()
        self._deliver_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.finished = threading.Event()
        """Set once the whole file has been delivered (silence follows)."""

    def start(self, on_audio: Callable[[bytes], None]) -> None:
        if self._thread is not None or self._stopped:
            raise RuntimeError(f"{self.where}: input already started (inputs are single-use)")
        self._thread = threading.Thread(
            target=self._run,
            args=(on_audio,),
            name=f"rtd-wav-in[{self.path.name}]",
            daemon=True,
        )
        self._thread.start()
        logger.info("%s: playing %s as the microphone", self.where, self.description)

    def _run(self, on_audio: Callable[[bytes], None]) -> None:
        silence = bytes(self._block)
        data = self.pcm24
        offset = 0
        # Each block is "captured" by the end of its period, as a microphone would deliver it.
        for _ in paced(self.block_ms / 1000, self._stopping):
            if offset < len(data):
                chunk = data[offset : offset + self._block]
                offset += len(chunk)
                if len(chunk) < self._block:
                    chunk += silence[len(chunk) :]
            else:
                chunk = silence
            with self._deliver_lock:
                if self._stopping.is_set():
                    return
                try:
                    on_audio(chunk)
                except Exception:
                    logger.exception("%s: on_audio callback failed", self.where)
            if offset >= len(data) and not self.finished.is_set():
                self.finished.set()
                logger.info(
                    "%s: end of %s; the microphone is now a quiet room", self.where, self.path.name
                )

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=0.5)
            if self._deliver_lock.acquire(timeout=0.5):
                self._deliver_lock.release()
            else:
                logger.warning("%s: on_audio callback still running at stop", self.where)


class WavFileOutput(BufferedOutput):
    """Writes what a speaker would play to a 24 kHz mono 16-bit WAV, in real time.

    The header is patched on every block, so the file is valid while it grows; `stop()` keeps
    what has been played and drops what is still queued, as unplugging a speaker would.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        buffer_seconds: float = 60.0,
        where: str = "audio.output",
        reference: Reference | None = None,
    ) -> None:
        super().__init__(RATE, 1, buffer_seconds, reference=reference)
        self.where = where
        self.path = Path(path)
        self.description = f"WAV file {self.path} (24000 Hz, 1 ch)"
        self._file, self._wav = self._open(self.path, where)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._lock = threading.Lock()
        self.error: str | None = None
        """Set if writing failed (disk full); playback timing carries on regardless."""

    @staticmethod
    def _open(p: Path, where: str) -> tuple[BinaryIO, wave.Wave_write]:
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise AudioFileError(
                f"{where}.path: cannot write {str(p)!r}: directory {str(parent)!r} does not "
                "exist; create it or choose another path"
            )
        try:
            f = open(p, "wb")  # noqa: SIM115 - lives until stop()
        except OSError as exc:
            raise AudioFileError(
                f"{where}.path: cannot write {str(p)!r}: {exc.strerror or exc}; choose a "
                "writable file path"
            ) from None
        try:
            w = wave.open(f, "wb")  # noqa: SIM115 - closed in stop()
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(b"")  # header now, so the file is a valid (empty) WAV at once
            f.flush()
        except OSError as exc:
            f.close()
            raise AudioFileError(
                f"{where}.path: cannot write {str(p)!r}: {exc.strerror or exc}"
            ) from None
        return f, w

    def start(self) -> None:
        if self._thread is not None or self._stopped:
            raise RuntimeError(f"{self.where}: output already started (outputs are single-use)")
        self._thread = threading.Thread(
            target=self._run, name=f"rtd-wav-out[{self.path.name}]", daemon=True
        )
        self._thread.start()
        logger.info("%s: writing speaker audio to %s", self.where, self.path)

    def _run(self) -> None:
        block = bytearray(RATE * WRITE_BLOCK_MS // 1000 * 2)
        for _ in paced(WRITE_BLOCK_MS / 1000, self._stopping):
            with self._lock:
                if self._stopping.is_set():
                    return
                self._hand_over(block)
                self._write(block)

    def _write(self, block: bytearray) -> None:
        if self.error is not None:
            return
        try:
            self._wav.writeframes(block)
            self._file.flush()
        except (OSError, ValueError) as exc:
            self.error = str(exc)
            logger.error(
                "%s: writing %s failed: %s; further audio is not saved", self.where, self.path, exc
            )

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        with self._lock:
            try:
                self._wav.close()
                self._file.close()
            except OSError as exc:
                logger.error("%s: closing %s failed: %s", self.where, self.path, exc)
