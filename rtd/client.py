"""Clients in the OpenAI SDK's shape, so scripts written for ``openai.OpenAI().realtime`` (or
``.beta.realtime``, or Portkey's copy of it) run on rtd with one changed import.

    client = rtd.Client()                 # $OPENAI_API_KEY; $OPENAI_BASE_URL if set
    with client.realtime.connect(model="gpt-realtime-2") as conn:
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        conn.conversation.item.create(item={"type": "message", "role": "user",
                                            "content": [{"type": "input_text", "text": "Hi"}]})
        conn.response.create()
        for event in conn:
            if event.type == "response.output_text.delta":
                print(event.delta, end="")
            elif event.type == "response.done":
                break

`AsyncClient` is the same with ``async with``, ``await`` and ``async for``. Events read like
the SDK's typed ones: attributes all the way down (list items too), and a field the event
lacks reads as None. Events are GA-shaped whatever the server's dialect (``dialect="beta"``
or ``"xai"`` translates at the socket). ``realtime.sessions.create(...)`` takes the beta-era
keywords and makes an ephemeral client secret over GA's ``POST /v1/realtime/client_secrets``;
``realtime.client_secrets.create(...)`` is the GA call itself.

Bad input is a TypeError naming the keyword and the closest real one; a refused key raises
`AuthenticationError`; another refusal of a REST call `APIStatusError` (status and the
server's message); a connection that drops under `listen()` raises `ConnectionClosed` saying
how it ended.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import inspect
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from rtd.exceptions import (
    APIStatusError,
    AuthenticationError,
    ConnectionClosed,
    ConnectionFailed,
    ProtocolError,
)
from rtd.protocol import dialects
from rtd.protocol.connection import (
    RealtimeConnection,
    _describe,
    _error_body,
    decode_event,
    encode_event,
    open_endpoint,
)
from rtd.protocol.events import ServerEvent, audio_append, parse_server_event
from rtd.protocol.providers import (
    OPENAI_BASE_URL,
    Endpoint,
    base_url_from_env,
    openai_endpoint,
    realtime_url,
)
from rtd.schema import did_you_mean

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TIMEOUT = 10.0
"""Seconds a connection or a REST call may take to be answered, unless told otherwise."""


def _strict(function: F) -> F:
    """Refuse an unknown keyword by name, with the closest real one (Python says neither)."""
    params = inspect.signature(function).parameters
    known = [n for n, p in params.items() if n != "self" and p.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    name = function.__qualname__
    where = name.removesuffix(".__init__")

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for key in kwargs:
            if key not in known:
                raise TypeError(f"{where}() got an unexpected keyword argument {key!r}"
                                f"{did_you_mean(key, known)}")
        return function(*args, **kwargs)

    return checked  # type: ignore[return-value]


def _plain(value: Any, what: str) -> dict[str, Any]:
    """A JSON object from a dict, an event, or a pydantic model (the SDK's param types)."""
    if isinstance(value, ServerEvent):
        return value.to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_unset=True)
    raise TypeError(f"{what}: expected a dict, got {type(value).__name__}")


def _event(value: Any) -> dict[str, Any]:
    event = _plain(value, "event")
    if not isinstance(event.get("type"), str):
        raise TypeError("event: a client event needs a string 'type', e.g. "
                        "{'type': 'response.create'}")
    return event


def _rest_base(url: str) -> str:
    """The http(s) form of a base URL (a ws(s) one names the same server)."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme)
    return urlunsplit(parts._replace(scheme=scheme)).rstrip("/")


class _Base:
    """What both clients share: the key, the server, the dialect; nothing opened yet."""

    def __init__(self, api_key: str | None, base_url: str | None, websocket_base_url: str | None,
                 organization: str | None, project: str | None,
                 default_headers: Mapping[str, str] | None, timeout: float,
                 dialect: str) -> None:
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "").strip()
        if not key:
            raise AuthenticationError(
                "no API key: pass api_key= or set $OPENAI_API_KEY (any value will do for a "
                "server that checks none, such as `rtd emulate`)")
        base = base_url if base_url is not None else base_url_from_env() or OPENAI_BASE_URL
        try:
            realtime_url(base)
            if websocket_base_url is not None:
                realtime_url(websocket_base_url)
        except ValueError as exc:
            where = "base_url" if base_url is not None else "$OPENAI_BASE_URL"
            raise ValueError(f"{where}: {exc}") from None
        self.api_key = key
        #: The REST base, e.g. https://api.openai.com/v1.
        self.base_url = _rest_base(base)
        self.websocket_base_url = websocket_base_url
        self.timeout = float(timeout)
        self.dialect = dialects.get(dialect or "ga")
        headers = dict(default_headers or {})
        if organization:
            headers.setdefault("OpenAI-Organization", organization)
        if project:
            headers.setdefault("OpenAI-Project", project)
        self.default_headers = headers

    def _endpoint(self, model: str, headers: Mapping[str, str],
                  query: Mapping[str, str] | None) -> Endpoint:
        target = openai_endpoint(model, api_key=self.api_key,
                                 base_url=self.websocket_base_url or self.base_url,
                                 headers={**self.default_headers, **headers},
                                 dialect=self.dialect.name)
        if query:
            parts = urlsplit(target.url)
            extra = urlencode(dict(query))
            url = urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query
                                            else extra))
            target = Endpoint(url, target.headers, target.dialect)
        return target

    def _post(self, path: str, body: Mapping[str, Any], headers: Mapping[str, str] | None,
              timeout: float | None) -> dict[str, Any]:
        """One JSON POST under the REST base; the server's refusal as an exception."""
        url = self.base_url + path
        sent = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json",
                "Accept": "application/json", **self.dialect.headers, **self.default_headers,
                **(headers or {})}
        request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"),
                                         headers=sent, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as answer:
                data = answer.read()
        except urllib.error.HTTPError as exc:
            code, detail = _error_body(exc.read())
            said = f"HTTP {exc.code}{': ' + detail if detail else ''}"
            if exc.code in (401, 403):
                raise AuthenticationError(f"{url} refused the credentials ({said}); check the "
                                          "API key", status=exc.code, error_code=code,
                                          detail=detail) from None
            raise APIStatusError(f"POST {url} failed ({said})", status=exc.code,
                                 error_code=code, detail=detail) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            cause = _describe(reason) if isinstance(reason, BaseException) else str(reason)
            raise ConnectionFailed(f"cannot reach {url}: {cause}") from None
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ProtocolError(f"POST {url} answered with something that is not a JSON object")
        return parsed

    def __repr__(self) -> str:  # never the key
        return f"<{type(self).__name__} {self.base_url} dialect {self.dialect.name}>"


class Client(_Base):
    """The synchronous client: ``client.realtime`` (alias ``client.beta.realtime``).

    ``api_key`` defaults to ``$OPENAI_API_KEY`` and ``base_url`` (the REST base, e.g.
    ``http://127.0.0.1:8765/v1``) to ``$OPENAI_BASE_URL``, then OpenAI's; the realtime URL is
    ``<base>/realtime`` with ws(s). ``websocket_base_url`` overrides the WebSocket's base
    alone, ``default_headers`` go with every request, ``timeout`` (seconds) bounds connecting
    and REST calls, ``dialect`` ("ga", "beta", "xai") is the server's wire shape.
    """

    @_strict
    def __init__(self, api_key: str | None = None, base_url: str | None = None, *,
                 websocket_base_url: str | None = None, organization: str | None = None,
                 project: str | None = None, default_headers: Mapping[str, str] | None = None,
                 timeout: float = DEFAULT_TIMEOUT, dialect: str = "") -> None:
        super().__init__(api_key, base_url, websocket_base_url, organization, project,
                         default_headers, timeout, dialect)
        self.realtime = Realtime(self)
        self.beta = _Beta(self.realtime)

    def close(self) -> None:
        """Nothing stays open between calls; here for scripts that close their client."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Base):
    """The asyncio twin of `Client`: the same arguments, awaited calls."""

    @_strict
    def __init__(self, api_key: str | None = None, base_url: str | None = None, *,
                 websocket_base_url: str | None = None, organization: str | None = None,
                 project: str | None = None, default_headers: Mapping[str, str] | None = None,
                 timeout: float = DEFAULT_TIMEOUT, dialect: str = "") -> None:
        super().__init__(api_key, base_url, websocket_base_url, organization, project,
                         default_headers, timeout, dialect)
        self.realtime = AsyncRealtime(self)
        self.beta = _Beta(self.realtime)

    async def close(self) -> None:
        """Nothing stays open between calls; here for scripts that close their client."""

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Beta:
    """``client.beta``: the SDK's older home of ``realtime``, the same object."""

    def __init__(self, realtime: Any) -> None:
        self.realtime = realtime


def _split_options(options: Mapping[str, Any] | None,
                   default: float) -> tuple[float, dict[str, str], dict[str, Any]]:
    """(timeout, additional headers, the rest) of ``websocket_connection_options``."""
    rest = dict(options or {})
    headers = dict(rest.pop("additional_headers", None) or rest.pop("extra_headers", None) or {})
    timeout = rest.pop("timeout", None)
    opened = rest.pop("open_timeout", None)
    return float(timeout or opened or default), headers, rest


# -- ephemeral secrets ----------------------------------------------------------------------

_OMIT: Any = object()

#: sessions.create's beta-era keywords; each is a field of the beta session.
_SESSION_KEYWORDS = ("modalities", "instructions", "voice", "input_audio_format",
                     "output_audio_format", "input_audio_transcription",
                     "input_audio_noise_reduction", "turn_detection", "tools", "tool_choice",
                     "temperature", "max_response_output_tokens", "speed", "tracing")


#: The fields of the beta ``sessions.create`` answer (openai 1.x ``SessionCreateResponse``).
_SEED_FIELDS = frozenset(_SESSION_KEYWORDS) - {"input_audio_noise_reduction"}


def _secret_body(client: _Base, session: Mapping[str, Any] | None,
                 expires_after: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    return client.dialect.secrets_path, client.dialect.secret_request(session, expires_after)


def _seed_response(answer: Mapping[str, Any]) -> ServerEvent:
    """GA's client secret answer in the shape the beta ``sessions.create`` returned."""
    session = answer.get("session") if isinstance(answer.get("session"), Mapping) else {}
    beta = {k: v for k, v in dialects.session_to_beta(session).items() if k in _SEED_FIELDS}
    return ServerEvent({
        "id": session.get("id"), "object": session.get("object", "realtime.session"),
        "model": session.get("model"), **beta,
        "client_secret": {"value": answer.get("value"), "expires_at": answer.get("expires_at")},
    })


def _beta_session(model: str | None, given: Mapping[str, Any]) -> dict[str, Any]:
    """The GA session for sessions.create's keywords: the one mapping is the beta dialect's."""
    flat = {k: v for k, v in given.items() if v is not _OMIT}
    session = dialects.session_from_beta(flat, request=True)
    if model is not None:
        session["model"] = model
    return session


class ClientSecrets:
    """``realtime.client_secrets``: GA's ephemeral keys (``ek_...``), valid for a while."""

    def __init__(self, client: _Base) -> None:
        self._client = client

    @_strict
    def create(self, *, expires_after: Mapping[str, Any] | None = None,
               session: Mapping[str, Any] | None = None,
               extra_headers: Mapping[str, str] | None = None,
               timeout: float | None = None) -> ServerEvent:
        """POST /realtime/client_secrets: ``value``, ``expires_at`` and the ``session``."""
        path, body = _secret_body(self._client, session and _plain(session, "session"),
                                  expires_after)
        answer = self._client._post(path, body, extra_headers, timeout)
        return ServerEvent(self._client.dialect.secret_response(answer))


class Sessions:
    """``realtime.sessions``: the beta-era call, made over GA's client secrets."""

    def __init__(self, client: _Base) -> None:
        self._secrets = ClientSecrets(client)

    @_strict
    def create(self, *, model: str | None = None, modalities: Any = _OMIT,
               instructions: Any = _OMIT, voice: Any = _OMIT, input_audio_format: Any = _OMIT,
               output_audio_format: Any = _OMIT, input_audio_transcription: Any = _OMIT,
               input_audio_noise_reduction: Any = _OMIT, turn_detection: Any = _OMIT,
               tools: Any = _OMIT, tool_choice: Any = _OMIT, temperature: Any = _OMIT,
               max_response_output_tokens: Any = _OMIT, speed: Any = _OMIT,
               tracing: Any = _OMIT, client_secret: Mapping[str, Any] | None = None,
               extra_headers: Mapping[str, str] | None = None,
               timeout: float | None = None) -> ServerEvent:
        """An ephemeral session: ``client_secret.value`` is a key for `connect`.

        The keywords are the beta API's, mapped onto the GA session; ``temperature`` has no
        GA equivalent: it is accepted, logged once and has no effect. The answer has the beta
        shape: ``id``, ``object``, ``model``, ``modalities``, ``instructions``, ``voice``,
        ``input_audio_format``, ``output_audio_format``, ``tools``, ``turn_detection``...
        and ``client_secret`` (``value``, ``expires_at``).
        """
        given = {k: v for k, v in locals().items() if k in _SESSION_KEYWORDS}
        expires = (client_secret or {}).get("expires_after")
        answer = self._secrets.create(session=_beta_session(model, given),
                                      expires_after=expires, extra_headers=extra_headers,
                                      timeout=timeout)
        return _seed_response(answer)


class AsyncClientSecrets:
    """The awaited `ClientSecrets` (the request runs on a worker thread)."""

    def __init__(self, client: _Base) -> None:
        self._sync = ClientSecrets(client)

    @_strict
    async def create(self, *, expires_after: Mapping[str, Any] | None = None,
                     session: Mapping[str, Any] | None = None,
                     extra_headers: Mapping[str, str] | None = None,
                     timeout: float | None = None) -> ServerEvent:
        return await asyncio.to_thread(self._sync.create, expires_after=expires_after,
                                       session=session, extra_headers=extra_headers,
                                       timeout=timeout)


class AsyncSessions:
    """The awaited `Sessions`."""

    def __init__(self, client: _Base) -> None:
        self._sync = Sessions(client)

    @_strict
    async def create(self, *, model: str | None = None, modalities: Any = _OMIT,
                     instructions: Any = _OMIT, voice: Any = _OMIT,
                     input_audio_format: Any = _OMIT, output_audio_format: Any = _OMIT,
                     input_audio_transcription: Any = _OMIT,
                     input_audio_noise_reduction: Any = _OMIT, turn_detection: Any = _OMIT,
                     tools: Any = _OMIT, tool_choice: Any = _OMIT, temperature: Any = _OMIT,
                     max_response_output_tokens: Any = _OMIT, speed: Any = _OMIT,
                     tracing: Any = _OMIT, client_secret: Mapping[str, Any] | None = None,
                     extra_headers: Mapping[str, str] | None = None,
                     timeout: float | None = None) -> ServerEvent:
        """See `Sessions.create`."""
        kwargs = {k: v for k, v in locals().items() if k != "self" and v is not _OMIT}
        return await asyncio.to_thread(functools.partial(self._sync.create, **kwargs))


# -- connections ----------------------------------------------------------------------------

class Realtime:
    """``client.realtime``: `connect`, `sessions`, `client_secrets`."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.sessions = Sessions(client)
        self.client_secrets = ClientSecrets(client)

    @_strict
    def connect(self, *, model: str, extra_query: Mapping[str, str] | None = None,
                extra_headers: Mapping[str, str] | None = None,
                websocket_connection_options: Mapping[str, Any] | None = None
                ) -> ConnectionManager:
        """A context manager opening the connection on entry and closing it on exit.

        ``websocket_connection_options``: ``timeout`` (or ``open_timeout``, seconds),
        ``additional_headers``, and websocket-client's own keywords (``sslopt``...).
        """
        timeout, headers, rest = _split_options(websocket_connection_options,
                                                self._client.timeout)
        target = self._client._endpoint(model, {**(extra_headers or {}), **headers},
                                        extra_query)
        return ConnectionManager(target, timeout, rest)


class AsyncRealtime:
    """``client.realtime`` of `AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self.sessions = AsyncSessions(client)
        self.client_secrets = AsyncClientSecrets(client)

    @_strict
    def connect(self, *, model: str, extra_query: Mapping[str, str] | None = None,
                extra_headers: Mapping[str, str] | None = None,
                websocket_connection_options: Mapping[str, Any] | None = None
                ) -> AsyncConnectionManager:
        """An async context manager opening the connection on entry, closing it on exit.

        ``websocket_connection_options``: ``timeout`` (or ``open_timeout``, seconds),
        ``additional_headers``, and the websockets library's connect keywords
        (``max_size``, ``ping_interval``...).
        """
        timeout, headers, rest = _split_options(websocket_connection_options,
                                                self._client.timeout)
        target = self._client._endpoint(model, {**(extra_headers or {}), **headers},
                                        extra_query)
        return AsyncConnectionManager(target, timeout, rest)


class ConnectionManager:
    """``with client.realtime.connect(...) as conn``; or ``conn = ....enter()`` and close it."""

    def __init__(self, target: Endpoint, timeout: float, options: dict[str, Any]) -> None:
        self._target = target
        self._timeout = timeout
        self._options = options
        self._connection: Connection | None = None

    def __enter__(self) -> Connection:
        raw = open_endpoint(self._target, timeout=self._timeout, **self._options)
        self._connection = Connection(raw)
        return self._connection

    enter = __enter__

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._connection is not None:
            self._connection.close()


class AsyncConnectionManager:
    """``async with client.realtime.connect(...) as conn``; or ``await ....enter()``."""

    def __init__(self, target: Endpoint, timeout: float, options: dict[str, Any]) -> None:
        self._target = target
        self._timeout = timeout
        self._options = options
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> AsyncConnection:
        self._connection = await AsyncConnection.open(self._target, self._timeout,
                                                      self._options)
        return self._connection

    enter = __aenter__

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._connection is not None:
            await self._connection.close()


def _ending(url: str, code: int | None, reason: str, *, here: bool,
            last_error: tuple[str, str] | None) -> ConnectionClosed:
    """Why a connection is over, in one line."""
    if here:
        message = f"the connection to {url} was closed here"
    elif code is None:
        message = f"the connection to {url} dropped (no close frame)"
    else:
        message = f"{url} closed the connection (code {code}{': ' + reason if reason else ''})"
    if last_error is not None and not here:
        message += f" after error {last_error[0]}: {last_error[1]}"
    return ConnectionClosed(message, code=code, reason=reason)


def _clean(code: int | None, here: bool) -> bool:
    """An end `listen()` takes quietly, as the SDK does: ours, or a 1000/1001 close."""
    return here or code in (1000, 1001)


class _Resources:
    """The resource helpers: ``conn.session.update(session=...)`` and the rest."""

    def __init__(self, send: Callable[[dict[str, Any]], Any]) -> None:
        self.session = SessionResource(send)
        self.response = ResponseResource(send)
        self.input_audio_buffer = InputAudioBufferResource(send)
        self.conversation = ConversationResource(send)
        self.output_audio_buffer = OutputAudioBufferResource(send)


class Connection:
    """A live connection (sync). One thread may read while others send."""

    def __init__(self, raw: RealtimeConnection) -> None:
        self._raw = raw
        helpers = _Resources(self.send)
        self.session = helpers.session
        self.response = helpers.response
        self.input_audio_buffer = helpers.input_audio_buffer
        self.conversation = helpers.conversation
        self.output_audio_buffer = helpers.output_audio_buffer

    @property
    def url(self) -> str:
        """The URL connected to, credentials removed."""
        return self._raw.url

    def send(self, event: Mapping[str, Any]) -> None:
        """Send one GA client event (a dict, or the SDK's param objects)."""
        self._raw.send(_event(event))

    def send_audio_data(self, pcm: bytes) -> None:
        """Append 24 kHz mono int16 PCM to the server's input buffer."""
        self._raw.send_audio_data(pcm)

    def recv(self) -> ServerEvent:
        """The next server event; `ConnectionClosed` once the connection is over."""
        event = self._next(self._raw.recv)
        if event is None:
            raise self._over()
        return event

    def recv_bytes(self) -> bytes:
        """The next frame as the server sent it (see `parse_event`)."""
        data = self._next(self._raw.recv_bytes)
        if data is None:
            raise self._over()
        return data

    def _next(self, read: Callable[[], Any]) -> Any:
        """One read; a socket that failed under it (a reset) is a `ConnectionClosed` too."""
        try:
            return read()
        except ConnectionClosed:
            raise
        except ConnectionFailed as exc:
            raise ConnectionClosed(str(exc)) from None

    def parse_event(self, data: str | bytes) -> ServerEvent:
        """A frame from `recv_bytes` as a GA event (a dialect's own event, such as xAI's
        ping, as it came)."""
        event = self._raw.parse_event(data)
        return event if event is not None else parse_server_event(data)

    def listen(self) -> Iterator[ServerEvent]:
        """Events until the connection closes; a drop or an unexpected close raises
        `ConnectionClosed` saying how it ended."""
        while True:
            event = self._next(self._raw.recv)
            if event is None:
                raw = self._raw
                if _clean(raw.close_code, raw.closed_here):
                    return
                raise self._over()
            yield event

    __iter__ = listen

    def _over(self) -> ConnectionClosed:
        raw = self._raw
        return _ending(raw.url, raw.close_code, raw.close_reason, here=raw.closed_here,
                       last_error=raw.last_error)

    def close(self, *, code: int = 1000, reason: str = "") -> None:
        """Close (again is fine: leaving the ``with`` block after it does not raise)."""
        self._raw.close(code, reason)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncConnection:
    """A live connection (asyncio). Cancelling a `recv` loses nothing."""

    def __init__(self, ws: Any, target: Endpoint) -> None:
        self._ws = ws
        self.endpoint = target
        self.last_error: tuple[str, str] | None = None
        self._closed_here = False
        helpers = _Resources(self.send)
        self.session = helpers.session
        self.response = helpers.response
        self.input_audio_buffer = helpers.input_audio_buffer
        self.conversation = helpers.conversation
        self.output_audio_buffer = helpers.output_audio_buffer

    @classmethod
    async def open(cls, target: Endpoint, timeout: float,
                   options: Mapping[str, Any]) -> AsyncConnection:
        """Connect; AuthenticationError or ConnectionFailed with a clear message."""
        from websockets.asyncio.client import connect as ws_connect
        from websockets.exceptions import InvalidStatus, WebSocketException

        settings = {"max_size": None, "user_agent_header": None, **options}
        try:
            ws = await ws_connect(target.url, additional_headers=dict(target.headers),
                                  open_timeout=timeout, **settings)
        except InvalidStatus as exc:
            response = exc.response
            code, detail = _error_body(response.body)
            said = f"HTTP {response.status_code}{': ' + detail if detail else ''}"
            facts: dict[str, Any] = {
                "status": response.status_code, "error_code": code, "detail": detail,
                "headers": {k.lower(): v for k, v in response.headers.raw_items()}}
            if response.status_code in (401, 403):
                raise AuthenticationError(f"{target.safe_url} refused the credentials "
                                          f"({said}); check the API key", **facts) from None
            raise ConnectionFailed(f"{target.safe_url} refused the connection ({said})",
                                   **facts) from None
        except (OSError, asyncio.TimeoutError, WebSocketException) as exc:
            raise ConnectionFailed(f"cannot connect to {target.safe_url}: "
                                   f"{_describe(exc)}") from None
        return cls(ws, target)

    @property
    def url(self) -> str:
        return self.endpoint.safe_url

    async def send(self, event: Mapping[str, Any]) -> None:
        """Send one GA client event."""
        await self._send_text(encode_event(_event(event), self.endpoint))

    async def send_audio_data(self, pcm: bytes) -> None:
        """Append 24 kHz mono int16 PCM to the server's input buffer."""
        await self._send_text(encode_event(audio_append(pcm), self.endpoint))

    async def _send_text(self, text: str) -> None:
        from websockets.exceptions import ConnectionClosed as Closed

        try:
            await self._ws.send(text)
        except Closed as exc:
            raise self._over(exc) from None
        except OSError as exc:
            raise ConnectionFailed(f"sending to {self.url} failed: {_describe(exc)}") \
                from None

    async def recv_bytes(self) -> bytes:
        """The next frame as the server sent it; `ConnectionClosed` once it is over."""
        from websockets.exceptions import ConnectionClosed as Closed

        try:
            data = await self._ws.recv()
        except Closed as exc:
            raise self._over(exc) from None
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)

    def parse_event(self, data: str | bytes) -> ServerEvent:
        """A frame as a GA event (a dialect's own event as it came)."""
        event = self._decode(data)
        return event if event is not None else parse_server_event(data)

    def _decode(self, data: str | bytes) -> ServerEvent | None:
        event = decode_event(data, self.endpoint)
        if event is not None and event.type == "error" and isinstance(event.get("error"),
                                                                       Mapping):
            err = event["error"]
            self.last_error = (str(err.get("code") or err.get("type") or "error"),
                               str(err.get("message") or ""))
        return event

    async def recv(self) -> ServerEvent:
        """The next server event (frames that are not events are logged and skipped)."""
        while True:
            data = await self.recv_bytes()
            try:
                event = self._decode(data)
            except ProtocolError as exc:
                logger.warning("%s; ignored", exc)
                continue
            if event is not None:
                return event

    async def listen(self) -> AsyncIterator[ServerEvent]:
        """Events until the connection closes; a drop raises `ConnectionClosed`."""
        while True:
            try:
                event = await self.recv()
            except ConnectionClosed as exc:
                if _clean(exc.code, self._closed_here):
                    return
                raise
            yield event

    def __aiter__(self) -> AsyncIterator[ServerEvent]:
        return self.listen()

    def _over(self, exc: Any) -> ConnectionClosed:
        rcvd = getattr(exc, "rcvd", None)
        code = rcvd.code if rcvd is not None else None
        reason = rcvd.reason if rcvd is not None else ""
        return _ending(self.url, code, reason, here=self._closed_here,
                       last_error=self.last_error)

    async def close(self, *, code: int = 1000, reason: str = "") -> None:
        """Close (again is fine)."""
        self._closed_here = True
        await self._ws.close(code, reason)

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# -- resource helpers (shared: each returns what the connection's send returns, so the
# -- async connection's are awaited) -------------------------------------------------------

class _Resource:
    def __init__(self, send: Callable[[dict[str, Any]], Any]) -> None:
        self._send_event = send

    def _send(self, event: dict[str, Any], event_id: str | None) -> Any:
        if event_id is not None:
            event["event_id"] = event_id
        return self._send_event(event)


class SessionResource(_Resource):
    @_strict
    def update(self, *, session: Mapping[str, Any], event_id: str | None = None) -> Any:
        """``session.update``: change only the fields given (GA session shape)."""
        return self._send({"type": "session.update", "session": _plain(session, "session")},
                          event_id)


class ResponseResource(_Resource):
    @_strict
    def create(self, *, response: Mapping[str, Any] | None = None,
               event_id: str | None = None) -> Any:
        """``response.create``, with optional per-response overrides."""
        event: dict[str, Any] = {"type": "response.create"}
        if response is not None:
            event["response"] = _plain(response, "response")
        return self._send(event, event_id)

    @_strict
    def cancel(self, *, response_id: str | None = None, event_id: str | None = None) -> Any:
        """``response.cancel`` (the active response, or ``response_id``)."""
        event: dict[str, Any] = {"type": "response.cancel"}
        if response_id is not None:
            event["response_id"] = response_id
        return self._send(event, event_id)


class InputAudioBufferResource(_Resource):
    @_strict
    def append(self, *, audio: str | bytes, event_id: str | None = None) -> Any:
        """``input_audio_buffer.append``: base64 text as the SDK takes, or raw PCM bytes."""
        text = audio if isinstance(audio, str) else base64.b64encode(audio).decode("ascii")
        return self._send({"type": "input_audio_buffer.append", "audio": text}, event_id)

    @_strict
    def commit(self, *, event_id: str | None = None) -> Any:
        return self._send({"type": "input_audio_buffer.commit"}, event_id)

    @_strict
    def clear(self, *, event_id: str | None = None) -> Any:
        return self._send({"type": "input_audio_buffer.clear"}, event_id)


class OutputAudioBufferResource(_Resource):
    @_strict
    def clear(self, *, event_id: str | None = None) -> Any:
        """``output_audio_buffer.clear`` (WebRTC and SIP only: a WebSocket server refuses)."""
        return self._send({"type": "output_audio_buffer.clear"}, event_id)


class ConversationItemResource(_Resource):
    @_strict
    def create(self, *, item: Mapping[str, Any], previous_item_id: str | None = None,
               event_id: str | None = None) -> Any:
        event: dict[str, Any] = {"type": "conversation.item.create",
                                 "item": _plain(item, "item")}
        if previous_item_id is not None:
            event["previous_item_id"] = previous_item_id
        return self._send(event, event_id)

    @_strict
    def retrieve(self, *, item_id: str, event_id: str | None = None) -> Any:
        return self._send({"type": "conversation.item.retrieve", "item_id": item_id}, event_id)

    @_strict
    def truncate(self, *, item_id: str, content_index: int, audio_end_ms: int,
                 event_id: str | None = None) -> Any:
        return self._send({"type": "conversation.item.truncate", "item_id": item_id,
                           "content_index": content_index, "audio_end_ms": audio_end_ms},
                          event_id)

    @_strict
    def delete(self, *, item_id: str, event_id: str | None = None) -> Any:
        return self._send({"type": "conversation.item.delete", "item_id": item_id}, event_id)


class ConversationResource(_Resource):
    def __init__(self, send: Callable[[dict[str, Any]], Any]) -> None:
        super().__init__(send)
        self.item = ConversationItemResource(send)


__all__ = ["AsyncClient", "AsyncConnection", "Client", "Connection"]
