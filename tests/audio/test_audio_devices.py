"""Device lookup and format probing: by name, with errors that list what exists."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from rtd.audio import devices, list_devices, open_input
from rtd.audio.devices import DeviceInfo, choose_rate, find_device, stable_name
from rtd.exceptions import AmbiguousDeviceError, ConfigError, DeviceError


class FakeSoundDevice:
    """Stands in for the sounddevice module: a USB mic that does only 48 kHz stereo, etc."""

    def __init__(self) -> None:
        self.devices = [
            self._dev(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", 2, 2, 48000),
            self._dev(1, "USB Audio Device: - (hw:1,0)", 2, 0, 48000),
            self._dev(2, "USB Audio", 1, 0, 44100),
            self._dev(3, "sysdefault", 128, 128, 48000),
            self._dev(4, "HDMI 0 (hw:0,3)", 0, 8, 48000),
        ]
        self.accepts: dict[int, set[tuple[int, int]]] = {
            0: {(48000, 2), (44100, 2)},
            1: {(48000, 2)},
            2: {(44100, 1)},
            3: {(24000, 1), (24000, 2)},
            4: {(48000, 2)},
        }
        self.default_in = 3
        self.default_out = 3

    @staticmethod
    def _dev(index: int, name: str, ins: int, outs: int, rate: float) -> dict[str, Any]:
        return {
            "index": index,
            "name": name,
            "hostapi": 0,
            "max_input_channels": ins,
            "max_output_channels": outs,
            "default_samplerate": rate,
        }

    def query_devices(self, device: int | None = None, kind: str | None = None) -> Any:
        if kind is not None:
            index = self.default_in if kind == "input" else self.default_out
            if index < 0:
                raise RuntimeError("Error querying device -1")
            return self.devices[index]
        return list(self.devices)

    def query_hostapis(self) -> tuple[dict[str, Any], ...]:
        return ({"name": "ALSA"},)

    def _check(self, device: int, samplerate: int, channels: int, dtype: str) -> None:
        assert dtype == "int16"
        if (samplerate, channels) not in self.accepts[device]:
            raise RuntimeError("Invalid sample rate [PaErrorCode -9997]")

    check_input_settings = _check
    check_output_settings = _check


@pytest.fixture
def fake_sd(monkeypatch: pytest.MonkeyPatch) -> FakeSoundDevice:
    fake = FakeSoundDevice()
    monkeypatch.setattr(devices, "import_sounddevice", lambda where="audio": fake)
    return fake


def test_find_by_substring_index_and_default(fake_sd: FakeSoundDevice) -> None:
    assert find_device("usb audio device", "input", "audio.input").index == 1
    assert find_device("USB Audio", "input", "audio.input").index == 2  # exact name wins
    assert find_device("4", "output", "audio.output").name.startswith("HDMI")
    assert find_device(4, "output", "audio.output").name.startswith("HDMI")  # TOML integer
    assert find_device(0, "input", "audio.input").name.startswith("HDA Intel")
    assert find_device("default", "output", "audio.output").name == "sysdefault"


def test_a_part_of_several_names_is_an_error_listing_them(fake_sd: FakeSoundDevice) -> None:
    with pytest.raises(AmbiguousDeviceError) as info:
        find_device("usb", "input", "audio.input")
    msg = str(info.value)
    assert msg.startswith("audio.input.device: 'usb' matches 2 input devices")
    assert "1: 'USB Audio Device: - (hw:1,0)'" in msg and "2: 'USB Audio'" in msg
    assert "HDA Intel" not in msg  # only the devices that matched
    # the same part of a name is unique among outputs: no USB device plays
    assert find_device("hdmi", "output", "audio.output").index == 4
    with pytest.raises(AmbiguousDeviceError):  # ambiguity is a DeviceError the daemon
        open_input("sounddevice", device="usb", wait=True)  # does not wait out


def test_integer_device_in_the_config_file() -> None:
    from rtd import config as cfg

    config = cfg.parse({"audio": {"input": {"device": 3}, "output": {"device": "USB"}}},
                       None, require_key=False)
    assert (config.audio_input.device, config.audio_output.device) == (3, "USB")
    assert "device = 3" in cfg.to_toml(config)
    with pytest.raises(ConfigError, match="audio.input.device: expected a string or an "
                       "integer, got a number 3.5"):
        cfg.parse({"audio": {"input": {"device": 3.5}}}, None, require_key=False)


def test_stable_name_drops_the_card_number() -> None:
    info = DeviceInfo(5, "USB PnP Sound Device: Audio (hw:2,0)", "ALSA", 1, 0, 48000)
    assert stable_name(info) == "USB PnP Sound Device: Audio"
    assert stable_name(DeviceInfo(0, "pulse", "ALSA", 32, 32, 44100)) == "pulse"


def test_no_match_lists_devices_of_that_kind(fake_sd: FakeSoundDevice) -> None:
    with pytest.raises(DeviceError) as info:
        find_device("ReSpeaker", "input", "audio.input")
    msg = str(info.value)
    assert msg.startswith("audio.input.device: no input device matches 'ReSpeaker'")
    assert "USB Audio Device" in msg and "rtd devices" in msg
    assert "HDMI" not in msg  # an output-only device is no use as a microphone


def test_index_without_channels_of_that_kind(fake_sd: FakeSoundDevice) -> None:
    with pytest.raises(DeviceError, match="device 4 'HDMI 0 \\(hw:0,3\\)' has no input channels"):
        find_device("4", "input", "audio.input")
    with pytest.raises(DeviceError, match="there is no device 9"):
        find_device("9", "input", "audio.input")


def test_no_default_device(fake_sd: FakeSoundDevice) -> None:
    fake_sd.default_in = -1
    with pytest.raises(DeviceError, match="there is no default input device"):
        find_device("default", "input", "audio.input")


def test_choose_rate_prefers_wire_rate_then_device_rate(fake_sd: FakeSoundDevice) -> None:
    info = {d.index: d for d in list_devices()}
    assert choose_rate(info[3], "input") == (24000, 1)
    assert choose_rate(info[1], "input") == (48000, 2)  # hw: USB mic: 48 kHz stereo only
    assert choose_rate(info[2], "input") == (44100, 1)
    assert choose_rate(info[0], "output") == (48000, 2)


def test_choose_rate_nothing_supported(fake_sd: FakeSoundDevice) -> None:
    fake_sd.accepts[1] = set()
    dev = find_device("1", "input", "audio.input")
    with pytest.raises(DeviceError) as info:
        choose_rate(dev, "input", where="audio.input")
    msg = str(info.value)
    assert msg.startswith("audio.input.device: input device 'USB Audio Device: - (hw:1,0)'")
    assert "24000 Hz 1 ch" in msg and "48000 Hz 2 ch" in msg and "rtd devices" in msg


def test_device_info_is_frozen(fake_sd: FakeSoundDevice) -> None:
    dev = list_devices()[0]
    assert isinstance(dev, DeviceInfo) and dev.hostapi == "ALSA"
    with pytest.raises(AttributeError):
        dev.name = "x"  # type: ignore[misc]


def test_missing_portaudio_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import now fails
    with pytest.raises(DeviceError, match=r"audio\.input: .*PortAudio.*libportaudio2"):
        open_input("sounddevice", device="default")


def test_file_backends_do_not_import_sounddevice() -> None:
    """rtd must work without PortAudio when only WAV files are used."""
    import subprocess

    code = "import sys, rtd.audio, rtd.audio.file_backend; sys.exit('sounddevice' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


# -- on the real PulseAudio setup ---------------------------------------------------------


@pytest.mark.pulse
def test_pulse_device_is_found_and_errors_list_it(pulse: Any) -> None:
    names = [d.name for d in list_devices()]
    assert "pulse" in names
    dev = find_device("PULSE", "output", "audio.output")
    assert dev.name == "pulse"
    assert choose_rate(dev, "output") == (24000, 1)
    with pytest.raises(DeviceError) as info:
        find_device("no such speaker", "output", "audio.output")
    msg = str(info.value)
    assert "'pulse'" in msg and "rtd devices" in msg
    assert msg.startswith("audio.output.device: no output device matches 'no such speaker'")
