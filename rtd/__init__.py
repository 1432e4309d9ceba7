"""rtd: a realtime voice daemon, and the library it is built from."""

from rtd.protocol import RealtimeConnection, ServerEvent, connect

__version__ = "0.1.0"

__all__ = ["RealtimeConnection", "ServerEvent", "__version__", "connect"]
