"""The wake word in the real `rtd run`, on real audio through the PulseAudio virtual cables.

espeak-ng's speech is played into the `mic` null sink, which rtd records as its microphone
(sounddevice -> PortAudio -> ALSA -> PulseAudio, paced in real time, as on a Pi); rtd waits
on demand, and the emulator counts every connection attempt: none may come before the wake
word, however much is said before it.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rtdproc import KEY, wait_until

from rtd.emulator import DEMO_SCENARIO, Emulator, load_scenario

pytestmark = [
    pytest.mark.pulse,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]
TIMEOUT = 40.0


def sandbox() -> tuple[str, ...]:
    """tests/sandbox.py's wrapper when this machine can build the unit's filters, else none."""
    import ctypes

    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return ()
    if shutil.which("systemd-analyze") is None:
        return ()
    return (sys.executable, str(Path(__file__).resolve().parents[1] / "sandbox.py"), "--")


def say(folder: Path, name: str, text: str, voice: str = "en") -> Path:
    """A WAV of espeak-ng saying ``text``, with a quiet second after it."""
    path = folder / f"{name}.wav"
    spoken = folder / f"{name}-bare.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(spoken), text], check=True, timeout=30)
    subprocess.run(["sox", str(spoken), str(path), "pad", "0.3", "1.0"], check=True,
                   timeout=30)
    return path


def test_nothing_reaches_the_server_before_the_wake_word(pulse, run_rtd, tmp_path):
    question = say(tmp_path, "question", "what time is it")
    wake = say(tmp_path, "wake", "okay nabu")
    with Emulator(scenario=load_scenario(DEMO_SCENARIO), voice_engine="tones") as emu:
        conf = tmp_path / "rtd.toml"
        conf.write_text(f"""
[provider]
name = "custom"
url = "{emu.url}"
[audio.input]
device = "pulse"
[audio.output]
device = "pulse"
[session]
start = "on_demand"
idle_close_s = 30.0
[control]
path = "{tmp_path / 'control.sock'}"
[tools.clock]
[senders.wakeword]
model = "okay_nabu"
""")
        d = run_rtd("run", "--config", str(conf),
                    extra_env={**pulse.env, "PULSE_SOURCE": "mic.monitor",
                               "PULSE_SINK": "speaker"})
        d.wait_for_line("wakeword: listening for 'Okay Nabu'", timeout=TIMEOUT)
        assert "sounddevice" in d.wait_for_line("microphone: ", timeout=TIMEOUT)
        d.wait_for_line("not connecting until a wake", timeout=TIMEOUT)

        # ordinary speech, twice: heard by the microphone, sent nowhere
        pulse.play_into_mic(question)
        pulse.play_into_mic(question)
        assert d.count("wakeword: heard") == 0
        assert emu.attempts == 0 and emu.sessions == []

        pulse.play_into_mic(wake)
        d.wait_for_line("wakeword: heard 'Okay Nabu'", timeout=TIMEOUT)
        assert wait_until(lambda: len(emu.sessions) == 1, timeout=TIMEOUT)
        assert emu.attempts == 1
        # the conversation is open: the question now reaches the model, which answers it
        pulse.play_into_mic(question)
        d.wait_for_line("assistant: It is", timeout=TIMEOUT)
        assert d.count("wakeword: heard") == 1
        assert d.stop() == 0
    assert "Traceback" not in d.output and KEY not in d.output


def test_the_kitchen_mute_deafens_the_wake_word_and_the_led_shows_it(pulse, run_rtd, tmp_path):
    """The three plugins in one rtd: Home Assistant mutes, the LED says so, the wake word is
    deaf; unmuted, it wakes the conversation and Home Assistant sees it connected.

    Inside the service's seccomp filters (tests/sandbox.py, as tests/test_unit.py runs rtd)
    where systemd-analyze and libseccomp are there: TensorFlow Lite, paho's sockets and the
    LED writes must all work as the service."""
    from broker import Broker, BrokerUnavailable, Watcher
    from test_leds import fake_led

    try:
        broker = Broker(tmp_path).start()
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    led = fake_led(tmp_path / "leds", "led0")
    wake = say(tmp_path, "wake", "okay nabu", voice="en-gb")
    base = "rtd/kitchen"
    watch = Watcher(broker.port, (f"{base}/#",))
    try:
        with Emulator(scenario=load_scenario(DEMO_SCENARIO), voice_engine="tones") as emu:
            conf = tmp_path / "rtd.toml"
            conf.write_text(f"""
[provider]
name = "custom"
url = "{emu.url}"
[audio.input]
device = "pulse"
[audio.output]
device = "pulse"
[session]
start = "on_demand"
idle_close_s = 30.0
[control]
path = "{tmp_path / 'control.sock'}"
[senders.wakeword]
[receivers.mqtt]
port = {broker.port}
device_id = "kitchen"
[senders.mqtt]
[receivers.leds]
root = "{tmp_path / 'leds'}"
patterns = {{ muted = "brightness 3" }}
""")
            d = run_rtd("run", "--config", str(conf), wrap=sandbox(),
                        extra_env={**pulse.env, "PULSE_SOURCE": "mic.monitor",
                                   "PULSE_SINK": "speaker"})
            d.wait_for_line("wakeword: listening for", timeout=TIMEOUT)
            d.wait_for_line("mqtt: Home Assistant's commands reach rtd", timeout=TIMEOUT)
            d.wait_for_line("not connecting until a wake", timeout=TIMEOUT)
            d.wait_for_line("running; stop with", timeout=TIMEOUT)  # the microphone is last

            watch.publish(f"{base}/mute/set", "ON")
            d.wait_for_line("microphone muted", timeout=TIMEOUT)
            watch.wait_value(f"{base}/mute", b"ON")
            pulse.play_into_mic(wake)
            assert d.count("wakeword: heard") == 0 and emu.attempts == 0
            # the LED shows the mute once the state says it (the state actor's StateEvent)
            muted_led = wait_until(lambda: (led / "brightness").read_text().strip() == "3",
                                   timeout=5)

            watch.publish(f"{base}/mute/set", "OFF")
            d.wait_for_line("microphone unmuted", timeout=TIMEOUT)
            pulse.play_into_mic(wake)
            d.wait_for_line("wakeword: heard 'Okay Nabu'", timeout=TIMEOUT)
            watch.wait_value(f"{base}/connected", b"ON", timeout=TIMEOUT)
            assert len(emu.sessions) == 1
            assert d.stop() == 0
    finally:
        watch.close()
        broker.stop()
    assert "Traceback" not in d.output and KEY not in d.output
    if importlib.util.find_spec("rtd.actors.state") is None:  # before the state actor merged
        pytest.xfail("no state actor on this branch: no StateEvent carries the mute")
    assert muted_led, "the LED did not show the mute"
