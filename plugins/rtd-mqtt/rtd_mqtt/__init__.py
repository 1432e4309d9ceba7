"""rtd-mqtt: the rtd box as a Home Assistant device over MQTT (work in progress)."""

from __future__ import annotations

__version__ = "0.1.0"
