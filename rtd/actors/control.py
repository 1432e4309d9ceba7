"""The control actor: the Unix socket `rtd status`, `rtd wake`, `rtd sleep` and `rtd talk` use.

One JSON object per line each way. A request names a ``command``; the answer is
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. Commands that act (wake, sleep,
talk) publish the same messages a sender's `SenderContext` would, so a button, a wake word and
the command line all take one path. ``status`` answers from what the other actors publish
(`StatusReport`, `StateEvent`, `ConnectionState`): this actor mirrors no turn state of its own.

The socket is owner-only by default (``[control] mode = "0600"``): it can wake a paid
conversation. It is served on a thread of its own; answering never waits on another actor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rtd._version import __version__
from rtd.builtin.unixsocket import Wakeable, in_use, listen, path_problem, unlink_own
from rtd.messages import (
    CancelTurn,
    ConnectionState,
    EndTurn,
    Sleep,
    StartTurn,
    StateEvent,
    StatusReport,
    Wake,
)
from rtd.supervisor import Bus, RtdActor

logger = logging.getLogger(__name__)

MAX_REQUEST = 4096
"""Bytes: a longer request line is refused."""
CLIENT_TIMEOUT = 5.0
"""Seconds a client may take to send its request."""

STATUS_KEYS = ("state", "connected", "session_age_s", "expires_in_s", "minutes_today", "turns",
               "interruptions", "tool_calls", "reconnects", "recycles", "dropped_audio_ms")
"""Keys `rtd status --json` always has; None until an actor has reported the value."""

TALK_ACTIONS: dict[str, type] = {"start": StartTurn, "stop": EndTurn, "cancel": CancelTurn}


class ControlActor(RtdActor):
    name = "control"
    receives = (StatusReport, StateEvent, ConnectionState)

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 path: str, mode: str = "0600") -> None:
        super().__init__(bus, on_crash)
        self.path = Path(path)
        self.mode = int(mode, 8)
        self.started = time.time()
        self._lock = threading.Lock()
        self._reports: dict[str, Mapping[str, Any]] = {}
        self._state: StateEvent | None = None
        self._connection: ConnectionState | None = None
        self._server: socket.socket | None = None
        self._wake = Wakeable()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- the actor's thread ---------------------------------------------------------------

    def setup(self) -> None:
        problem = path_problem(self.path, "control.path")
        if problem is None and in_use(self.path):
            problem = (f"another rtd answers on {self.path}; `rtd status` reaches that one. "
                       "Give each daemon its own control.path")
        if problem is None:
            try:
                self._server = listen(self.path, self.mode, "control.path")
            except OSError as exc:
                problem = str(exc).removeprefix("control.path: ")
        if problem is not None:  # the conversation does not need the socket: say so, go on
            logger.warning("control.path: %s; rtd status, wake, sleep and talk will not reach "
                           "this daemon", problem)
            return
        logger.info("control socket: %s", self.path)
        self._thread = threading.Thread(target=self._serve, name="rtd-control", daemon=True)
        self._thread.start()

    def handle(self, message: Any) -> Any:
        with self._lock:
            if isinstance(message, StatusReport):
                self._reports[message.source] = dict(message.fields)
            elif isinstance(message, StateEvent):
                self._state = message
            elif isinstance(message, ConnectionState):
                self._connection = message

    def release(self) -> None:
        self._stopping.set()
        self._wake.wake()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._server is not None:
            unlink_own(self.path, self._server)
            self._server.close()
            self._server = None
        self._wake.close()

    # -- the socket's thread --------------------------------------------------------------

    def _serve(self) -> None:
        server = self._server
        assert server is not None
        sel = selectors.DefaultSelector()
        sel.register(server, selectors.EVENT_READ)
        sel.register(self._wake, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                for key, _ in sel.select():
                    if key.fileobj is server and not self._stopping.is_set():
                        with contextlib.suppress(OSError):
                            client, _addr = server.accept()
                            with client:
                                self._answer(client)
        finally:
            sel.close()

    def _answer(self, client: socket.socket) -> None:
        client.settimeout(CLIENT_TIMEOUT)
        line = b""
        while b"\n" not in line and len(line) <= MAX_REQUEST:
            chunk = client.recv(MAX_REQUEST)
            if not chunk:
                break
            line += chunk
        try:
            reply = self.execute(json.loads(line.split(b"\n", 1)[0] or b"null"))
        except (ValueError, UnicodeDecodeError):
            reply = {"ok": False, "error": "a request is one JSON object per line, e.g. "
                                           '{"command": "status"}'}
        client.sendall(json.dumps(reply).encode() + b"\n")

    def execute(self, request: Any) -> dict[str, Any]:
        """Carry out one request; the answer is what the client receives."""
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return {"ok": False, "error": 'a request is a JSON object with a "command"'}
        command = request["command"]
        if command == "status":
            return {"ok": True, "status": self.status()}
        if command == "wake":
            self.bus.publish(Wake("control"))
            return {"ok": True}
        if command == "sleep":
            self.bus.publish(Sleep("control"))
            return {"ok": True}
        if command == "talk":
            action = request.get("action")
            if action not in TALK_ACTIONS:
                return {"ok": False, "error": f"talk needs an action: {', '.join(TALK_ACTIONS)}"}
            self.bus.publish(TALK_ACTIONS[action]())
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {command!r}; known: status, wake, "
                                      "sleep, talk"}

    def status(self) -> dict[str, Any]:
        """What `rtd status` shows: the required keys first, then every actor's report."""
        with self._lock:
            out: dict[str, Any] = dict.fromkeys(STATUS_KEYS)
            for fields in self._reports.values():
                out.update(fields)
            if self._state is not None:
                out["state"] = self._state.state
                out["state_detail"] = self._state.detail
                out["muted"] = self._state.muted
            if self._connection is not None:
                out["connected"] = self._connection.connected
                out["connection"] = self._connection.detail
        out["pid"] = os.getpid()
        out["version"] = __version__
        out["uptime_s"] = round(time.time() - self.started, 1)
        return out


# -- the client side (the rtd commands) -------------------------------------------------------


class ControlError(Exception):
    """The daemon could not be reached, or refused the request; the text is for the user."""


def request(path: str | os.PathLike[str], command: str, timeout: float = 5.0,
            **fields: Any) -> dict[str, Any]:
    """Send one request to the daemon at ``path`` and return its answer (``ok`` is true)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(os.fspath(path))
            sock.sendall(json.dumps({"command": command, **fields}).encode() + b"\n")
            raw = sock.makefile("rb").readline()
    except (FileNotFoundError, ConnectionRefusedError):
        raise ControlError(f"rtd is not running (nothing answers on {path}; see control.path "
                           "in the configuration)") from None
    except PermissionError:
        raise ControlError(f"permission denied on {path}: run as rtd's user, or set "
                           "control.mode to 0660 and join its group") from None
    except OSError as exc:
        raise ControlError(f"cannot talk to rtd on {path}: {exc.strerror or exc}") from None
    try:
        reply = json.loads(raw)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise ControlError(f"rtd on {path} gave no answer")
    if not reply.get("ok"):
        raise ControlError(f"rtd refused {command}: {reply.get('error') or 'no reason given'}")
    return reply


__all__ = ["STATUS_KEYS", "ControlActor", "ControlError", "request"]
