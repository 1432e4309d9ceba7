"""Where to connect, which headers to send and which dialect to speak, per provider.

Only this module knows that Azure wants ``api-key`` while OpenAI wants a bearer token, and
where xAI's server is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rtd.exceptions import AuthenticationError
from rtd.protocol import dialects
from rtd.protocol.dialects import Dialect

OPENAI_URL = "wss://api.openai.com/v1/realtime"
XAI_URL = "wss://api.x.ai/v1/realtime"
#: The providers `endpoint` knows.
PROVIDERS = ("openai", "azure", "xai", "custom")
#: The REST base the OpenAI SDK defaults to; ``$OPENAI_BASE_URL`` replaces it.
OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Endpoint:
    """A resolved connection target. ``headers`` may hold secrets: never log them.

    ``dialect`` is the shape of the wire there; the connection and the transport translate
    at their boundary with it (`rtd.protocol.dialects`).
    """

    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    dialect: Dialect = dialects.DIALECTS["ga"]

    @property
    def safe_url(self) -> str:
        """The URL without query credentials, for logs and messages."""
        parts = urlsplit(self.url)
        query = [(k, v if k in ("model", "deployment", "api-version") else "***")
                 for k, v in parse_qsl(parts.query)]
        return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def with_model(url: str, model: str) -> str:
    """Add ``?model=`` unless the URL names one already (Azure URLs often do)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    if model and not any(k == "model" for k, _ in query):
        query.append(("model", model))
    return urlunsplit(parts._replace(query=urlencode(query)))


def endpoint(name: str, model: str, api_key: str | None, url: str = "",
             headers: Mapping[str, str] | None = None, dialect: str = "") -> Endpoint:
    """The URL, headers and dialect for a provider; user-supplied extra headers win.

    ``dialect`` "" is the provider's own (`rtd.protocol.dialects.PROVIDER_DEFAULTS`).
    """
    wire = dialects.for_provider(name, dialect)
    out: dict[str, str] = dict(wire.headers)
    if name == "openai":
        target = with_model(url or OPENAI_URL, model)
        if api_key:
            out["Authorization"] = f"Bearer {api_key}"
    elif name == "azure":
        target = with_model(url, model)
        if api_key:
            out["api-key"] = api_key
    elif name in ("custom", "xai"):
        target = with_model(url or (XAI_URL if name == "xai" else ""), model)
        if api_key:
            out["Authorization"] = f"Bearer {api_key}"
    else:
        raise ValueError(f"unknown provider {name!r}; expected {', '.join(PROVIDERS)}")
    out.update(headers or {})
    return Endpoint(target, out, wire)


def realtime_url(base_url: str) -> str:
    """The realtime WebSocket URL under a REST base: ``http(s)://host/v1`` -> ``ws(s)://host/v1/realtime``.

    A ws:// or wss:// base is taken as it is. Raises ValueError for anything else, naming it.
    """
    parts = urlsplit(base_url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"expected an http(s):// base URL such as {OPENAI_BASE_URL}, "
                         f"got {base_url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/realtime"):
        path += "/realtime"
    return urlunsplit(parts._replace(scheme=scheme, path=path))


def base_url_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """``$OPENAI_BASE_URL`` as the OpenAI SDK reads it (empty counts as unset)."""
    value = (os.environ if env is None else env).get("OPENAI_BASE_URL", "").strip()
    return value or None


def openai_endpoint(model: str, *, api_key: str | None = None, base_url: str | None = None,
                    headers: Mapping[str, str] | None = None, dialect: str = "") -> Endpoint:
    """OpenAI's realtime endpoint the way the OpenAI SDK finds it.

    Explicit arguments win; then ``$OPENAI_API_KEY`` and ``$OPENAI_BASE_URL``; then the
    hosted service. So a script written for the SDK runs unchanged against any compatible
    server (``rtd emulate`` included) by exporting ``OPENAI_BASE_URL=http://127.0.0.1:8765/v1``.
    """
    if api_key is None:
        api_key = os.environ.get("OPENAI_API_KEY", "").strip() or None
    if not api_key:
        raise AuthenticationError("no API key: pass api_key= or set $OPENAI_API_KEY")
    base = base_url if base_url is not None else base_url_from_env()
    try:
        url = realtime_url(base or OPENAI_BASE_URL)
    except ValueError as exc:
        where = "base_url" if base_url is not None else "$OPENAI_BASE_URL"
        raise ValueError(f"{where}: {exc}") from None
    return endpoint("openai", model, api_key, url, headers, dialect)
