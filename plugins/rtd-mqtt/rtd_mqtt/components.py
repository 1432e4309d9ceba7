"""The two halves of the Home Assistant device: `MqttReceiver` (out) and `MqttSender` (in)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from rtd.components import (
    AudioTranscript,
    InputTranscript,
    Receiver,
    Sender,
    SenderContext,
    StateEvent,
    TextEvent,
)

from rtd_mqtt import discovery
from rtd_mqtt.hub import HUB, Hub
from rtd_mqtt.settings import MqttSettings

logger = logging.getLogger(__name__)


def versions() -> tuple[str, str]:
    """(rtd's version, this plugin's), for the device and origin in the discovery payloads."""
    import importlib.metadata

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return ""

    return version("rtd-voice"), version("rtd-mqtt")


class MqttReceiver(Receiver):
    """Publishes the state, the connection and the transcripts as Home Assistant entities."""

    name = "mqtt"
    events = ("state", "connection", "input_transcript", "audio_transcript", "text")
    Settings = MqttSettings

    def __init__(self, settings: MqttSettings | None = None, hub: Hub = HUB) -> None:
        super().__init__(settings or MqttSettings())
        self.settings: MqttSettings
        self.hub = hub

    @classmethod
    def check(cls, settings: MqttSettings) -> list[str]:
        problems = []
        key = "password_file" if settings.password_file else "password_credential"
        try:
            path = settings.password_path()
        except LookupError:
            path = None  # only the service has credentials: rtd check outside it cannot look
        if path is not None and not os.access(path, os.R_OK):
            problems.append(f"{key}: {path} is missing or not readable by this user")
        if settings.ca_file and not os.access(settings.ca_file, os.R_OK):
            problems.append(f"ca_file: {settings.ca_file} is missing or not readable")
        if settings.ca_file and not settings.tls:
            problems.append("ca_file: set, but tls is false; set tls = true to use it")
        return problems

    def start(self) -> None:
        self.hub.open(self.settings, versions())

    def receive(self, event: Any) -> None:
        if isinstance(event, StateEvent):
            self.hub.show("state", event.state)
            self.hub.show("mute", discovery.ON if event.muted else discovery.OFF)
        elif event.kind == "connection":
            self.hub.show("connected", discovery.ON if event.connected else discovery.OFF)
        elif isinstance(event, InputTranscript):
            self.hub.show("user", transcript(event.item_id, event.text))
        elif isinstance(event, (AudioTranscript, TextEvent)):
            self.hub.show("assistant", transcript(event.item_id, event.text))

    def stop(self) -> None:
        self.hub.close()


def transcript(item_id: str, text: str) -> str:
    """The payload of a transcript sensor: the whole text, which attributes keep in full."""
    return json.dumps({"text": text, "item_id": item_id}, ensure_ascii=False)


class MqttSender(Sender):
    """Lends the connection its context, so Home Assistant's commands act on rtd."""

    name = "mqtt"

    def __init__(self, settings: Any = None, hub: Hub = HUB) -> None:
        super().__init__(settings)
        self.hub = hub

    def run(self, ctx: SenderContext) -> None:
        self.hub.attach(ctx)
        try:
            ctx.wait()
        finally:
            self.hub.detach(ctx)
