"""The ``[receivers.mqtt]`` table: the broker, the credentials, and how the device is named."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from rtd import setting

CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"
"""Where systemd puts the unit's ``LoadCredential=`` files."""


def default_device_id() -> str:
    """``rtd_`` and the host name, in the characters Home Assistant's ids allow."""
    return "rtd_" + re.sub(r"[^a-z0-9_]", "_", socket.gethostname().lower())


@dataclass(frozen=True)
class MqttSettings:
    """The ``[receivers.mqtt]`` table."""

    host: str = setting("localhost", "the MQTT broker's host name or address (Home "
                        "Assistant's Mosquitto add-on: the Home Assistant host)")
    port: int = setting(1883, "the broker's port: 1883, or 8883 with tls", min=1, max=65535)
    tls: bool = setting(False, "connect with TLS, checking the broker's certificate")
    ca_file: str = setting("", "PEM file of the CA that signed the broker's certificate; "
                           "empty: the system's CAs")
    username: str = setting("", "user name on the broker; empty: connect anonymously")
    password_file: str = setting("", "file holding the password (its first line)")
    password_credential: str = setting("", "name of a systemd credential holding the password "
                                       "(LoadCredential=NAME:/etc/rtd/mqtt-password)")
    device_id: str = setting("", "Home Assistant's id of the device, in its topics and "
                             "entity ids; empty: rtd_ and the host name")
    device_name: str = setting("", "the device's name in Home Assistant; empty: the host name")
    discovery_prefix: str = setting("homeassistant", "Home Assistant's MQTT discovery prefix")
    base_topic: str = setting("", "topic under which the device's state and commands live; "
                              "empty: rtd/DEVICE_ID")
    commands: bool = setting(True, "offer the mute switch, the wake, sleep and stop buttons "
                             "and the say text; they act through [senders.mqtt], which must be "
                             "configured too")
    keepalive: int = setting(30, "seconds between keep-alive pings to the broker",
                             min=5, max=3600)
    reconnect_max_s: int = setting(60, "longest wait between attempts to reach the broker "
                                   "(the wait doubles from 1 s)", min=1, max=3600)

    def __post_init__(self) -> None:
        if self.password_file and self.password_credential:
            raise ValueError("password_file and password_credential are both set; keep one")
        if (self.password_file or self.password_credential) and not self.username:
            raise ValueError("a password is set without a username")
        if self.device_id and not re.fullmatch(r"[A-Za-z0-9_-]+", self.device_id):
            raise ValueError(f"device_id: {self.device_id!r} may hold only letters, digits, "
                             "_ and -")
        for key in ("discovery_prefix", "base_topic"):
            value = getattr(self, key)
            if any(c in value for c in "#+\0") or value.startswith("/") or value.endswith("/"):
                raise ValueError(f"{key}: {value!r} is not a topic prefix (no #, +, leading "
                                 "or trailing /)")

    @property
    def device(self) -> str:
        return self.device_id or default_device_id()

    @property
    def base(self) -> str:
        return self.base_topic or f"rtd/{self.device}"

    @property
    def name(self) -> str:
        return self.device_name or socket.gethostname()

    def password_path(self, env: dict[str, str] | None = None) -> Path | None:
        """Where the password is read from, or None without one."""
        if self.password_file:
            return Path(self.password_file).expanduser()
        if self.password_credential:
            folder = (os.environ if env is None else env).get(CREDENTIALS_DIRECTORY, "")
            if not folder:
                raise LookupError(f"password_credential: ${CREDENTIALS_DIRECTORY} is not set "
                                  "(systemd sets it for a unit with LoadCredential=); use "
                                  "password_file outside the service")
            return Path(folder) / self.password_credential
        return None

    def password(self) -> str | None:
        """The password, read now; OSError / LookupError naming the key, never the value."""
        path = self.password_path()
        if path is None:
            return None
        key = "password_file" if self.password_file else "password_credential"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise OSError(f"receivers.mqtt.{key}: cannot read {path}: "
                          f"{exc.strerror or exc}") from None
        lines = text.splitlines()
        return lines[0] if lines else ""
