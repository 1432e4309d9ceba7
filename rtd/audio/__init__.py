"""Audio in and out of rtd: devices, resampling, the playback buffer and the backends.

Everything crossing this package's boundary is pcm24: 24 kHz mono int16 little-endian PCM.
Backends convert to and from whatever the hardware does. `open_input` / `open_output` validate
at once (device exists, format supported, file readable) so the daemon reports problems at
start-up; `start()` begins streaming.
"""

from __future__ import annotations

from rtd.audio.base import RATE, AudioInput, AudioOutput
from rtd.audio.devices import DeviceInfo, list_devices
from rtd.exceptions import AudioError, AudioFileError

__all__ = [
    "BACKENDS",
    "RATE",
    "AudioInput",
    "AudioOutput",
    "DeviceInfo",
    "list_devices",
    "open_input",
    "open_output",
]

BACKENDS = ("sounddevice", "file")


def _check(backend: str, where: str) -> None:
    if backend not in BACKENDS:
        raise AudioError(
            f"{where}.backend: unknown audio backend {backend!r}; use one of "
            f"{', '.join(repr(b) for b in BACKENDS)}"
        )


def open_input(
    backend: str,
    *,
    device: str | int = "default",
    path: str = "",
    block_ms: int = 40,
    where: str = "audio.input",
    wait: bool = False,
) -> AudioInput:
    """Open a microphone (`sounddevice`) or a WAV file played in real time (`file`).

    With ``wait`` a sound device that is missing or busy is not an error: the backend starts
    without it and keeps looking (a daemon must not die of a microphone plugged in late).
    """
    _check(backend, where)
    if block_ms <= 0:
        raise AudioError(
            f"{where}.block_ms: must be a positive number of milliseconds, got {block_ms}"
        )
    if backend == "file":
        if not path:
            raise AudioFileError(f"{where}.path: the file backend needs the path of a WAV file")
        from rtd.audio.file_backend import WavFileInput

        return WavFileInput(path, block_ms=block_ms, where=where)
    from rtd.audio.sounddevice_backend import SoundDeviceInput

    return SoundDeviceInput(device, block_ms=block_ms, where=where, wait=wait)


def open_output(
    backend: str,
    *,
    device: str | int = "default",
    path: str = "",
    buffer_seconds: float = 60.0,
    where: str = "audio.output",
    wait: bool = False,
) -> AudioOutput:
    """Open a speaker (`sounddevice`) or a WAV file written in real time (`file`); ``wait`` as
    for `open_input`."""
    _check(backend, where)
    if buffer_seconds <= 0:
        raise AudioError(f"{where}.buffer_seconds: must be positive, got {buffer_seconds}")
    if backend == "file":
        if not path:
            raise AudioFileError(f"{where}.path: the file backend needs a path to write a WAV to")
        from rtd.audio.file_backend import WavFileOutput

        return WavFileOutput(path, buffer_seconds=buffer_seconds, where=where)
    from rtd.audio.sounddevice_backend import SoundDeviceOutput

    return SoundDeviceOutput(device, buffer_seconds=buffer_seconds, where=where, wait=wait)
