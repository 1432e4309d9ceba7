"""The emulator's WebSocket server: an asyncio loop in a daemon thread, driven from sync code.

Tests and the daemon's demo are synchronous, so `Emulator` owns its own event loop in a
background thread and exposes what it saw through thread-safe properties. `serve` wraps it for
the `rtd emulate` command.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from rtd.emulator import faults as fault_actions
from rtd.emulator.connection import Connection, new_id
from rtd.emulator.dialect import wire_dialect
from rtd.emulator.scenario import UPGRADE, Fault, Scenario, load_scenario, parse_faults
from rtd.emulator.state import SessionRecord, SharedState
from rtd.emulator.validation import (
    DEFAULT_MODEL,
    ClientError,
    default_session,
    merge_session,
    validate_session,
)
from rtd.emulator.voice import resolve_engine
from rtd.exceptions import RtdError

logger = logging.getLogger(__name__)

BANNER = ("rtd emulator (local offline peer for development and tests, not the OpenAI service) "
          "listening on {url}")
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # the service accepts appends of up to 15 MiB
CLOSE_TIMEOUT = 0.5  # seconds to wait for a client's close frame before dropping it
STOP_TIMEOUT = 5.0


class Emulator:
    """A local WebSocket server speaking the GA Realtime protocol: rtd's offline peer.

    It stands in for the realtime service in tests, in `rtd demo` and during development.
    It checks what clients send as the service does, answers from a scenario instead of a
    model, and can inject faults. It is not the OpenAI service and says so in its banner.

    `scenario` is a `Scenario`, a path to a scenario TOML file, or None (every turn gets the
    default reply). `auth_failure` chooses how a wrong key is refused: "http" answers the
    upgrade with HTTP 401; "close" accepts it, sends an `invalid_api_key` error event and closes
    with 3000, which is what the live service was observed to do on a WebSocket.
    `max_session_seconds` ends every connection like the service's 60-minute limit. `faults`
    are injected after the scenario's own `[[fault]]` tables: each a `Fault`, a table with the
    same keys, or such a table's inside as TOML text; a bad one raises ConfigError naming the
    key, e.g. `faults=[{"at": "response.done", "do": "duplicate", "turn": 1}]`. `dialect`
    ("ga", "beta", "xai") is the shape spoken on the socket (`rtd.emulator.dialect`); inside,
    and in what tests read (`received`, `sent`), it is always GA.

    The same port answers `POST /v1/realtime/client_secrets` (beta dialect:
    `/v1/realtime/sessions`): an ephemeral secret that a following connection may use as its
    key, starting with the session it was made with.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 scenario: Scenario | str | Path | None = None, api_key: str | None = None,
                 voice_engine: str = "auto", max_session_seconds: float | None = None,
                 *, auth_failure: Literal["http", "close"] = "http",
                 faults: Iterable[Fault | Mapping[str, Any] | str] = (),
                 dialect: str = "ga") -> None:
        self.dialect = wire_dialect(dialect)
        if isinstance(scenario, (str, Path)):
            scenario = load_scenario(scenario)
        extra = parse_faults(faults)
        if max_session_seconds is not None and max_session_seconds <= 0:
            raise ValueError("max_session_seconds must be positive (or None for one hour)")
        if auth_failure not in ("http", "close"):
            raise ValueError("auth_failure must be 'http' or 'close'")
        self.host = host
        self.api_key = api_key
        self.auth_failure = auth_failure
        self._requested_port = port
        self._port: int | None = None
        self._state = SharedState(scenario or Scenario(), resolve_engine(voice_engine),
                                  max_session_seconds, faults=extra)
        self._upgrade_scope = fault_actions.Scope()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._stopped = False
        self._lock = threading.Lock()
        self._live: set[Connection] = set()  # open connections (touched on the loop only)
        #: Ephemeral secrets issued over REST: value -> (expires_at, GA session).
        self._secrets: dict[str, tuple[int, dict[str, Any]]] = {}

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start listening (in a daemon thread); return once the port is open."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("this emulator was already started")
            self._thread = threading.Thread(target=self._run, name="rtd-emulator", daemon=True)
            self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join(timeout=STOP_TIMEOUT)
            raise RtdError(f"rtd emulator cannot listen on {self.host}:{self._requested_port}: "
                           f"{self._start_error}") from self._start_error
        logger.info("rtd emulator (offline development peer) listening on %s, scenario %s, "
                    "voice %s", self.url, self._state.scenario.source or "built-in",
                    self._state.voice_engine)
        return self

    def stop(self) -> None:
        """Close every connection and the server, and join the thread. Safe to call twice."""
        with self._lock:
            if self._stopped or self._thread is None:
                return
            self._stopped = True
        loop, stop_requested = self._loop, self._stop_requested
        if loop is not None and stop_requested is not None:
            with contextlib.suppress(RuntimeError):  # RuntimeError: the loop already ended
                loop.call_soon_threadsafe(stop_requested.set)
        self._thread.join(timeout=STOP_TIMEOUT)
        if self._thread.is_alive():
            logger.warning("rtd emulator thread did not stop within %.0f s", STOP_TIMEOUT)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        # Speech is synthesized here; stop() does not wait for a long synthesis to finish.
        executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rtd-emulator-speech")
        self._state.executor = executor
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start(), or logged
            if not self._ready.is_set():
                self._start_error = exc
            else:
                logger.exception("rtd emulator loop failed")
        finally:
            try:
                _cancel_all(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                executor.shutdown(wait=False, cancel_futures=True)
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                self._ready.set()

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        try:
            # No opening-handshake timeout: a fault may stall the upgrade for longer.
            server = await ws_serve(self._handle, self.host, self._requested_port,
                                    process_request=self._check_request,
                                    max_size=MAX_MESSAGE_BYTES, close_timeout=CLOSE_TIMEOUT,
                                    open_timeout=None,
                                    create_connection=_with_rest(self._rest))
        except OSError as exc:
            self._start_error = exc
            self._ready.set()
            return
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop_requested.wait()
        await self._close_server(server)

    async def _close_server(self, server: Server) -> None:
        """Close politely (1001), then drop clients that do not answer in time."""
        for connection in list(self._live):
            connection.cancel_tasks()  # a response blocked on a client that stopped reading
        server.close(close_connections=True, reason="rtd emulator stopping")
        closed = asyncio.ensure_future(server.wait_closed())
        done, _ = await asyncio.wait({closed}, timeout=CLOSE_TIMEOUT + 0.5)
        if not done:
            for connection in list(self._live):
                connection.ws.transport.abort()
            done, _ = await asyncio.wait({closed}, timeout=1.0)
        if not done:
            logger.warning("some emulator connections did not close in time")
            closed.cancel()
            await asyncio.gather(closed, return_exceptions=True)

    # -- connections ---------------------------------------------------------------------------

    async def _check_request(self, connection: ServerConnection,
                             request: Request) -> Response | None:
        """Apply the upgrade's faults, then refuse a wrong or missing key with HTTP 401
        (auth_failure="http")."""
        self._state.begin_attempt()
        if self._state.faults:
            turn = self._state.current_turn
            for _, fault in fault_actions.select(self._state, UPGRADE, self._upgrade_scope, turn,
                                                 None):
                response = await self._upgrade_fault(connection, fault)
                if response is not None:
                    return response
        if self.api_key is None or self.auth_failure != "http":
            return None
        problem = self._auth_problem(request)
        if problem is None:
            return None
        body = json.dumps({"error": {"type": "invalid_request_error", "code": "invalid_api_key",
                                     "message": problem, "param": None}})
        response = connection.respond(HTTPStatus.UNAUTHORIZED, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        logger.info("refused a connection: %s", problem)
        return response

    async def _upgrade_fault(self, connection: ServerConnection,
                             fault: Fault) -> Response | None:
        """Answer the upgrade request as the fault says; None lets the upgrade go on."""
        transport = connection.transport
        if fault.do == "http":
            assert fault.status is not None
            response = connection.respond(HTTPStatus(fault.status), fault_actions.http_body(fault))
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            if fault.retry_after is not None:
                response.headers["Retry-After"] = fault.retry_after
            for name, value in fault.headers.items():
                response.headers[name] = value
            logger.info("answering an upgrade with HTTP %d (fault)", fault.status)
            return response
        stop = self._stop_requested
        waits: list[asyncio.Future[Any]] = [asyncio.shield(connection.connection_lost_waiter)]
        if fault.do == "stall_sending":
            logger.info("stalling an upgrade for %s", "ever" if fault.seconds is None
                        else f"{fault.seconds:g} s")
            if stop is not None:
                waits.append(asyncio.ensure_future(stop.wait()))
            _, pending = await asyncio.wait(waits, timeout=fault.seconds,
                                            return_when=asyncio.FIRST_COMPLETED)
            for future in pending:
                future.cancel()
            return None  # go on (websockets answers 503 when the emulator is stopping)
        if fault.do == "reset":
            await fault_actions.reset(transport)
        else:
            transport.close()  # nothing unread is left: the request was read whole, so a FIN
        _, pending = await asyncio.wait(waits, timeout=1.0)
        for future in pending:
            future.cancel()
        return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "")  # never sent: closed

    def _auth_problem(self, request: Request) -> str | None:
        """Why the request's credentials are refused, or None when they are fine."""
        bearer = request.headers.get("Authorization", "")
        keys = [request.headers.get("api-key")]
        if bearer.lower().startswith("bearer "):
            keys.append(bearer[7:].strip())
        if self.api_key in keys or any(self._secret(k) is not None for k in keys):
            return None
        if not bearer and keys == [None]:
            return "Missing bearer or basic authentication in header"
        return "Incorrect API key provided."

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        headers: dict[str, str] = {}
        for name, value in request.headers.raw_items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        session = self._state.accept_connection(headers, request.path)
        query = parse_qs(urlsplit(request.path).query)
        model = (query.get("model") or [DEFAULT_MODEL])[0]
        logger.info("connection from %s to %s (model %s)", ws.remote_address, request.path,
                    model)
        try:
            refusal = self.dialect.refusal(headers)
            if refusal is not None:
                await self._refuse(ws, session, *refusal)
                return
            if self.api_key is not None and self.auth_failure == "close":
                problem = self._auth_problem(request)
                if problem is not None:
                    await self._refuse(ws, session, "invalid_api_key", 3000, problem)
                    return
            connection = Connection(self._state, ws, model, session, dialect=self.dialect,
                                    preset=self._preset(request))
            self._live.add(connection)
            try:
                await connection.run()
            finally:
                self._live.discard(connection)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("rtd emulator connection handler failed")
        finally:
            if not session.ended.is_set():
                rcvd = ws.protocol.close_rcvd
                self._state.end_session(session, None if rcvd is None else (rcvd.code,
                                                                            rcvd.reason))

    def _secret(self, key: str | None) -> dict[str, Any] | None:
        """The session an unexpired secret issued here was made with; None for other keys."""
        found = self._secrets.get(key or "")
        if found is None or found[0] < time.time():
            return None
        return found[1]

    def _preset(self, request: Request) -> dict[str, Any] | None:
        bearer = request.headers.get("Authorization", "")
        key = bearer[7:].strip() if bearer.lower().startswith("bearer ") else \
            request.headers.get("api-key")
        return self._secret(key)

    # -- REST: ephemeral client secrets ------------------------------------------------------

    def _rest(self, method: str, target: str, headers: Mapping[str, str],
              body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one plain HTTP request: (status, JSON body). Runs on the loop's thread."""
        path = urlsplit(target).path.rstrip("/")
        if path != "/v1" + self.dialect.secrets_path:
            return 404, _rest_error(f"rtd emulator: no such endpoint {path!r}; it serves "
                                    f"POST /v1{self.dialect.secrets_path}",
                                    "invalid_request_error", "not_found")
        if method != "POST":
            return 405, _rest_error(f"{method} is not allowed here; use POST",
                                    "invalid_request_error", "method_not_allowed")
        bearer = headers.get("authorization", "")
        key = bearer[7:].strip() if bearer.lower().startswith("bearer ") else None
        if self.api_key is not None and key != self.api_key:
            message = ("Missing bearer authentication in header" if key is None
                       else "Incorrect API key provided.")
            return 401, _rest_error(message, "invalid_request_error", "invalid_api_key")
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            return 400, _rest_error(f"We could not parse the JSON body of your request ({exc}).",
                                    "invalid_request_error", "invalid_json")
        if not isinstance(data, dict):
            return 400, _rest_error("The request body must be a JSON object.",
                                    "invalid_request_error", "invalid_type")
        try:
            given, expires_after = self.dialect.secret_request(data)
            seconds = _expiry_seconds(expires_after)
            session = default_session(DEFAULT_MODEL, new_id("sess"),
                                      math.ceil(time.time() + 3600))
            if given is not None:
                checked = validate_session(given)
                merge_session(session, checked)
        except ClientError as exc:
            return 400, _rest_error(exc.message, exc.error_type, exc.code, exc.param)
        value = "ek_" + secrets.token_hex(16)
        expires_at = math.ceil(time.time() + seconds)
        self._secrets[value] = (expires_at, session)
        logger.info("issued an ephemeral secret for %d s (session %s)", seconds, session["id"])
        return 200, self.dialect.secret_response(value, expires_at, copy.deepcopy(session))

    async def _refuse(self, ws: ServerConnection, session: SessionRecord, code: str,
                      close_code: int, message: str) -> None:
        """Send a fatal error event and close, as the service does after the upgrade."""
        event = {"type": "error", "event_id": new_id("event"),
                 "error": {"type": "invalid_request_error", "code": code, "message": message,
                           "param": None, "event_id": None}}
        self._state.record_sent(session, event)
        await ws.send(json.dumps(event))
        await ws.close(close_code, f"invalid_request_error.{code}")

    # -- what tests look at --------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The listening port (resolved when constructed with port=0)."""
        if self._port is None:
            raise RuntimeError("the emulator is not listening; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """The WebSocket URL to connect to, e.g. ws://127.0.0.1:8765/v1/realtime."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self.port}/v1/realtime"

    @property
    def scenario(self) -> Scenario:
        return self._state.scenario

    def rescript(self, scenario: Scenario) -> None:
        """Answer the user turns that follow from ``scenario``, counted from its first turn.

        For a test module sharing one emulator between tests that each script their own
        conversation. Faults given to the constructor stay; the scenario's own are not added.
        """
        self._state.rescript(scenario)

    @property
    def voice_engine(self) -> str:
        """The engine in use ("espeak" or "tones"; "auto" is resolved at construction)."""
        return self._state.voice_engine

    @property
    def received(self) -> list[dict[str, Any]]:
        """Client events so far, in order, across connections.

        Appends carry "audio_bytes" (decoded size, None when not base64) instead of "audio".
        Frames that are not JSON objects appear with "type": None and one of "_invalid_json"
        (the text), "_binary_bytes" (the size) or "_not_an_object" (the decoded value).
        """
        return self._state.received

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Server events so far; audio deltas carry "delta_bytes" instead of "delta"."""
        return self._state.sent

    @property
    def input_audio(self) -> bytes:
        """All input audio appended so far (24 kHz int16), capped at the first 10 minutes."""
        return self._state.input_audio

    @property
    def connections(self) -> int:
        """Number of accepted (upgraded) connections."""
        return self._state.connections

    @property
    def attempts(self) -> int:
        """Number of upgrade requests, accepted or refused (by a fault, or a wrong key)."""
        return self._state.attempts

    @property
    def sessions(self) -> list[SessionRecord]:
        """One record per accepted connection, in order: what it received and sent, the items
        the client created in it, its close frame. See `SessionRecord`."""
        return self._state.sessions

    @property
    def faults(self) -> tuple[Fault, ...]:
        """The faults in play: the scenario's, then those given to the constructor."""
        return self._state.faults

    @property
    def injected(self) -> list[dict[str, Any]]:
        """Faults fired so far, in order: {"fault": index into `faults`, "do", "at", "when",
        "session": index into `sessions` (None at the upgrade), "turn"}."""
        return self._state.injected

    @property
    def headers(self) -> list[dict[str, str]]:
        """Request headers of each accepted connection, names lower-cased."""
        return self._state.headers

    @property
    def paths(self) -> list[str]:
        """Request path (with query string) of each accepted connection."""
        return self._state.paths

    @property
    def scenario_done(self) -> threading.Event:
        """Set when the last scripted turn's final response (or fault) has been sent."""
        return self._state.scenario_done

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool],
                 timeout: float = 10.0) -> dict[str, Any]:
        """First received client event (past or future) matching; TimeoutError otherwise."""
        return self._state.wait_for("received", predicate, timeout)

    def wait_for_sent(self, predicate: Callable[[dict[str, Any]], bool],
                      timeout: float = 10.0) -> dict[str, Any]:
        """First sent server event (past or future) matching; TimeoutError otherwise."""
        return self._state.wait_for("sent", predicate, timeout)

    def wait_for_injected(self, predicate: Callable[[dict[str, Any]], bool] = lambda r: True,
                          timeout: float = 10.0) -> dict[str, Any]:
        """First injected-fault record (past or future) matching; TimeoutError otherwise."""
        return self._state.wait_for("injected", predicate, timeout)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await whatever is still pending, so nothing is destroyed while pending."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def _rest_error(message: str, error_type: str, code: str | None,
                param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "code": code, "param": param}}


def _expiry_seconds(expires_after: Any) -> int:
    """Seconds a new secret lives: ``expires_after.seconds`` (10..7200), default 600."""
    if expires_after is None:
        return 600
    if not isinstance(expires_after, dict):
        raise ClientError("Invalid type for 'expires_after': expected an object.",
                          code="invalid_type", param="expires_after")
    seconds = expires_after.get("seconds", 600)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 10 <= seconds <= 7200:
        raise ClientError(f"Invalid 'expires_after.seconds': {seconds!r}; expected an integer "
                          "from 10 to 7200.", code="invalid_value",
                          param="expires_after.seconds")
    return seconds


MAX_REST_BYTES = 1024 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 413: "Payload Too Large"}


def _with_rest(answer: Callable[[str, str, Mapping[str, str], bytes],
                                tuple[int, dict[str, Any]]]) -> type[ServerConnection]:
    """A connection class that also answers plain HTTP requests other than the upgrade (a GET)
    on the same port, the way the service has REST and the WebSocket under one host."""

    class RestOrWebSocket(ServerConnection):
        _mode: str | None = None  # None: undecided; "ws", "rest", or "done" (answered)
        _buffer = b""

        def data_received(self, data: bytes) -> None:
            if self._mode == "ws":
                super().data_received(data)
                return
            if self._mode == "done":
                return
            self._buffer += data
            if self._mode is None:
                if len(self._buffer) < 4 and b"GET ".startswith(self._buffer):
                    return  # too little to tell yet
                if self._buffer.startswith(b"GET "):
                    self._mode = "ws"
                    data, self._buffer = self._buffer, b""
                    super().data_received(data)
                    return
                self._mode = "rest"
            self._serve_rest()

        def _serve_rest(self) -> None:
            head, sep, body = self._buffer.partition(b"\r\n\r\n")
            if not sep:
                if len(self._buffer) > MAX_REST_BYTES:
                    self._reply(413, _rest_error("request too large", "invalid_request_error",
                                                 None))
                return
            lines = head.decode("latin-1").split("\r\n")
            method, _, rest = lines[0].partition(" ")
            target = rest.rpartition(" ")[0] or rest
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_REST_BYTES:
                self._reply(413, _rest_error("bad or too large Content-Length",
                                             "invalid_request_error", None))
                return
            if len(body) < length:
                return  # more to come
            try:
                status, answer_body = answer(method, target, headers, body[:length])
            except Exception:  # the emulator must survive anything a client sends
                logger.exception("rtd emulator failed on a REST request")
                status, answer_body = 500, _rest_error("rtd emulator bug: see its log",
                                                       "server_error", None)
            self._reply(status, answer_body)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode("utf-8")
            head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n")
            self.transport.write(head.encode("latin-1") + payload)
            self.transport.close()
            self._mode, self._buffer = "done", b""

    return RestOrWebSocket


def serve(host: str = "127.0.0.1", port: int = 8765, scenario_path: str | None = None,
          api_key: str | None = None, voice_engine: str = "auto",
          max_session_seconds: float | None = None, *,
          auth_failure: Literal["http", "close"] = "http",
          faults: Iterable[str] = (), dialect: str = "ga") -> None:
    """Run the emulator in the foreground until Ctrl-C or SIGTERM (for `rtd emulate`).

    `faults` are `--fault` options: each the inside of a `[[fault]]` table as TOML text.
    """
    extra = parse_faults(faults, source="--fault")
    emulator = Emulator(host=host, port=port, scenario=scenario_path, api_key=api_key,
                        voice_engine=voice_engine, max_session_seconds=max_session_seconds,
                        auth_failure=auth_failure, faults=extra, dialect=dialect)
    emulator.start()
    print(BANNER.format(url=emulator.url), flush=True)
    stop = threading.Event()
    previous: Any = None
    in_main = threading.current_thread() is threading.main_thread()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if in_main:
        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        logger.info("rtd emulator stopped")
