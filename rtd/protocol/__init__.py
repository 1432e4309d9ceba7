"""The realtime wire protocol: events, providers and the connection, nothing else."""

from rtd.protocol.connection import RealtimeConnection, connect
from rtd.protocol.events import ServerEvent

__all__ = ["RealtimeConnection", "ServerEvent", "connect"]
