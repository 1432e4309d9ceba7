"""The daemon: the actors of one configuration, assembled and supervised.

`rtd run`, `rtd demo` and scripts all go through `Daemon`, so there is one runtime.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pykka

from rtd.actors.audio_input import AudioInputActor
from rtd.actors.audio_output import AudioOutputActor
from rtd.actors.receiver import ReceiverActor
from rtd.actors.sender import SenderActor
from rtd.actors.session import SessionActor
from rtd.actors.tools import ToolsActor
from rtd.audio import AudioOutput, open_input, open_output
from rtd.components import Receiver, Sender
from rtd.config import Config, default_registry
from rtd.plugins import Registry
from rtd.protocol import events
from rtd.protocol.providers import endpoint
from rtd.supervisor import Bus, Child, Ping, Supervisor

logger = logging.getLogger(__name__)

Crash = Callable[[str, BaseException], None]


class Daemon:
    """One configuration's actors, in dependency order.

    Tools and receivers first (they only react), then the speaker, the session, the senders,
    and the microphone last: nothing is heard or sent before the session can take it, and at
    shutdown the inputs stop first so nothing arrives after the session is gone.
    """

    def __init__(self, config: Config, bus: Bus | None = None,
                 registry: Registry | None = None) -> None:
        self.config = config
        self.bus = bus or Bus()
        self.registry = registry or default_registry()
        #: The speaker backend currently in use (replaced when its actor restarts).
        self.output: AudioOutput | None = None
        p = config.provider
        self.tools = {name: (c.component or self.registry.tools[name], c.settings, c.timeout)
                      for name, c in config.enabled("tools").items()}
        key = config.api_key.value if config.api_key else None
        self.endpoint = endpoint(p.name, p.model, key, p.url, p.headers)
        self.session_update = events.session_update(
            config.session, p.model, [tool.schema() for tool, _, _ in self.tools.values()])
        children = [Child("tools", self._start_tools, ToolsActor.receives)]
        for name, c in config.enabled("receivers").items():
            cls = c.component or self.registry.receivers[name]
            children.append(Child(f"receivers.{name}", self._component(ReceiverActor, cls,
                                                                       c.settings),
                                  ReceiverActor.receives(cls), critical=False, lossy=True))
        if config.audio_output.backend != "none":
            children.append(Child("audio_output", self._start_output,
                                  AudioOutputActor.receives))
        children.append(Child("session", self._start_session, SessionActor.receives))
        for name, c in config.enabled("senders").items():
            cls = c.component or self.registry.senders[name]
            children.append(Child(f"senders.{name}", self._component(SenderActor, cls,
                                                                     c.settings),
                                  critical=False))
        if config.audio_input.backend != "none":
            children.append(Child("audio_input", self._start_input, AudioInputActor.receives))
        self.supervisor = Supervisor(children, self.bus)

    @staticmethod
    def _component(actor: type[ReceiverActor] | type[SenderActor],
                   cls: type[Receiver] | type[Sender], settings: Any
                   ) -> Callable[[Bus, Crash], pykka.ActorRef[Any]]:
        """A start function making a fresh component instance each (re)start."""
        def start(bus: Bus, crash: Crash) -> pykka.ActorRef[Any]:
            instance = cls(settings) if cls.Settings is not None else cls()
            return actor.start(bus, crash, instance)
        return start

    def _start_tools(self, bus: Bus, crash: Crash) -> pykka.ActorRef[Any]:
        return ToolsActor.start(bus, crash, self.tools)

    def _start_output(self, bus: Bus, crash: Crash) -> pykka.ActorRef[Any]:
        a = self.config.audio_output
        self.output = open_output(a.backend, device=a.device, path=a.path,
                                  buffer_seconds=a.buffer_seconds, where="audio.output")
        logger.info("speaker: %s", self.output.description)
        return AudioOutputActor.start(bus, crash, self.output)

    def _start_session(self, bus: Bus, crash: Crash) -> pykka.ActorRef[Any]:
        return SessionActor.start(bus, crash, self.endpoint, self.session_update,
                                  connect_timeout=self.config.provider.connect_timeout,
                                  block_ms=self.config.audio_input.block_ms)

    def _start_input(self, bus: Bus, crash: Crash) -> pykka.ActorRef[Any]:
        a = self.config.audio_input
        backend = open_input(a.backend, device=a.device, path=a.path, block_ms=a.block_ms,
                             where="audio.input")
        logger.info("microphone: %s", backend.description)
        return AudioInputActor.start(bus, crash, backend)

    def start(self) -> None:
        self.supervisor.start()

    def run(self) -> int:
        """Block until a fatal error or too many crashes; return the exit code."""
        return self.supervisor.run()

    def stop(self, timeout: float = 2.0) -> None:
        self.supervisor.stop(timeout)

    def settle(self, timeout: float = 5.0) -> bool:
        """Wait until every receiver handled what was published before this call.

        A health-check ask per receiver; False if one did not answer within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        for child in self.supervisor.children:
            if not child.name.startswith("receivers.") or child.ref is None:
                continue
            try:
                child.ref.ask(Ping(), timeout=max(0.0, deadline - time.monotonic()))
            except pykka.ActorDeadError:
                continue  # restarting: it has nothing queued
            except pykka.Timeout:
                return False
        return True

    def drained(self, timeout: float = 5.0) -> bool:
        """Wait until the speaker actor has taken every message sent so far and played it all.

        For the demo and tests: the ask is a health check, not part of streaming.
        """
        child = next((c for c in self.supervisor.children if c.name == "audio_output"), None)
        if child is None or child.ref is None or self.output is None:
            return True
        try:
            child.ref.ask(Ping(), timeout=timeout)
        except (pykka.Timeout, pykka.ActorDeadError):
            return False
        deadline = time.monotonic() + timeout
        while not self.output.idle:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True
