"""The tools actor: runs the functions the model calls, off the audio and WebSocket paths.

Each call runs on a thread of its own with a deadline; a call that overruns is answered with
an error so the model can tell the user, instead of the conversation waiting forever. Python
cannot kill a thread, so an overrunning tool keeps its thread until it returns. The threads
are daemon threads and at shutdown every running call is cancelled (coroutine tools' tasks,
processes started with `rtd.tools.run_process` and their children): stopping rtd never waits
for a tool.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pykka

from rtd.config import DEFAULT_TOOL_TIMEOUT
from rtd.messages import ToolCall, ToolCallEvent
from rtd.supervisor import Bus, RtdActor
from rtd.tools import CallContext, Tool

logger = logging.getLogger(__name__)
conversation = logging.getLogger("rtd.conversation")

MAX_PENDING = 16
"""Calls in flight beyond which new ones are refused with an error output."""


@dataclass(frozen=True)
class _Finished:
    call: ToolCall
    output: str


@dataclass(frozen=True)
class _Overran:
    call: ToolCall
    seconds: float


class ToolsActor(RtdActor):
    name = "tools"
    receives = (ToolCall,)

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 tools: Mapping[str, tuple[Tool, Any, float | None]]) -> None:
        super().__init__(bus, on_crash)
        #: name -> (tool, its validated settings, configured timeout or None)
        self.tools = dict(tools)
        self._deadlines: dict[str, threading.Timer] = {}
        self._running: dict[str, CallContext] = {}

    def handle(self, message: Any) -> Any:
        if isinstance(message, ToolCall):
            self._start(message)
        elif isinstance(message, _Finished):
            self._running.pop(message.call.call_id, None)
            timer = self._deadlines.pop(message.call.call_id, None)
            if timer is not None:
                timer.cancel()
                self._answer(message.call, message.output)
        elif isinstance(message, _Overran) and \
                self._deadlines.pop(message.call.call_id, None) is not None:
            logger.warning("tool %s did not finish within %.1f s; the model was told",
                           message.call.name, message.seconds)
            self._answer(message.call, json.dumps(
                {"error": f"the tool did not finish within {message.seconds:g} seconds"}))

    def _start(self, call: ToolCall) -> None:
        entry = self.tools.get(call.name)
        if entry is None:
            logger.warning("model called unknown tool %r", call.name)
            self._answer(call, json.dumps(
                {"error": f"no tool named {call.name} is enabled on this device"}))
            return
        if len(self._deadlines) >= MAX_PENDING:
            self._answer(call, json.dumps({"error": "too many tool calls in progress"}))
            return
        tool, settings, configured = entry
        seconds = configured or tool.timeout or DEFAULT_TOOL_TIMEOUT
        context = CallContext(call.call_id)
        self._running[call.call_id] = context

        def work() -> None:
            try:
                output = tool.run(settings, call.arguments, context)
            except BaseException as exc:  # Tool.run never raises; a bug in it must be answered
                output = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
            self._tell(_Finished(call, output))

        timer = threading.Timer(seconds, self._tell, args=(_Overran(call, seconds),))
        timer.daemon = True
        self._deadlines[call.call_id] = timer
        timer.start()
        threading.Thread(target=work, name=f"rtd-tool-{call.name}", daemon=True).start()

    def _tell(self, message: object) -> None:
        with contextlib.suppress(pykka.ActorDeadError):  # finished after shutdown
            self.actor_ref.tell(message)

    def _answer(self, call: ToolCall, output: str) -> None:
        event = ToolCallEvent(call.call_id, call.name, call.arguments, output)
        conversation.info("tool: %s", event.summary)
        self.bus.publish(event)

    def release(self) -> None:
        for timer in self._deadlines.values():
            timer.cancel()
        self._deadlines.clear()
        running, self._running = self._running, {}
        if running:
            logger.info("cancelling %d running tool call(s)", len(running))
        for context in running.values():
            context.cancel()
