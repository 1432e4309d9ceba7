"""rtd-mqtt: the rtd box as a Home Assistant device, over MQTT.

Two components on one connection::

    [receivers.mqtt]       # the broker, and what Home Assistant sees (state, transcripts)
    host = "homeassistant.local"
    username = "rtd"
    password_file = "/etc/rtd/mqtt-password"

    [senders.mqtt]         # Home Assistant's commands act on rtd (mute, wake, say)
"""

from __future__ import annotations

from rtd import hookimpl
from rtd.components import Receiver, Sender

from rtd_mqtt.components import MqttReceiver, MqttSender
from rtd_mqtt.hub import HUB, Hub
from rtd_mqtt.settings import MqttSettings

__version__ = "0.1.0"


@hookimpl
def register_receivers() -> list[type[Receiver]]:
    return [MqttReceiver]


@hookimpl
def register_senders() -> list[type[Sender]]:
    return [MqttSender]


__all__ = ["HUB", "Hub", "MqttReceiver", "MqttSender", "MqttSettings", "register_receivers",
           "register_senders"]
