"""Home Assistant MQTT discovery: the device's entities, their topics and their config payloads.

Each entity's config is published, retained, to
``<discovery_prefix>/<component>/<device_id>/<object_id>/config``; Home Assistant creates the
entity from it and reads its state from the (retained) state topic. All entities share one
availability topic, which the broker sets to ``offline`` (the client's last will) when rtd
disappears without saying goodbye.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rtd_mqtt.settings import MqttSettings

STATES = ("idle", "listening", "user_speaking", "thinking", "tool_running", "speaking",
          "reconnecting", "error")
"""What the state sensor may show (Home Assistant's ``enum`` sensor lists its options)."""
ONLINE, OFFLINE = "online", "offline"
ON, OFF = "ON", "OFF"
PRESS = "PRESS"
HA_TEXT_MAX = 255
"""Home Assistant's longest entity state, and so the most a `say` text may hold."""


@dataclass(frozen=True)
class Entity:
    component: str
    """Home Assistant's platform: sensor, binary_sensor, switch, button, text."""
    object_id: str
    name: str
    command: bool
    """Part of the commands (only with ``commands = true``)."""
    extra: tuple[tuple[str, object], ...] = ()


def topics(settings: MqttSettings) -> dict[str, str]:
    """Every topic the device uses, by role."""
    base = settings.base
    return {
        "availability": f"{base}/availability",
        "state": f"{base}/state",
        "connected": f"{base}/connected",
        "mute": f"{base}/mute",
        "mute_set": f"{base}/mute/set",
        "wake": f"{base}/wake/press",
        "sleep": f"{base}/sleep/press",
        "stop": f"{base}/stop/press",
        "say": f"{base}/say/set",
        "user": f"{base}/user",
        "assistant": f"{base}/assistant",
        "ha_status": f"{settings.discovery_prefix}/status",
    }


def entities(settings: MqttSettings) -> list[Entity]:
    t = topics(settings)
    transcript = (("value_template", "{{ value_json.text[:255] }}"),)
    return [
        Entity("sensor", "state", "State", False,
               (("state_topic", t["state"]), ("device_class", "enum"),
                ("options", list(STATES)), ("icon", "mdi:account-voice"))),
        Entity("binary_sensor", "connected", "Connected", False,
               (("state_topic", t["connected"]), ("device_class", "connectivity"),
                ("payload_on", ON), ("payload_off", OFF), ("entity_category", "diagnostic"))),
        Entity("sensor", "last_user", "Last request", False,
               (("state_topic", t["user"]), *transcript, ("json_attributes_topic", t["user"]),
                ("icon", "mdi:account"))),
        Entity("sensor", "last_assistant", "Last answer", False,
               (("state_topic", t["assistant"]), *transcript,
                ("json_attributes_topic", t["assistant"]), ("icon", "mdi:robot"))),
        Entity("switch", "mute", "Mute", True,
               (("state_topic", t["mute"]), ("command_topic", t["mute_set"]),
                ("payload_on", ON), ("payload_off", OFF), ("icon", "mdi:microphone-off"))),
        Entity("button", "wake", "Wake", True,
               (("command_topic", t["wake"]), ("payload_press", PRESS),
                ("icon", "mdi:account-voice"))),
        Entity("button", "sleep", "Sleep", True,
               (("command_topic", t["sleep"]), ("payload_press", PRESS), ("icon", "mdi:sleep"))),
        Entity("button", "stop", "Stop talking", True,
               (("command_topic", t["stop"]), ("payload_press", PRESS), ("icon", "mdi:stop"))),
        Entity("text", "say", "Say", True,
               (("command_topic", t["say"]), ("max", HA_TEXT_MAX), ("mode", "text"),
                ("icon", "mdi:message-text"))),
    ]


def config_topic(settings: MqttSettings, entity: Entity) -> str:
    return (f"{settings.discovery_prefix}/{entity.component}/{settings.device}/"
            f"{entity.object_id}/config")


def payloads(settings: MqttSettings, rtd_version: str, plugin_version: str
             ) -> dict[str, bytes]:
    """Config topic -> retained payload; an empty payload removes an entity (commands off)."""
    device = {"identifiers": [settings.device], "name": settings.name, "manufacturer": "rtd",
              "model": "rtd voice assistant", "sw_version": rtd_version}
    origin = {"name": "rtd-mqtt", "sw_version": plugin_version}
    out = {}
    for entity in entities(settings):
        topic = config_topic(settings, entity)
        if entity.command and not settings.commands:
            out[topic] = b""
            continue
        config = {"name": entity.name, "unique_id": f"{settings.device}_{entity.object_id}",
                  "availability_topic": topics(settings)["availability"],
                  "payload_available": ONLINE, "payload_not_available": OFFLINE,
                  "device": device, "origin": origin, **dict(entity.extra)}
        out[topic] = json.dumps(config, separators=(",", ":")).encode()
    return out
