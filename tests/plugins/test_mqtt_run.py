"""rtd-mqtt inside the real `rtd run`, against the emulator and a real broker.

A paho client plays Home Assistant: it reads the discovery, follows the state through an
emulated conversation, types into the `say` text, and sees the last will when rtd is killed.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import Broker, BrokerUnavailable, Watcher
from rtdproc import KEY

from rtd.emulator import Emulator, load_scenario

DEVICE = "rtd_kitchen"
BASE = f"rtd/{DEVICE}"
TIMEOUT = 40.0


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    try:
        b = Broker(tmp_path).start()
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    yield b
    b.stop()


def states(watch: Watcher) -> list[str]:
    return [m.payload.decode() for m in watch.seen if m.topic == f"{BASE}/state"]


def write_config(path: Path, url: str, port: int, extra: str = "") -> Path:
    path.write_text(f"""
[provider]
name = "custom"
url = "{url}"
[audio.input]
backend = "none"
[audio.output]
backend = "none"
[log]
level = "info"
[control]
path = "{path.parent / 'control.sock'}"
[receivers.mqtt]
port = {port}
device_id = "{DEVICE}"
device_name = "Kitchen"
[senders.mqtt]
{extra}
""")
    return path


def test_home_assistant_follows_and_drives_a_conversation(run_rtd, tmp_path, broker):
    scenario = tmp_path / "radio.toml"
    scenario.write_text('[[turn]]\nreply = "The radio is on."\n')
    watch = Watcher(broker.port, ("homeassistant/#", "rtd/#"))
    with Emulator(scenario=load_scenario(scenario), voice_engine="tones") as emu:
        conf = write_config(tmp_path / "rtd.toml", emu.url, broker.port)
        d = run_rtd("run", "--config", str(conf))
        d.wait_for_line("mqtt: connected to localhost:", timeout=TIMEOUT)
        d.wait_for_line("mqtt: Home Assistant's commands reach rtd", timeout=TIMEOUT)
        watch.wait_value(f"{BASE}/availability", b"online", timeout=TIMEOUT)
        watch.wait_value(f"{BASE}/connected", b"ON", timeout=TIMEOUT)
        watch.wait_for(lambda seen: any(m.topic == "homeassistant/text/rtd_kitchen/say/config"
                                        for m in seen))

        watch.publish(f"{BASE}/say/set", "Turn on the radio")
        created = emu.wait_for(lambda e: e["type"] == "conversation.item.create",
                               timeout=TIMEOUT)
        assert created["item"]["content"] == [{"type": "input_text",
                                               "text": "Turn on the radio"}]
        d.wait_for_line("assistant: The radio is on.", timeout=TIMEOUT)
        watch.wait_for(lambda seen: watch.latest(f"{BASE}/assistant") is not None)
        assert json.loads(watch.latest(f"{BASE}/assistant"))["text"] == "The radio is on."
        # the state went through the answer and came back from it
        watch.wait_for(lambda seen: "speaking" in states(watch)
                       and states(watch)[-1] != "speaking", timeout=TIMEOUT)
        seen = states(watch)
        # thinking, if the answer left time to show it, came before the speaking
        assert "thinking" not in seen or seen.index("thinking") < seen.index("speaking"), seen

        watch.publish(f"{BASE}/mute/set", "ON")
        watch.wait_value(f"{BASE}/mute", b"ON")
        d.wait_for_line("mqtt: mute from Home Assistant")

        # killed, rtd cannot say goodbye: the broker says it for it (the last will)
        d.proc.send_signal(signal.SIGKILL)
        d.wait(timeout=10)
        watch.wait_value(f"{BASE}/availability", b"offline", timeout=TIMEOUT)
    watch.close()
    assert "Traceback" not in d.output and KEY not in d.output


def test_the_wake_and_sleep_buttons_open_and_close_an_on_demand_conversation(run_rtd, tmp_path,
                                                                            broker):
    watch = Watcher(broker.port, ("rtd/#",))
    with Emulator(voice_engine="tones") as emu:
        conf = write_config(tmp_path / "rtd.toml", emu.url, broker.port, extra="""
[session]
start = "on_demand"
idle_close_s = 60.0
""")
        d = run_rtd("run", "--config", str(conf))
        d.wait_for_line("mqtt: Home Assistant's commands reach rtd", timeout=TIMEOUT)
        d.wait_for_line("not connecting until a wake", timeout=TIMEOUT)
        assert emu.attempts == 0
        watch.publish(f"{BASE}/wake/press", "PRESS")
        watch.wait_value(f"{BASE}/connected", b"ON", timeout=TIMEOUT)
        assert len(emu.sessions) == 1
        watch.clear()
        watch.publish(f"{BASE}/sleep/press", "PRESS")
        assert emu.sessions[0].ended.wait(TIMEOUT)
        watch.wait_value(f"{BASE}/connected", b"OFF", timeout=TIMEOUT)
        assert d.stop() == 0
    watch.close()
    assert "Traceback" not in d.output


def test_a_clean_stop_says_offline_and_rtd_plugins_lists_both(run_rtd, tmp_path, broker):
    conf = write_config(tmp_path / "rtd.toml", "ws://127.0.0.1:9/v1/realtime", broker.port)
    d = run_rtd("plugins", "--config", str(conf))
    assert d.wait(timeout=30) == 0, d.output
    assert "mqtt (rtd-mqtt 0.1.0): loaded" in d.lines
    rows = [line.split() for line in d.lines]
    assert ["receiver", "mqtt", "enabled"] in rows and ["sender", "mqtt", "enabled"] in rows

    watch = Watcher(broker.port, (f"{BASE}/availability",))
    d = run_rtd("run", "--config", str(conf))  # the server is unreachable: rtd keeps trying
    watch.wait_value(f"{BASE}/availability", b"online", timeout=TIMEOUT)
    d.wait_for_line("running; stop with", timeout=TIMEOUT)
    assert d.stop() == 0
    watch.wait_for(lambda seen: seen[-1].payload == b"offline")
    watch.close()


def test_rtd_check_reports_a_missing_password_file(run_rtd, tmp_path):
    conf = write_config(tmp_path / "rtd.toml", "ws://127.0.0.1:9/v1/realtime", 1883)
    gone = tmp_path / "mqtt-password"
    conf.write_text(conf.read_text().replace(
        "[receivers.mqtt]\n", f'[receivers.mqtt]\nusername = "rtd"\npassword_file = "{gone}"\n'))
    d = run_rtd("check", "--config", str(conf))
    assert d.wait(timeout=30) == 78
    assert (f"receivers.mqtt.password_file: {gone} is missing or not readable by this user "
            "(receivers.mqtt is disabled)") in d.output, d.output
