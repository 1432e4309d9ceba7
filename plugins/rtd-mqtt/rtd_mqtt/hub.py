"""The one MQTT client of the plugin, shared by its receiver (state out) and sender (commands in).

rtd's contract splits what goes out (receivers get events) from what comes in (senders get a
`SenderContext`), so the Home Assistant device is two components on one connection: the
receiver opens and owns it; the sender lends it its context, through which Home Assistant's
commands act. The client runs on paho's own thread: connecting, the TLS handshake and every
reconnect (with backoff, 1 s doubling to ``reconnect_max_s``) happen there, and publishing
only queues a packet (a bounded queue), so nothing here ever holds up the conversation.

What the device shows is kept here as retained payloads (the latest per topic) and published
again on every connection, after the discovery configs: a broker that restarted without
persistence, or Home Assistant announcing itself (``homeassistant/status`` = ``online``), gets
the whole device again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from rtd.components import SenderContext

from rtd_mqtt import discovery
from rtd_mqtt.settings import MqttSettings

logger = logging.getLogger(__name__)

QUEUE_LIMIT = 200
"""Packets paho may hold while the broker is slow; beyond it a publish is dropped (the
retained state is published again on the next connection anyway)."""
SENDER_GRACE_S = 5.0
"""Seconds after start by which [senders.mqtt] has lent its context, or the commands are
said to need it (senders start after receivers)."""
STOP_TIMEOUT = 1.0
"""Seconds close() waits for paho's thread to end."""
GOODBYE_TIMEOUT = 1.0
"""Seconds stop() waits for ``offline`` to reach the broker before disconnecting anyway."""


class Hub:
    """The connection, the retained state and the sender's context; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.settings: MqttSettings | None = None
        self.client: Any = None
        self.retained: dict[str, bytes] = {}
        self.ctx: SenderContext | None = None
        self.connected = threading.Event()
        """Set while connected: the broker acknowledged the first subscription."""
        self._linked = False
        """The broker accepted the connection (states may be published), acknowledged or
        not; only paho's thread sets it, under the lock."""
        self._subscription: int | None = None
        self._command_subscription: int | None = None
        self._subscribing = threading.Lock()
        self.commands_ready = threading.Event()
        """Set while Home Assistant's commands are subscribed to and reach the sender."""
        self._grace: threading.Timer | None = None
        self.connections = 0
        """Accepted connections so far (each one republished discovery)."""
        self._failures = 0
        self.versions = ("", "")

    # -- the receiver's side ----------------------------------------------------------------

    def open(self, settings: MqttSettings, versions: tuple[str, str]) -> None:
        """Start connecting (in the background) with ``settings``; returns at once."""
        import paho.mqtt.client as mqtt

        password = settings.password()  # read now: a missing file fails start(), retried
        t = discovery.topics(settings)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"rtd-{settings.device}", protocol=mqtt.MQTTv311)
        client.will_set(t["availability"], discovery.OFFLINE, qos=1, retain=True)
        if settings.username:
            client.username_pw_set(settings.username, password)
        if settings.tls:
            client.tls_set(ca_certs=settings.ca_file or None)
        client.reconnect_delay_set(1, settings.reconnect_max_s)
        client.max_queued_messages_set(QUEUE_LIMIT)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        with self._lock:
            self.settings, self.client, self.versions = settings, client, versions
            self.connections, self._failures = 0, 0
            # what rtd shows before its first events; a receiver restarted (a reload) keeps
            # what the previous one showed (a muted microphone stays muted)
            kept = {k: v for k, v in self.retained.items() if k.startswith(settings.base + "/")}
            self.retained = {t["state"]: b"idle", t["connected"]: discovery.OFF.encode(),
                             t["mute"]: discovery.OFF.encode(), **kept}
        client.connect_async(settings.host, settings.port, settings.keepalive)
        client.loop_start()
        if settings.commands:
            self._grace = threading.Timer(SENDER_GRACE_S, self._no_sender)
            self._grace.daemon = True
            self._grace.start()

    def _no_sender(self) -> None:
        with self._lock:
            missing = self.ctx is None and self.client is not None
        if missing:
            logger.warning("mqtt: no [senders.mqtt] table: Home Assistant's mute switch, "
                           "buttons and say text will do nothing; add [senders.mqtt] to "
                           "rtd.toml (or set receivers.mqtt.commands = false)")

    def close(self) -> None:
        """Say ``offline`` (the will is for when rtd cannot) and disconnect."""
        with self._lock:
            client, settings = self.client, self.settings
            self.client = None
        if self._grace is not None:
            self._grace.cancel()
        if client is None or settings is None:
            return
        if self._linked:
            info = client.publish(discovery.topics(settings)["availability"],
                                  discovery.OFFLINE, qos=1, retain=True)
            # the connection may go meanwhile: the will says it then
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(GOODBYE_TIMEOUT)
        client.disconnect()
        # paho's thread may be inside a TCP connect to a host that does not answer (seconds):
        # wait a little, then leave it to end by itself (it is a daemon thread)
        stopper = threading.Thread(target=client.loop_stop, name="rtd-mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(STOP_TIMEOUT)
        self._linked = False
        self.connected.clear()
        self.commands_ready.clear()

    def show(self, role: str, payload: str | bytes) -> None:
        """Set what a state topic shows (retained), now if connected, else on connecting."""
        with self._lock:
            if self.settings is None:
                return
            topic = discovery.topics(self.settings)[role]
            data = payload.encode() if isinstance(payload, str) else payload
            if self.retained.get(topic) == data:
                return
            self.retained[topic] = data
            client = self.client if self._linked else None
        if client is not None:
            client.publish(topic, data, qos=0, retain=True)

    # -- the sender's side ------------------------------------------------------------------

    def attach(self, ctx: SenderContext) -> None:
        """Commands from now on act through ``ctx``: subscribe to them if connected."""
        with self._lock:
            self.ctx = ctx
            client, settings = (self.client, self.settings) if self._linked else (None, None)
        if client is not None and settings is not None and settings.commands:
            self._subscribe_commands(client, settings)

    def detach(self, ctx: SenderContext) -> None:
        with self._lock:
            if self.ctx is ctx:
                self.ctx = None

    def _subscribe_commands(self, client: Any, settings: MqttSettings) -> None:
        # held across the call: from the sender's thread the acknowledgement may come back
        # on paho's before subscribe() returns the id it acknowledges
        with self._subscribing:
            _result, mid = client.subscribe([(t, 1) for t in command_topics(settings)])
            self._command_subscription = mid

    # -- paho's thread ----------------------------------------------------------------------

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any,
                    _properties: Any) -> None:
        settings = self.settings
        if settings is None:
            return
        where = f"{settings.host}:{settings.port}"
        if reason.is_failure:
            self._failures += 1
            if self._failures == 1:
                logger.warning("mqtt: the broker at %s refused the connection: %s (check "
                               "receivers.mqtt.username and its password); retrying", where,
                               reason)
            return
        t = discovery.topics(settings)
        _result, self._subscription = client.subscribe(t["ha_status"], 1)
        client.publish(t["availability"], discovery.ONLINE, qos=1, retain=True)
        with self._lock:
            self._linked = True  # before the copy of the state: a change meanwhile goes out
            attached = self.ctx is not None
        # commands only once they can act: [senders.mqtt] starts after this receiver
        if attached and settings.commands:
            self._subscribe_commands(client, settings)
        self._publish_device(client, settings)
        self._failures = 0
        self.connections += 1
        logger.info("mqtt: connected to %s as %s (Home Assistant device %s)", where,
                    settings.username or "anonymous", settings.device)

    def _on_subscribe(self, _client: Any, _userdata: Any, mid: int, _reasons: Any,
                      _properties: Any) -> None:
        with self._subscribing:
            commands = mid == self._command_subscription
        if mid == self._subscription:
            self.connected.set()
        elif commands and not self.commands_ready.is_set():
            self.commands_ready.set()
            logger.info("mqtt: Home Assistant's commands reach rtd")

    def _publish_device(self, client: Any, settings: MqttSettings) -> None:
        for topic, payload in discovery.payloads(settings, *self.versions).items():
            client.publish(topic, payload, qos=1, retain=True)
        with self._lock:
            retained = dict(self.retained)
        # QoS 0: paho sends unacknowledged QoS 1 messages again after a reconnect, *after*
        # these, so a state published just before the broker went would come back stale
        for topic, payload in retained.items():
            client.publish(topic, payload, qos=0, retain=True)

    def _on_connect_fail(self, _client: Any, _userdata: Any) -> None:
        self._failures += 1
        settings = self.settings
        if self._failures == 1 and settings is not None:
            why = (" (or its certificate is not signed by receivers.mqtt.ca_file, or not "
                   f"for {settings.host})") if settings.tls else ""
            logger.warning("mqtt: cannot reach the broker at %s:%d%s; retrying every %d s at "
                           "most", settings.host, settings.port, why, settings.reconnect_max_s)

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any,
                       _properties: Any) -> None:
        with self._lock:
            was, self._linked = self._linked, False
        self.connected.clear()
        self.commands_ready.clear()
        settings = self.settings
        if was and settings is not None and self.client is not None:
            logger.warning("mqtt: lost the broker at %s:%d (%s); reconnecting", settings.host,
                           settings.port, reason)

    def _on_message(self, client: Any, _userdata: Any, message: Any) -> None:
        settings = self.settings
        if settings is None:
            return
        t = discovery.topics(settings)
        payload = message.payload.decode("utf-8", "replace").strip()
        if message.topic == t["ha_status"]:
            if payload == discovery.ONLINE:  # Home Assistant restarted: tell it everything
                self._publish_device(client, settings)
            return
        if message.retain:
            # a command left retained on the broker would act again at every connection
            logger.warning("mqtt: ignored a retained command on %s (publish commands without "
                           "retain)", message.topic)
            return
        actions: dict[str, Callable[[SenderContext], bool]] = {
            t["wake"]: lambda ctx: ctx.wake(),
            t["sleep"]: lambda ctx: ctx.sleep(),
            t["stop"]: lambda ctx: ctx.interrupt(),
        }
        with self._lock:
            ctx = self.ctx
        what = message.topic.rsplit("/", 2)[-2] if message.topic.count("/") >= 2 else ""
        if ctx is None:  # only while rtd stops: the sender went first
            logger.info("mqtt: %s from Home Assistant ignored: rtd is stopping",
                        what or message.topic)
            return
        if message.topic in actions:
            logger.info("mqtt: %s from Home Assistant", what)
            actions[message.topic](ctx)
        elif message.topic == t["mute_set"]:
            if payload not in (discovery.ON, discovery.OFF):
                logger.warning("mqtt: %s: expected ON or OFF, got %r", message.topic,
                               payload[:40])
                return
            muted = payload == discovery.ON
            logger.info("mqtt: %s from Home Assistant", "mute" if muted else "unmute")
            if ctx.mute(muted):
                self.show("mute", payload)  # the switch follows at once; StateEvent confirms
        elif message.topic == t["say"] and payload:
            logger.info("mqtt: say from Home Assistant (%d characters)", len(payload))
            ctx.send_text(payload)


def command_topics(settings: MqttSettings) -> list[str]:
    t = discovery.topics(settings)
    return [t["mute_set"], t["wake"], t["sleep"], t["stop"], t["say"]]


HUB = Hub()
"""The plugin's connection: one per rtd process, as there is one [receivers.mqtt]."""
