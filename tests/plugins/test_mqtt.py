"""rtd-mqtt against a real broker: Home Assistant's discovery, the state, commands, restarts.

The receiver and sender run in this process on their own `Hub` (the connection they share),
with a real `SenderContext` whose publish() keeps what the commands sent; a paho `Watcher`
plays Home Assistant. test_mqtt_run.py runs them inside `rtd run` against the emulator.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator

import pytest
from broker import Broker, BrokerUnavailable, Watcher, make_certificates
from rtdproc import wait_until

from rtd import config as cfg
from rtd import plugins
from rtd.components import (
    AudioTranscript,
    ConnectionState,
    InputTranscript,
    Interrupt,
    Mute,
    SenderContext,
    Sleep,
    StateEvent,
    UserText,
    Wake,
)

DEVICE = "rtd_kitchen"
BASE = f"rtd/{DEVICE}"
ENTITIES = {
    "sensor/rtd_kitchen/state", "binary_sensor/rtd_kitchen/connected",
    "sensor/rtd_kitchen/last_user", "sensor/rtd_kitchen/last_assistant",
    "switch/rtd_kitchen/mute", "button/rtd_kitchen/wake", "button/rtd_kitchen/sleep",
    "button/rtd_kitchen/stop", "text/rtd_kitchen/say",
}


@pytest.fixture(scope="module")
def mqtt():
    import rtd_mqtt

    return rtd_mqtt


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    try:
        b = Broker(tmp_path).start()
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    yield b
    b.stop()


@pytest.fixture
def watch(broker) -> Iterator[Watcher]:
    w = Watcher(broker.port, ("homeassistant/#", "rtd/#"))
    yield w
    w.close()


class Device:
    """The plugin's two components on a fresh hub, with what its commands sent."""

    def __init__(self, mqtt, settings) -> None:
        self.hub = mqtt.Hub()
        self.receiver = mqtt.MqttReceiver(settings, hub=self.hub)
        self.sender = mqtt.MqttSender(hub=self.hub)
        self.sent: list[object] = []
        self.ctx = SenderContext("mqtt", self.sent.append)

    def start(self, with_sender: bool = True) -> Device:
        self.receiver.start()
        if with_sender:
            self.hub.attach(self.ctx)
        return self

    def stop(self) -> None:
        self.hub.detach(self.ctx)
        self.receiver.stop()


@pytest.fixture
def device(mqtt, broker) -> Iterator[Device]:
    d = Device(mqtt, mqtt.MqttSettings(port=broker.port, device_id=DEVICE,
                                       device_name="Kitchen")).start()
    assert d.hub.connected.wait(10) and d.hub.commands_ready.wait(10)
    yield d
    d.stop()


def configs(watch: Watcher) -> dict[str, dict]:
    """The discovery configs seen, by ``component/node/object``; {} for a removal."""
    out = {}
    for m in watch.seen:
        if m.topic.startswith("homeassistant/") and m.topic.endswith("/config"):
            key = m.topic.removeprefix("homeassistant/").removesuffix("/config")
            out[key] = json.loads(m.payload) if m.payload else {}
    return out


def test_discovery_describes_the_device_retained(device, broker, watch):
    watch.wait_for(lambda seen: len(configs(watch)) == len(ENTITIES))
    watch.wait_value(f"{BASE}/mute", b"OFF")  # the last of what a connection publishes
    watch = Watcher(broker.port, ("homeassistant/#", "rtd/#"))  # later: sees what is retained
    watch.wait_for(lambda seen: len(configs(watch)) == len(ENTITIES))
    found = configs(watch)
    assert set(found) == ENTITIES
    assert all(m.retain for m in watch.seen if m.topic.endswith("/config"))
    for key, config in found.items():
        assert config["unique_id"] == f"{DEVICE}_{key.rsplit('/', 1)[1]}"
        assert config["availability_topic"] == f"{BASE}/availability"
        assert config["device"]["identifiers"] == [DEVICE]
        assert config["device"]["name"] == "Kitchen"
        assert config["origin"]["name"] == "rtd-mqtt"
    state = found["sensor/rtd_kitchen/state"]
    assert state["state_topic"] == f"{BASE}/state" and state["device_class"] == "enum"
    assert "listening" in state["options"] and "tool_running" in state["options"]
    assert found["binary_sensor/rtd_kitchen/connected"]["device_class"] == "connectivity"
    mute = found["switch/rtd_kitchen/mute"]
    assert (mute["command_topic"], mute["state_topic"]) == (f"{BASE}/mute/set", f"{BASE}/mute")
    assert found["button/rtd_kitchen/wake"]["command_topic"] == f"{BASE}/wake/press"
    assert found["text/rtd_kitchen/say"]["command_topic"] == f"{BASE}/say/set"
    assert found["text/rtd_kitchen/say"]["max"] == 255
    user = found["sensor/rtd_kitchen/last_user"]
    assert user["json_attributes_topic"] == user["state_topic"] == f"{BASE}/user"
    # the device is online, and its retained state is what it starts from
    watch.wait_value(f"{BASE}/availability", b"online")
    watch.wait_value(f"{BASE}/state", b"idle")
    watch.wait_value(f"{BASE}/connected", b"OFF")
    watch.wait_value(f"{BASE}/mute", b"OFF")
    assert all(m.retain for m in watch.seen if m.topic.startswith(BASE))
    watch.close()


def test_the_state_and_transcripts_follow_the_conversation(device, watch):
    r = device.receiver
    r.receive(ConnectionState(True, "ws://127.0.0.1:1/v1/realtime"))
    watch.wait_value(f"{BASE}/connected", b"ON")
    for state in ("listening", "user_speaking", "thinking", "speaking", "idle"):
        r.receive(StateEvent(state))
        watch.wait_value(f"{BASE}/state", state.encode())
    r.receive(StateEvent("listening", muted=True))
    watch.wait_value(f"{BASE}/mute", b"ON")
    r.receive(InputTranscript("u1", "What time is it?"))
    long_answer = "It is ten past seven. " * 20  # longer than a Home Assistant state
    r.receive(AudioTranscript("a1", long_answer))
    watch.wait_for(lambda seen: watch.latest(f"{BASE}/assistant") is not None)
    assert json.loads(watch.latest(f"{BASE}/user")) == {"text": "What time is it?",
                                                        "item_id": "u1"}
    assert json.loads(watch.latest(f"{BASE}/assistant"))["text"] == long_answer
    r.receive(ConnectionState(False, "sleep", expected=True))
    watch.wait_value(f"{BASE}/connected", b"OFF")


def test_commands_mute_wake_sleep_stop_and_speak(device, watch, caplog):
    watch.wait_value(f"{BASE}/availability", b"online")
    with caplog.at_level(logging.INFO, logger="rtd_mqtt"):
        watch.publish(f"{BASE}/mute/set", "ON")
        assert wait_until(lambda: Mute(True) in device.sent, timeout=10)
        watch.wait_value(f"{BASE}/mute", b"ON")  # the switch follows at once
        watch.publish(f"{BASE}/mute/set", "OFF")
        watch.publish(f"{BASE}/wake/press", "PRESS")
        watch.publish(f"{BASE}/say/set", "Turn on the radio")
        watch.publish(f"{BASE}/stop/press", "PRESS")
        watch.publish(f"{BASE}/sleep/press", "PRESS")
        watch.publish(f"{BASE}/mute/set", "maybe")  # not a switch's payload: ignored
        assert wait_until(lambda: "expected ON or OFF, got 'maybe'" in caplog.text, timeout=10)
    assert device.sent == [Mute(True), Mute(False), Wake("mqtt"), UserText("Turn on the radio"),
                           Interrupt("sender"), Sleep("mqtt")]
    assert "Turn on the radio" not in caplog.text  # what is said is rtd's to log, not ours


def test_a_retained_command_does_not_act_again(device, watch, caplog, mqtt, broker):
    watch.publish(f"{BASE}/wake/press", "PRESS", retain=True)
    assert wait_until(lambda: Wake("mqtt") in device.sent, timeout=10)
    device.stop()  # a restart of rtd: the broker hands the retained command to the new one
    with caplog.at_level(logging.WARNING, logger="rtd_mqtt"):
        again = Device(mqtt, device.receiver.settings).start()
        try:
            assert again.hub.connected.wait(10)
            assert wait_until(lambda: "ignored a retained command" in caplog.text, timeout=10)
            assert again.sent == []
        finally:
            again.stop()
            watch.publish(f"{BASE}/wake/press", "", retain=True)  # clear it


def test_without_the_sender_the_commands_are_said_to_need_it(mqtt, broker, watch, caplog,
                                                             monkeypatch):
    from rtd_mqtt import hub

    monkeypatch.setattr(hub, "SENDER_GRACE_S", 0.2)
    d = Device(mqtt, mqtt.MqttSettings(port=broker.port, device_id=DEVICE)).start(
        with_sender=False)
    try:
        with caplog.at_level(logging.WARNING, logger="rtd_mqtt"):
            assert d.hub.connected.wait(10)
            assert wait_until(lambda: "no [senders.mqtt] table" in caplog.text, timeout=10)
        assert not d.hub.commands_ready.is_set()
        # the sender starting (after the receiver, as rtd starts them) brings the commands
        d.hub.attach(d.ctx)
        assert d.hub.commands_ready.wait(10)
        watch.publish(f"{BASE}/wake/press", "PRESS")
        assert wait_until(lambda: d.sent == [Wake("mqtt")], timeout=10)
    finally:
        d.stop()


def test_commands_off_removes_the_command_entities(mqtt, broker, watch):
    d = Device(mqtt, mqtt.MqttSettings(port=broker.port, device_id=DEVICE,
                                       commands=False)).start()
    try:
        watch.wait_for(lambda seen: len(configs(watch)) == len(ENTITIES))
        found = configs(watch)
        removed = {k for k, v in found.items() if not v}
        assert removed == {"switch/rtd_kitchen/mute", "button/rtd_kitchen/wake",
                           "button/rtd_kitchen/sleep", "button/rtd_kitchen/stop",
                           "text/rtd_kitchen/say"}
        watch.publish(f"{BASE}/wake/press", "PRESS")  # not subscribed: nothing acts
        watch.publish(f"{BASE}/say/set", "hello")
        assert d.hub.connected.is_set() and d.sent == []
    finally:
        d.stop()


def test_a_clean_stop_says_offline(device, watch, broker):
    watch.wait_value(f"{BASE}/availability", b"online")
    device.stop()
    watch.wait_value(f"{BASE}/availability", b"offline")
    later = Watcher(broker.port, (f"{BASE}/availability",))  # Home Assistant starting later
    try:
        later.wait_for(lambda seen: seen and seen[-1].payload == b"offline" and seen[-1].retain)
    finally:
        later.close()


def test_a_restarted_receiver_keeps_what_the_device_showed(device, mqtt, broker):
    """A reload replaces the receiver: the mute and the state stay as they were."""
    device.receiver.receive(StateEvent("listening", muted=True))
    device.receiver.stop()
    again = mqtt.MqttReceiver(device.receiver.settings, hub=device.hub)
    again.start()
    try:
        assert device.hub.connected.wait(10)
        later = Watcher(broker.port, (f"{BASE}/#",))
        later.wait_for(lambda seen: watch_has(later, "mute") and watch_has(later, "state"))
        assert (later.latest(f"{BASE}/mute"), later.latest(f"{BASE}/state")) == (
            b"ON", b"listening")
        later.close()
    finally:
        again.stop()


def watch_has(watch: Watcher, role: str) -> bool:
    return watch.latest(f"{BASE}/{role}") is not None


def test_home_assistant_restarting_gets_the_device_again(device, watch):
    watch.wait_for(lambda seen: len(configs(watch)) == len(ENTITIES))
    device.receiver.receive(StateEvent("speaking"))
    watch.wait_value(f"{BASE}/state", b"speaking")
    watch.clear()
    watch.publish("homeassistant/status", "online")  # Home Assistant's birth message
    watch.wait_for(lambda seen: len(configs(watch)) == len(ENTITIES))
    watch.wait_value(f"{BASE}/state", b"speaking")


def test_the_broker_restarting_is_survived_and_the_device_published_again(device, broker,
                                                                          caplog):
    device.receiver.receive(StateEvent("thinking"))
    with caplog.at_level(logging.INFO, logger="rtd_mqtt"):
        broker.stop()  # its retained messages go with it (no persistence)
        assert wait_until(lambda: not device.hub.connected.is_set(), timeout=10)
        # meanwhile the conversation goes on: receive() never waits for the broker
        device.receiver.receive(StateEvent("speaking"))
        broker.start()
        assert wait_until(lambda: device.hub.connections == 2, timeout=30)
    assert "lost the broker at localhost:" in caplog.text
    fresh = Watcher(broker.port, ("homeassistant/#", "rtd/#"))
    try:
        fresh.wait_for(lambda seen: len(configs(fresh)) == len(ENTITIES))
        fresh.wait_value(f"{BASE}/state", b"speaking")
        fresh.wait_value(f"{BASE}/availability", b"online")
    finally:
        fresh.close()


def test_an_unreachable_broker_is_one_warning_and_start_does_not_wait(mqtt, tmp_path, caplog):
    from broker import free_port

    port = free_port()  # nobody listens here
    d = Device(mqtt, mqtt.MqttSettings(port=port, device_id=DEVICE, reconnect_max_s=1))
    with caplog.at_level(logging.WARNING, logger="rtd_mqtt"):
        d.start()
        d.receiver.receive(StateEvent("listening"))  # kept for when it connects
        assert wait_until(lambda: d.hub._failures >= 2, timeout=15)
    assert caplog.text.count("cannot reach the broker") == 1
    b = Broker(tmp_path)
    b.conf.write_text(b.conf.read_text().replace(f"listener {b.port} ", f"listener {port} "))
    b.port = port
    b.start()
    try:
        assert d.hub.connected.wait(15)
        w = Watcher(port, ("rtd/#",))
        w.wait_value(f"{BASE}/state", b"listening")
        w.close()
    finally:
        d.stop()
        b.stop()


def test_a_password_from_a_file_and_a_credential_never_logged(mqtt, tmp_path, caplog,
                                                               monkeypatch):
    secret = "correct horse battery staple"
    b = Broker(tmp_path, users={"rtd": secret}).start()
    try:
        pw = tmp_path / "mqtt-password"
        pw.write_text(secret + "\n")
        with caplog.at_level(logging.DEBUG):
            d = Device(mqtt, mqtt.MqttSettings(port=b.port, device_id=DEVICE, username="rtd",
                                               password_file=str(pw))).start()
            assert d.hub.connected.wait(10)
            d.stop()
            creds = tmp_path / "credentials"
            creds.mkdir()
            (creds / "mqtt").write_text(secret)
            monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
            d = Device(mqtt, mqtt.MqttSettings(port=b.port, device_id=DEVICE, username="rtd",
                                               password_credential="mqtt")).start()
            assert d.hub.connected.wait(10)
            d.stop()
            pw.write_text("wrong\n")
            d = Device(mqtt, mqtt.MqttSettings(port=b.port, device_id=DEVICE, username="rtd",
                                               password_file=str(pw))).start()
            assert wait_until(lambda: "refused the connection" in caplog.text, timeout=10)
            assert not d.hub.connected.is_set()
            d.stop()
        assert secret not in caplog.text and "wrong" not in caplog.text
    finally:
        b.stop()


def test_tls_with_the_brokers_ca_and_a_refused_stranger(mqtt, tmp_path, caplog):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    ca, cert, key = make_certificates(tmp_path / "ours")
    other_ca, _, _ = make_certificates(tmp_path / "theirs")
    b = Broker(tmp_path, tls=(cert, key)).start()
    try:
        d = Device(mqtt, mqtt.MqttSettings(port=b.port, device_id=DEVICE, tls=True,
                                           ca_file=str(ca))).start()
        assert d.hub.connected.wait(10) and d.hub.commands_ready.wait(10)
        d.stop()
        # a broker whose certificate our CA did not sign is not talked to
        with caplog.at_level(logging.WARNING, logger="rtd_mqtt"):
            d = Device(mqtt, mqtt.MqttSettings(port=b.port, device_id=DEVICE, tls=True,
                                               ca_file=str(other_ca))).start()
            assert wait_until(lambda: "cannot reach the broker" in caplog.text, timeout=10)
            assert not d.hub.connected.is_set()
            d.stop()
    finally:
        b.stop()


def test_check_and_the_table(mqtt, tmp_path, monkeypatch):
    check = mqtt.MqttReceiver.check
    gone = tmp_path / "gone"
    assert check(mqtt.MqttSettings(username="rtd", password_file=str(gone))) == [
        f"password_file: {gone} is missing or not readable by this user"]
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert check(mqtt.MqttSettings(username="rtd", password_credential="mqtt")) == []
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert check(mqtt.MqttSettings(username="rtd", password_credential="mqtt")) == [
        f"password_credential: {tmp_path / 'mqtt'} is missing or not readable by this user"]
    assert check(mqtt.MqttSettings(ca_file=str(gone))) == [
        f"ca_file: {gone} is missing or not readable",
        "ca_file: set, but tls is false; set tls = true to use it"]
    registry = plugins.load()
    for table, problem in [
        ({"password_file": "/x", "password_credential": "y", "username": "u"},
         "receivers.mqtt: password_file and password_credential are both set; keep one"),
        ({"password_file": "/x"}, "receivers.mqtt: a password is set without a username"),
        ({"device_id": "my kitchen"}, "receivers.mqtt: device_id: 'my kitchen' may hold only"),
        ({"base_topic": "rtd/#"}, "receivers.mqtt: base_topic: 'rtd/#' is not a topic prefix"),
        ({"port": 0}, "receivers.mqtt.port: expected a value from 1 to 65535, got 0"),
        ({"password": "hunter2"}, "receivers.mqtt.password: unknown key"),
    ]:
        config = cfg.parse({"receivers": {"mqtt": table}}, require_key=False,
                           registry=registry)
        (line,) = config.component_problems
        assert line.startswith(problem), line
        assert "hunter2" not in line
