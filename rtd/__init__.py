"""rtd: a realtime voice daemon, and the library it is built from.

For plugin authors: `hookimpl`, `tool`, `setting`, and `rtd.components` (Sender, Receiver and
the events receivers get). For scripts: `connect` (the raw connection).
"""

from rtd.app import Realtime, Stop
from rtd.config import setting
from rtd.hookspecs import hookimpl
from rtd.protocol import RealtimeConnection, ServerEvent, connect
from rtd.tools import Tool, tool

__version__ = "0.1.0"

__all__ = [
    "RealtimeConnection", "ServerEvent", "Tool", "__version__", "connect", "hookimpl",
    "setting", "tool",
    "Realtime", "Stop",
]
