"""A real MQTT broker (Debian's mosquitto) on a free loopback port, and a watching test client.

Each `Broker` is a private mosquitto process with its own configuration in a temporary
folder: anonymous or with a password file, no persistence (so a restart forgets every
retained message, as a broker restarted without its database does, and whatever is retained
afterwards was published again). `Watcher` is a paho client that keeps every message it sees.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 10.0


class BrokerUnavailable(Exception):
    """mosquitto is not installed (`apt-get install mosquitto`)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, folder: Path, *, users: dict[str, str] | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        if shutil.which("mosquitto") is None:
            raise BrokerUnavailable("mosquitto is not installed (apt-get install mosquitto)")
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # as root mosquitto would become the user "mosquitto", who cannot read the test's files
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1",
                 "persistence false",
                 "log_dest stderr", "log_type error", "log_type warning"]
        if tls is not None:  # (certificate, key): TLS only on this listener
            lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        if users:
            passwords = folder / "passwords"
            passwords.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password],
                               check=True, capture_output=True, timeout=30)
            passwords.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines += ["allow_anonymous true"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = folder / "mosquitto.log"

    def start(self) -> Broker:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log,
                                         stderr=subprocess.STDOUT)
        gate = threading.Event()
        for _ in range(int(START_TIMEOUT / 0.05)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                gate.wait(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} in {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


def make_certificates(folder: Path, name: str = "localhost") -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signed for ``name``: (ca, cert, key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60,
                       cwd=folder)

    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=rtd test CA")
    openssl("req", *curve, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={name}")
    (folder / "san.ext").write_text(f"subjectAltName=DNS:{name},IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool


class Watcher:
    """A paho client subscribed to ``topics``, keeping every message in order."""

    def __init__(self, port: int, topics: tuple[str, ...] = ("#",)) -> None:
        import paho.mqtt.client as mqtt

        self.seen: list[Seen] = []
        self._changed = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: (
            c.subscribe([(t, 1) for t in topics]))
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        assert subscribed.wait(10), "the watcher did not subscribe"

    def _on_message(self, _client, _userdata, message) -> None:
        with self._changed:
            self.seen.append(Seen(message.topic, bytes(message.payload), bool(message.retain)))
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[Seen]], object], timeout: float = 15.0
                 ) -> object:
        """Wait until ``predicate(seen)`` is truthy; its answer (AssertionError on timeout)."""
        with self._changed:
            found = self._changed.wait_for(lambda: predicate(self.seen), timeout)
            assert found, f"not seen within {timeout} s; seen: {self.topics()}"
            return found

    def latest(self, topic: str) -> bytes | None:
        with self._changed:
            return next((m.payload for m in reversed(self.seen) if m.topic == topic), None)

    def wait_value(self, topic: str, payload: bytes, timeout: float = 15.0) -> None:
        self.wait_for(lambda seen: any(m.topic == topic and m.payload == payload
                                       for m in seen), timeout)

    def topics(self) -> list[str]:
        return [f"{m.topic}={m.payload[:60]!r}" for m in self.seen]

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def clear(self) -> None:
        with self._changed:
            self.seen.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
