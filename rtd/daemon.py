"""The daemon: the actors of one configuration, assembled and supervised.

`rtd run`, `rtd demo` and scripts all go through `Daemon`, so there is one runtime.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import pykka

from rtd.actors.audio_input import AudioInputActor
from rtd.actors.audio_output import AudioOutputActor
from rtd.actors.budget import state_directory
from rtd.actors.control import ControlActor
from rtd.actors.receiver import ReceiverActor
from rtd.actors.sender import SenderActor
from rtd.actors.session import SessionActor, SessionPolicy, TransportSettings
from rtd.actors.state import StateActor
from rtd.actors.tools import ToolsActor
from rtd.audio import (
    AudioInput,
    AudioOutput,
    EchoPolicy,
    Reference,
    make_policy,
    open_input,
    open_output,
)
from rtd.components import Receiver, Sender
from rtd.config import (
    AudioInputConfig,
    AudioOutputConfig,
    Config,
    ControlConfig,
    default_registry,
)
from rtd.messages import UpdateSession
from rtd.plugins import Registry
from rtd.protocol import events
from rtd.protocol.providers import OPENAI_BASE_URL, Endpoint, endpoint, openai_endpoint
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
        #: The microphone backend currently in use (replaced when its actor restarts).
        self.input: AudioInput | None = None
        #: What the speaker hands to its device, for the microphone's echo handling; one for
        #: the daemon's life, so either side may restart alone.
        self.reference = Reference()
        self.session_update = self._session_update(config)
        children, self._keys = self._plan(config)
        self.supervisor = Supervisor(children, self.bus)

    # -- what a configuration runs ----------------------------------------------------------

    def _tools(self, config: Config) -> dict[str, tuple[Any, Any, float | None]]:
        return {name: (c.component or self.registry.tools[name], c.settings, c.timeout)
                for name, c in config.enabled("tools").items()}

    def _session_update(self, config: Config) -> dict[str, Any]:
        tools = [tool.schema() for tool, _, _ in self._tools(config).values()]
        return events.session_update(config.session, config.provider.model, tools,
                                     barge_in_min_ms=config.audio.barge_in_min_ms)

    @staticmethod
    def _endpoint(config: Config) -> Endpoint:
        p = config.provider
        key = config.api_key.value if config.api_key else None
        if p.name == "openai" and not p.url and key:
            # as the OpenAI SDK finds it; config already read $OPENAI_BASE_URL (or not)
            return openai_endpoint(p.model, api_key=key,
                                   base_url=config.base_url or OPENAI_BASE_URL,
                                   headers=p.headers, dialect=p.dialect)
        return endpoint(p.name, p.model, key, p.url, p.headers, p.dialect)

    def _plan(self, config: Config) -> tuple[list[Child], dict[str, object]]:
        """The actors ``config`` needs in start order, and what each one's set-up depends on.

        A reload restarts exactly the actors whose dependencies changed. The session's own
        settings (but the voice) are not among its dependencies: they reach the server as a
        `session.update` on the open connection.
        """
        children: list[Child] = []
        keys: dict[str, object] = {}

        def add(child: Child, key: object) -> None:
            children.append(child)
            keys[child.name] = key

        # first up, last down: `rtd status` answers while everything else starts and stops
        add(Child("control", self._start_control(config.control), ControlActor.receives,
                  critical=False), config.control)
        # the state only reacts to what others report: it is up before anything reports
        speaker = config.audio_output.backend != "none" and config.session.output == "audio"
        add(Child("state", self._start_state(speaker), StateActor.receives_for(speaker)),
            speaker)
        tools = self._tools(config)
        add(Child("tools", self._start_tools(tools), ToolsActor.receives),
            tuple((name, settings, timeout) for name, (_, settings, timeout) in tools.items()))
        for name, c in config.enabled("receivers").items():
            cls = c.component or self.registry.receivers[name]
            add(Child(f"receivers.{name}", self._component(ReceiverActor, cls, c.settings),
                      ReceiverActor.receives(cls), critical=False, lossy=True), c)
        if config.audio_output.backend != "none":
            add(Child("audio_output", self._start_output(config.audio_output),
                      AudioOutputActor.receives), config.audio_output)
        target = self._endpoint(config)
        p = config.provider
        transport = TransportSettings(
            connect_timeout=p.connect_timeout, ping_interval=p.ping_interval,
            pong_timeout=p.pong_timeout, send_timeout=p.send_timeout,
            response_timeout=p.response_timeout, audio_backlog_ms=config.audio_input.backlog_ms)
        policy = self._policy(config)
        # the server refuses a new voice once the conversation has audio: a new voice needs a
        # new conversation, so it restarts the session like a new server does
        barge_in_min_ms = config.audio.barge_in_min_ms
        add(Child("session", self._start_session(target, transport, policy, speaker,
                                                 barge_in_min_ms), SessionActor.receives),
            (target, transport, policy, config.session.voice, speaker, barge_in_min_ms))
        for name, c in config.enabled("senders").items():
            cls = c.component or self.registry.senders[name]
            add(Child(f"senders.{name}", self._component(SenderActor, cls, c.settings),
                      SenderActor.receives(cls), critical=False, lossy=True), c)
        if config.audio_input.backend != "none":
            # the echo policy is the microphone's: [audio] and the speaker's kind are its too
            add(Child("audio_input", self._start_input(config.audio_input),
                      AudioInputActor.receives),
                (config.audio_input, config.audio, config.audio_output.backend))
        return children, keys

    @staticmethod
    def _component(actor: type[ReceiverActor] | type[SenderActor],
                   cls: type[Receiver] | type[Sender], settings: Any
                   ) -> Callable[[Bus, Crash], pykka.ActorRef[Any]]:
        """A start function making a fresh component instance each (re)start."""
        def start(bus: Bus, crash: Crash) -> pykka.ActorRef[Any]:
            instance = cls(settings) if cls.Settings is not None else cls()
            return actor.start(bus, crash, instance)
        return start

    @staticmethod
    def _start_control(c: ControlConfig) -> Callable[[Bus, Crash], pykka.ActorRef[Any]]:
        def start(bus: Bus, crash: Crash) -> pykka.ActorRef[Any]:
            return ControlActor.start(bus, crash, c.path, c.mode)
        return start

    @staticmethod
    def _start_tools(tools: dict[str, Any]) -> Callable[[Bus, Crash], pykka.ActorRef[Any]]:
        def start(bus: Bus, crash: Crash) -> pykka.ActorRef[Any]:
            return ToolsActor.start(bus, crash, tools)
        return start

    def _start_output(self, a: AudioOutputConfig) -> Callable[[Bus, Crash], pykka.ActorRef[Any]]:
        def start(bus: Bus, crash: Crash) -> pykka.ActorRef[Any]:
            # a sound device that is missing or busy does not fail the start: the backend
            # keeps looking for it (rtd.audio.sounddevice_backend)
            self.output = open_output(a.backend, device=a.device, path=a.path,
                                      buffer_seconds=a.buffer_seconds, block_ms=a.block_ms,
                                      where="audio.output", wait=True,
                                      reference=self.reference)
            logger.info("speaker: %s", self.output.description)
            return AudioOutputActor.start(bus, crash, self.output)
        return start

    @staticmethod
    def _policy(config: Config) -> SessionPolicy:
        s = config.session
        return SessionPolicy(start=s.start, idle_close_s=s.idle_close_s,
                             recycle_before_s=s.recycle_before_s,
                             replay_max_chars=s.replay_max_chars,
                             default_session_s=1800.0 if config.provider.name == "azure"
                             else 3600.0, max_minutes_per_day=s.max_minutes_per_day,
                             state_dir=state_directory(s.state_dir, os.environ))

    def _start_session(self, target: Endpoint, transport: TransportSettings,
                       policy: SessionPolicy, speaker: bool, barge_in_min_ms: int
                       ) -> Callable[[Bus, Crash], pykka.ActorRef[Any]]:
        def start(bus: Bus, crash: Crash) -> pykka.ActorRef[Any]:
            # the current settings: a session restarted after a reload starts with the new ones
            return SessionActor.start(bus, crash, target, self.session_update,
                                      transport=transport, policy=policy, playback=speaker,
                                      barge_in_min_ms=barge_in_min_ms)
        return start

    @staticmethod
    def _start_state(speaker: bool) -> Callable[[Bus, Crash], pykka.ActorRef[Any]]:
        def start(bus: Bus, crash: Crash) -> pykka.ActorRef[Any]:
            return StateActor.start(bus, crash, speaker=speaker)
        return start

    def _start_input(self, a: AudioInputConfig) -> Callable[[Bus, Crash], pykka.ActorRef[Any]]:
        def start(bus: Bus, crash: Crash) -> pykka.ActorRef[Any]:
            self.input = open_input(a.backend, device=a.device, path=a.path,
                                    block_ms=a.block, where="audio.input", wait=True)
            logger.info("microphone: %s", self.input.description)
            return AudioInputActor.start(bus, crash, self.input, self._echo(self.config))
        return start

    def _echo(self, config: Config) -> EchoPolicy | None:
        """The microphone's echo policy: only a sound device hears a sound device; a WAV
        microphone or a WAV (or no) speaker has no echo to handle."""
        if (config.audio_input.backend, config.audio_output.backend) != ("sounddevice",) * 2:
            return None
        a = config.audio
        policy = make_policy(a.echo, self.reference, tail_ms=a.echo_tail_ms)
        logger.info("echo: %s", policy.mode)
        return policy

    # -- running ----------------------------------------------------------------------------

    def start(self) -> None:
        self.supervisor.start()

    def run(self) -> int:
        """Block until a fatal error or too many crashes; return the exit code."""
        return self.supervisor.run()

    def stop(self, timeout: float = 2.0) -> None:
        self.supervisor.stop(timeout)

    def reload(self, config: Config, timeout: float = 10.0) -> list[str]:
        """Switch to ``config`` while running; returns what changed, for the log.

        Actors whose set-up changed restart, new components start, removed ones stop, and new
        session settings go to the server on the open connection. Safe from any thread: the work
        runs on the supervisor's. Raises TimeoutError if it did not finish within ``timeout``.
        """
        changes: list[str] = []

        def apply() -> None:
            changes.extend(self._apply(config))

        if not self.supervisor.call(apply, timeout):
            raise TimeoutError(f"the reload did not finish within {timeout:g} s")
        return changes

    def _apply(self, config: Config) -> list[str]:
        children, keys = self._plan(config)
        restart = [n for n in keys if n in self._keys and keys[n] != self._keys[n]]
        changes = [f"restarted {n}" for n in restart]
        changes += [f"started {n}" for n in keys if n not in self._keys]
        changes += [f"stopped {n}" for n in self._keys if n not in keys]
        update, previous = self._session_update(config), self.session_update
        self.config, self._keys, self.session_update = config, keys, update
        self.supervisor.replace(children, restart)
        if "session" in keys and "session" not in restart and update != previous:
            self.bus.publish(UpdateSession(update))
            changes.append("sent the new session settings")
        return changes

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
