"""The service manager's side of the systemd notify protocol, for tests.

A real AF_UNIX datagram socket bound where ``$NOTIFY_SOCKET`` will point (a path, or an
``@name`` in the abstract namespace), recording every notification with the sender's process
id, which the kernel attaches (SO_PASSCRED) as it does for systemd.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Notification:
    at: float
    """time.monotonic() when it arrived."""
    pid: int | None
    """The sending process, from the kernel's credentials."""
    fields: dict[str, str]

    def __contains__(self, key: str) -> bool:
        return key in self.fields


class NotifySocket:
    def __init__(self, path: Path | None = None, *, abstract: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        if abstract is not None:
            self.sock.bind("\0" + abstract)
            self.address = "@" + abstract
        else:
            assert path is not None
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.2)
        self.received: list[Notification] = []
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        size = socket.CMSG_SPACE(struct.calcsize("3i"))
        while not self._closed:
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(4096, size)
            except TimeoutError:
                continue
            except OSError:
                return
            pid = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[: struct.calcsize("3i")])[0]
            fields = dict(line.split("=", 1) for line in data.decode().split("\n")
                          if "=" in line)
            with self._changed:
                self.received.append(Notification(time.monotonic(), pid, fields))
                self._changed.notify_all()

    def messages(self, key: str | None = None) -> list[Notification]:
        with self._changed:
            return [m for m in self.received if key is None or key in m]

    def wait_for(self, predicate: Callable[[list[Notification]], bool],
                 timeout: float = 20.0, what: str = "a notification") -> list[Notification]:
        """Wait until ``predicate(all received)`` holds; all received so far."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self.received), timeout):
                shown = "\n".join(str(m.fields) for m in self.received)
                raise AssertionError(f"no {what} within {timeout} s; received:\n{shown}")
            return list(self.received)

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        self._thread.join(timeout=2)
