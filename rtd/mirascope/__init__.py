"""Mirascope 1.x's realtime API (``mirascope.beta.openai``) on rtd: change the import only.

    from rtd.mirascope import Context, Realtime, async_input

Mirascope dropped its realtime module in 2.x, and its 1.x code speaks the beta protocol shape
that OpenAI has switched off. This package offers the same names with the same signatures on
rtd's runtime and the GA protocol; docs/mirascope.md lists what runs unchanged and what
differs. The runtime (actors, WebSocket client, sounddevice) loads when an app first runs.
"""

from __future__ import annotations

from rtd.mirascope.realtime import Context, Realtime
from rtd.mirascope.recording import async_input, record, record_as_stream
from rtd.mirascope.tool import OpenAIRealtimeTool

__all__ = [
    "Context",
    "OpenAIRealtimeTool",
    "Realtime",
    "async_input",
    "record",
    "record_as_stream",
]
