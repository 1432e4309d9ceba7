"""Finding sound devices by name and picking a format they accept.

Card numbers change between boots, so devices are chosen by name. sounddevice never resamples
and raw `hw:` devices reject rates they do not do natively, so the rate is probed here and the
difference made up by `rtd.audio.resample`. sounddevice is imported lazily: without PortAudio
rtd still runs with the file backends.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from rtd.audio.base import RATE
from rtd.exceptions import AmbiguousDeviceError, DeviceError

logger = logging.getLogger(__name__)

Kind = Literal["input", "output"]

PORTAUDIO_LOCK = threading.RLock()
"""Held for every call into PortAudio that is not a stream's own: listing, probing, opening,
closing, and above all re-initialising, which must never overlap another thread's call."""

FALLBACK_RATES = (48000, 44100)
"""Rates tried after the wire rate and the device's default rate, in order."""


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device as rtd sees it."""

    index: int
    """PortAudio's index; valid only until PortAudio is re-initialised."""
    name: str
    hostapi: str
    """Host API name, e.g. "ALSA"."""
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    """Hz."""

    def channels(self, kind: Kind) -> int:
        return self.max_input_channels if kind == "input" else self.max_output_channels

    def __str__(self) -> str:
        return (
            f"[{self.index}] {self.name!r} ({self.hostapi}, {self.max_input_channels} in, "
            f"{self.max_output_channels} out, {self.default_samplerate:g} Hz)"
        )


def import_sounddevice(where: str = "audio") -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into a DeviceError that says what to do."""
    try:
        import sounddevice
    except (OSError, ImportError) as exc:
        raise DeviceError(
            f"{where}: cannot use sound devices: PortAudio is not available ({exc}); "
            "install it (`apt-get install libportaudio2`) or use the file backend"
        ) from None
    return sounddevice


def list_devices(where: str = "audio") -> list[DeviceInfo]:
    """Every device PortAudio knows, as found when PortAudio was initialised."""
    sd = import_sounddevice(where)
    try:
        with PORTAUDIO_LOCK:
            raw = sd.query_devices()
            hostapis = sd.query_hostapis()
    except Exception as exc:  # PortAudioError and friends
        raise DeviceError(f"{where}: cannot list sound devices: {exc}") from None
    return [_info(d, hostapis) for d in raw]


def _info(d: dict, hostapis: tuple) -> DeviceInfo:
    try:
        hostapi = hostapis[d["hostapi"]]["name"]
    except (IndexError, KeyError, TypeError):
        hostapi = str(d.get("hostapi", "?"))
    return DeviceInfo(
        index=int(d["index"]),
        name=str(d["name"]),
        hostapi=hostapi,
        max_input_channels=int(d["max_input_channels"]),
        max_output_channels=int(d["max_output_channels"]),
        default_samplerate=float(d["default_samplerate"]),
    )


def find_device(spec: str | int, kind: Kind, where: str) -> DeviceInfo:
    """Resolve a configured device: "default", an index, or part of a name (case-insensitive).

    An exact name wins over substring matches, so "pulse" does not pick "pulse_mic"; a part of a
    name that several devices share is an error listing them (the one listed first would depend
    on the order PortAudio found them in, which changes between boots).
    """
    devices = list_devices(where)
    usable = [d for d in devices if d.channels(kind) > 0]
    text = str(spec).strip()
    if isinstance(spec, str) and text.lower() == "default":
        sd = import_sounddevice(where)
        try:
            with PORTAUDIO_LOCK:
                index = int(sd.query_devices(kind=kind)["index"])
        except Exception:
            raise DeviceError(
                f"{where}.device: there is no default {kind} device. {_available(usable, kind)}"
            ) from None
        for d in devices:
            if d.index == index:
                return d
        raise DeviceError(f"{where}.device: default {kind} device {index} is not listed")
    if isinstance(spec, int) or text.lstrip("-").isdigit():
        index = int(spec)
        for d in devices:
            if d.index == index:
                if d.channels(kind) > 0:
                    return d
                raise DeviceError(
                    f"{where}.device: device {index} {d.name!r} has no {kind} channels. "
                    f"{_available(usable, kind)}"
                )
        raise DeviceError(f"{where}.device: there is no device {index}. {_available(usable, kind)}")
    wanted = text.lower()
    for d in usable:
        if d.name.lower() == wanted:
            return d
    matches = [d for d in usable if wanted in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = "; ".join(f"{d.index}: {d.name!r}" for d in matches)
        raise AmbiguousDeviceError(
            f"{where}.device: {text!r} matches {len(matches)} {kind} devices ({names}); set "
            "more of the name, or the whole name, so that only one matches"
        )
    raise DeviceError(
        f"{where}.device: no {kind} device matches {text!r}. {_available(usable, kind)}"
    )


_CARD_ADDRESS = re.compile(r"\s*\((?:plug)?hw:\d+,\d+\)$")


def stable_name(info: DeviceInfo) -> str:
    """The part of a device's name that survives re-plugging: ALSA's "(hw:1,0)" suffix names
    the card number, which the kernel hands out anew each time."""
    return _CARD_ADDRESS.sub("", info.name) or info.name


def _available(usable: list[DeviceInfo], kind: Kind) -> str:
    if not usable:
        return (
            f"PortAudio sees no {kind} devices at all; check the hardware is plugged in and that "
            "rtd may use it (group `audio`), then run `rtd devices`."
        )
    names = "; ".join(f"{d.index}: {d.name!r}" for d in usable)
    return f"{kind.capitalize()} devices: {names}. Run `rtd devices` for details."


def candidate_rates(device: DeviceInfo) -> list[int]:
    """The wire rate first (no resampling), then the device's own rate, then common ones."""
    rates: list[int] = []
    for rate in (RATE, int(device.default_samplerate), *FALLBACK_RATES):
        if rate > 0 and rate not in rates:
            rates.append(rate)
    return rates


def choose_rate(
    device: DeviceInfo, kind: Kind, channels: int | None = None, where: str = "audio"
) -> tuple[int, int]:
    """Pick (rate, channels) the device accepts for int16 streaming.

    Rates are tried before channel counts (resampling costs more than mixing): 24000 mono,
    24000 with the device's channels (at most 2), then the next rate. `channels` forces a count.
    """
    sd = import_sounddevice(where)
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    if channels is not None:
        channel_options = [channels]
    else:
        channel_options = [1]
        most = min(device.channels(kind), 2)
        if most > 1:
            channel_options.append(most)
    errors: dict[str, list[str]] = {}  # error -> formats that failed with it
    for rate in candidate_rates(device):
        for ch in channel_options:
            try:
                with PORTAUDIO_LOCK:
                    check(device=device.index, samplerate=rate, channels=ch, dtype="int16")
            except Exception as exc:  # PortAudioError, ValueError
                errors.setdefault(str(exc), []).append(f"{rate} Hz {ch} ch")
                continue
            logger.debug(
                "%s: %s device %r accepts %d Hz, %d ch", where, kind, device.name, rate, ch
            )
            return rate, ch
    tried = "; ".join(f"{', '.join(formats)}: {error}" for error, formats in errors.items())
    raise DeviceError(
        f"{where}.device: {kind} device {device.name!r} accepts none of the formats rtd can use "
        f"(16-bit; tried {tried}). It may be busy (a raw hw: device allows one user; use "
        f"dsnoop/dmix or a sound server) or not an {kind} device; run `rtd devices`."
    )


def rescan_devices(where: str = "audio") -> None:
    """Make PortAudio list devices afresh (a USB device was plugged in or came back).

    PortAudio freezes its device list at initialisation, so this terminates and initialises it
    again. That invalidates every open stream: close all inputs and outputs first, then reopen
    them by name (indices may have changed).
    """
    sd = import_sounddevice(where)
    try:
        with PORTAUDIO_LOCK:
            sd._terminate()
            sd._initialize()
    except Exception as exc:  # PortAudioError
        raise DeviceError(f"{where}: cannot re-initialise PortAudio: {exc}") from None
