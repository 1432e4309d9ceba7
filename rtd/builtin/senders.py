"""Built-in senders: a Unix socket for `rtd say` and scripts, the terminal's stdin, and a
push-to-talk key on a Linux input device."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import stat
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rtd.builtin.unixsocket import Wakeable, listen, path_problem
from rtd.components import Sender, SenderContext
from rtd.schema import did_you_mean, setting

MAX_LINE = 4096
"""Bytes: a longer line is refused, so one client cannot make rtd hold unbounded text."""
CLIENT_TIMEOUT = 10.0
"""Seconds a socket client may stay silent before it is dropped."""
@dataclass(frozen=True)
class SocketSettings:
    """Settings of the socket sender."""

    path: str = setting("/run/rtd/rtd.sock", "Unix socket accepting one text message per line")
    mode: str = setting("0660", "permissions of the socket file, in octal; bits for other "
                        "users are dropped")
    respond: bool = setting(True, "ask the model to answer each message")

    def __post_init__(self) -> None:
        try:
            mode = int(self.mode, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise ValueError(f"mode {self.mode!r} is not an octal mode such as '0660'")


class SocketSender(Sender):
    """Text lines from local programs: `rtd say "turn on the radio"`, cron jobs, scripts.

    Each line becomes a user message; the client gets "ok" per line (or "error: ..."), so
    `rtd say` can tell the user whether it was heard.
    """

    name = "socket"
    Settings = SocketSettings

    def __init__(self, settings: SocketSettings | None = None) -> None:
        super().__init__(settings or SocketSettings())
        self._wake = Wakeable()

    @classmethod
    def check(cls, settings: SocketSettings) -> list[str]:
        """The socket must be bindable: a short enough path, in a folder rtd can write to."""
        problem = path_problem(Path(settings.path), "senders.socket.path")
        return [f"path: {problem}"] if problem else []

    def run(self, ctx: SenderContext) -> None:
        path = Path(self.settings.path)
        mode = int(self.settings.mode, 8)  # checked by SocketSettings
        if mode & 0o007:
            ctx.log.warning("senders.socket.mode: %s would let every user on this machine talk "
                            "to rtd; using %04o (owner and group only)", self.settings.mode,
                            mode & 0o770)
            mode &= 0o770
        problems = self.check(self.settings)
        if problems:  # retrying cannot make the directory writable: say so once, stay down
            ctx.log.warning("senders.socket.%s; the socket sender is not running", problems[0])
            return
        server = self._listen(path, mode)
        ctx.log.info("listening on %s", path)
        sel = selectors.DefaultSelector()
        sel.register(server, selectors.EVENT_READ)
        sel.register(self._wake, selectors.EVENT_READ)
        try:
            while not ctx.stopping.is_set():
                for key, _ in sel.select():
                    if key.fileobj is server and not ctx.stopping.is_set():
                        client, _addr = server.accept()
                        with client:
                            self._serve(client, ctx)
        finally:
            sel.close()
            server.close()
            with contextlib.suppress(OSError):
                path.unlink()

    @staticmethod
    def _listen(path: Path, mode: int) -> socket.socket:
        return listen(path, mode, "senders.socket.path")

    def _serve(self, client: socket.socket, ctx: SenderContext) -> None:
        """Read lines from one client until it closes, idles too long, or rtd stops."""
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ)
        sel.register(self._wake, selectors.EVENT_READ)
        pending = b""
        try:
            while not ctx.stopping.is_set():
                ready = sel.select(timeout=CLIENT_TIMEOUT)
                if not ready or any(key.fileobj is self._wake for key, _ in ready):
                    return  # idle client, or stopping
                chunk = client.recv(MAX_LINE)
                if not chunk:
                    return
                pending += chunk
                while b"\n" in pending:
                    raw, pending = pending.split(b"\n", 1)
                    text = raw.decode("utf-8", "replace").strip()
                    if text:
                        ok = ctx.send_text(text, respond=self.settings.respond)
                        client.sendall(b"ok\n" if ok else b"error: rtd is stopping\n")
                if len(pending) > MAX_LINE:
                    client.sendall(b"error: line longer than 4096 bytes\n")
                    return
        except OSError:
            return
        finally:
            sel.close()

    def stop(self) -> None:
        self._wake.wake()


@dataclass(frozen=True)
class StdinSettings:
    """Settings of the stdin sender."""

    respond: bool = setting(True, "ask the model to answer each line")


class StdinSender(Sender):
    """Lines typed in the terminal become user messages: a keyboard for `rtd run` at a desk."""

    name = "stdin"
    Settings = StdinSettings

    def __init__(self, settings: StdinSettings | None = None, stream: IO[str] | None = None
                 ) -> None:
        super().__init__(settings or StdinSettings())
        self.stream = stream if stream is not None else sys.stdin
        self._wake = Wakeable()

    @classmethod
    def check(cls, settings: StdinSettings) -> list[str]:
        """Standard input must be something to type or pipe into (not systemd's /dev/null)."""
        problem = stdin_problem()
        return [problem.removeprefix("senders.stdin: ")] if problem else []

    def run(self, ctx: SenderContext) -> None:
        problem = stdin_problem(self.stream)
        if problem is not None:  # a restart would find the same stdin: say so once, stay down
            ctx.log.warning("%s; the stdin sender is not running", problem)
            return
        sel = selectors.DefaultSelector()
        sel.register(self.stream, selectors.EVENT_READ)
        sel.register(self._wake, selectors.EVENT_READ)
        try:
            while not ctx.stopping.is_set():
                for key, _ in sel.select():
                    if key.fileobj is not self.stream or ctx.stopping.is_set():
                        continue
                    line = self.stream.readline()
                    if not line:  # end of input: nothing more will come
                        return
                    if line.strip():
                        ctx.send_text(line.strip(), respond=self.settings.respond)
        finally:
            sel.close()

    def stop(self) -> None:
        self._wake.wake()


def stdin_problem(stream: IO[str] | None = None) -> str | None:
    """Why the stdin sender cannot read ``stream`` (standard input by default), or None.

    It reads lines as they are typed or piped; under systemd stdin is /dev/null, and a regular
    file cannot be waited on (and would be read once, at start, with nobody to answer).
    """
    stream = sys.stdin if stream is None else stream
    where = "senders.stdin: standard input"
    if stream is None or stream.closed:
        return f"{where} is closed"
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file descriptor
        return f"{where} is not a terminal or a pipe"
    if stream.isatty() or stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        return None
    try:
        null = os.stat(os.devnull)
        is_null = stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev
    except OSError:
        is_null = False
    what = ("/dev/null (as under systemd)" if is_null
            else "a regular file" if stat.S_ISREG(st.st_mode) else "not a terminal or a pipe")
    return (f"{where} is {what}, so there is nothing to type into; remove [senders.stdin] here, "
            "or run rtd in a terminal or with a pipe")


# -- push to talk ----------------------------------------------------------------------------

EV_KEY = 1
"""The kernel's event type for keys and buttons (linux/input-event-codes.h)."""
KEY_PRESS, KEY_RELEASE, KEY_REPEAT = 1, 0, 2
"""`input_event.value` for EV_KEY: pressed, released, auto-repeat while held."""
INPUT_EVENT = struct.Struct("@llHHi")
"""The kernel's ``struct input_event``: a ``struct timeval`` (two longs), ``__u16 type``,
``__u16 code``, ``__s32 value``; 24 bytes on 64-bit Linux, 16 on 32-bit."""
READ_EVENTS = 64
"""Records read per wake-up: a keyboard sends a handful per key press (scan codes, syncs)."""

KEY_CODES: dict[str, int] = {
    "KEY_ESC": 1, "KEY_BACKSPACE": 14, "KEY_TAB": 15, "KEY_ENTER": 28, "KEY_LEFTCTRL": 29,
    "KEY_LEFTSHIFT": 42, "KEY_RIGHTSHIFT": 54, "KEY_LEFTALT": 56, "KEY_SPACE": 57,
    "KEY_CAPSLOCK": 58, "KEY_F11": 87, "KEY_F12": 88, "KEY_RIGHTCTRL": 97, "KEY_RIGHTALT": 100,
    "KEY_HOME": 102, "KEY_UP": 103, "KEY_PAGEUP": 104, "KEY_LEFT": 105, "KEY_RIGHT": 106,
    "KEY_END": 107, "KEY_DOWN": 108, "KEY_PAGEDOWN": 109, "KEY_INSERT": 110, "KEY_DELETE": 111,
    "KEY_MUTE": 113, "KEY_VOLUMEDOWN": 114, "KEY_VOLUMEUP": 115, "KEY_POWER": 116,
    "KEY_PAUSE": 119, "KEY_PROG1": 148, "KEY_PLAYPAUSE": 164, "KEY_RECORD": 167,
    "KEY_MICMUTE": 248, "BTN_LEFT": 0x110, "BTN_RIGHT": 0x111, "BTN_MIDDLE": 0x112,
    "BTN_TRIGGER": 0x120, "BTN_SOUTH": 0x130, "BTN_EAST": 0x131,
    **{f"KEY_F{n}": 58 + n for n in range(1, 11)},
    **{f"KEY_{n}": 1 + n for n in range(1, 10)}, "KEY_0": 11,
    **{f"KEY_{c}": 16 + i for i, c in enumerate("QWERTYUIOP")},
    **{f"KEY_{c}": 30 + i for i, c in enumerate("ASDFGHJKL")},
    **{f"KEY_{c}": 44 + i for i, c in enumerate("ZXCVBNM")},
    **{f"BTN_{n}": 0x100 + n for n in range(10)},
}
"""Key names from linux/input-event-codes.h that a push-to-talk button is likely to send
(a USB button, a keyboard, a Pi's GPIO button through gpio-keys' ``linux,code``); any other
key is given by its number."""


def key_code(name: str) -> int:
    """The kernel's code for a key name (``KEY_SPACE``) or number (``57``, ``0x39``)."""
    text = name.strip()
    code = KEY_CODES.get(text.upper())
    if code is not None:
        return code
    try:
        number = int(text, 0)
    except ValueError:
        raise ValueError(f"unknown key {name!r}{did_you_mean(text.upper(), list(KEY_CODES))}; "
                         "give a name such as KEY_SPACE, BTN_0 or KEY_F1, or the key's number "
                         "(evtest shows it)") from None
    if not 0 < number < 0x300:
        raise ValueError(f"key number {number} is outside the kernel's key codes (1..767)")
    return number


@dataclass(frozen=True)
class PushToTalkSettings:
    """Settings of the push_to_talk sender."""

    device: str = setting("", "the Linux input device to read, e.g. "
                          "/dev/input/by-id/usb-...-event-kbd (a keyboard, a USB button, or a "
                          "GPIO button through the gpio-keys driver)")
    key: str = setting("KEY_SPACE", "the key that talks while held: a name such as KEY_SPACE, "
                       "KEY_ENTER, BTN_0 or KEY_F1, or the key's number")

    def __post_init__(self) -> None:
        if not self.device:
            raise ValueError("device: required: the input device to read, e.g. "
                             "/dev/input/by-id/usb-...-event-kbd (ls /dev/input/by-id/)")
        try:
            key_code(self.key)
        except ValueError as exc:
            raise ValueError(f"key: {exc}") from None


class PushToTalkSender(Sender):
    """Hold a key to talk: press starts a turn (clears what the microphone sent), release ends
    it (commits it and asks for the answer). Pressing while the assistant speaks interrupts it.

    Reads the kernel's ``input_event`` records from the device itself, so no input library is
    needed and any device the kernel exposes under /dev/input works. Meant for
    ``[session] turn_detection = "none"``; with server VAD the server takes the turns as well.
    """

    name = "push_to_talk"
    Settings = PushToTalkSettings

    def __init__(self, settings: PushToTalkSettings | None = None) -> None:
        super().__init__(settings)
        self._wake = Wakeable()

    @classmethod
    def check(cls, settings: PushToTalkSettings) -> list[str]:
        """The device must exist, be an input device (or a pipe, for tests) and be readable."""
        return [f"device: {p}"] if (p := device_problem(Path(settings.device))) else []

    def run(self, ctx: SenderContext) -> None:
        path = Path(self.settings.device)
        problem = device_problem(path)
        if problem is not None:
            # a device that is not there yet (unplugged USB button): raise so the supervisor
            # tries again with backoff; it appears once plugged in
            raise OSError(f"senders.push_to_talk.device: {problem}")
        code = key_code(self.settings.key)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        sel.register(self._wake, selectors.EVENT_READ)
        ctx.log.info("push to talk: hold %s on %s", self.settings.key, path)
        held = False
        pending = b""
        try:
            while not ctx.stopping.is_set():
                for key, _ in sel.select():
                    if key.fileobj is not fd or ctx.stopping.is_set():
                        continue
                    try:
                        chunk = os.read(fd, INPUT_EVENT.size * READ_EVENTS)
                    except BlockingIOError:
                        continue
                    except OSError as exc:  # ENODEV: the device was unplugged
                        raise OSError(f"senders.push_to_talk.device: {path}: "
                                      f"{exc.strerror or exc}; waiting for it") from None
                    if not chunk:  # a pipe whose writer left: nothing more will come
                        ctx.log.info("push to talk: %s closed", path)
                        return
                    pending += chunk
                    whole = len(pending) - len(pending) % INPUT_EVENT.size
                    for _s, _us, kind, number, value in INPUT_EVENT.iter_unpack(pending[:whole]):
                        if kind != EV_KEY or number != code:
                            continue
                        if value == KEY_PRESS and not held:
                            held = True
                            ctx.start_turn()
                        elif value == KEY_RELEASE and held:
                            held = False
                            ctx.end_turn()
                    pending = pending[whole:]
        finally:
            sel.close()
            os.close(fd)

    def stop(self) -> None:
        self._wake.wake()


def device_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input device, or None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return (f"{path} does not exist; list the input devices with ls -l /dev/input/by-id/ "
                "(or cat /proc/bus/input/devices)")
    except OSError as exc:
        return f"cannot look at {path}: {exc.strerror or exc}"
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        return f"{path} is not an input device (expected a character device under /dev/input)"
    if not os.access(path, os.R_OK):
        return (f"{path} is not readable by {_user_name()}; add that user to the group owning "
                "it (usually: usermod -aG input rtd)")
    return None


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"
