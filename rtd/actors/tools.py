"""The tools actor: runs the functions the model calls, off the audio and WebSocket paths."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from rtd.messages import ToolCall, ToolResult
from rtd.supervisor import Bus, RtdActor
from rtd.tools import Tool

logger = logging.getLogger(__name__)
conversation = logging.getLogger("rtd.conversation")


class ToolsActor(RtdActor):
    name = "tools"
    receives = (ToolCall,)

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 tools: Mapping[str, tuple[Tool, Any]]) -> None:
        super().__init__(bus, on_crash)
        #: name -> (tool, its validated settings)
        self.tools = dict(tools)

    def handle(self, message: Any) -> Any:
        if isinstance(message, ToolCall):
            self._call(message)

    def _call(self, call: ToolCall) -> None:
        entry = self.tools.get(call.name)
        if entry is None:
            output = json.dumps({"error": f"no tool named {call.name} is enabled on this device"})
            logger.warning("model called unknown tool %r", call.name)
        else:
            tool, settings = entry
            output = tool.run(settings, call.arguments)
        conversation.info("tool: %s(%s) -> %s", call.name, call.arguments or "{}", output)
        self.bus.publish(ToolResult(call.call_id, call.name, output))
