"""The shapes of the wire other than GA ("dialects"), translated at the transport boundary.

rtd speaks the GA protocol everywhere above this module: the conversation, the clients and
scripts build GA client events and read GA server events. A dialect turns each outgoing client
event into its server's shape just before it is encoded, and each incoming server event back
into GA just after it is parsed, so no other module asks which server it talks to.

- ``ga``: OpenAI's Realtime API, Azure's GA deployments, most compatible servers. Nothing is
  renamed; audio formats without a rate get the rate added (some local servers assume 16 kHz).
- ``beta``: the shape OpenAI has switched off but older relays and servers still speak: the
  ``OpenAI-Beta: realtime=v1`` header, a flat session (``modalities``, ``voice``,
  ``input_audio_format: "pcm16"``, ``input_audio_transcription``, ``turn_detection``,
  ``max_response_output_tokens``), ``response.audio.delta``, ``response.audio_transcript.*``,
  ``response.text.*`` and ``conversation.item.created``; assistant content is ``text`` /
  ``audio`` rather than ``output_text`` / ``output_audio``. ``pcm16`` is 24 kHz by definition,
  so the beta shape cannot carry a rate and needs none.
- ``xai``: xAI's realtime API: GA event names, a session with ``voice``, ``instructions``,
  ``turn_detection``, ``tools`` and ``audio.{input,output}.format`` at its top and no
  ``type``, ``model`` (the URL's), transcription or modalities field; ``response.create``
  takes ``modalities``; a ``ping`` server event (answered by nobody, so it stops here);
  usage may come at the top of ``response.done``.

Translation is best effort on purpose: a field a dialect has no place for is dropped (logged
once), never an error, since a server of that dialect would refuse it anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from rtd.schema import did_you_mean

logger = logging.getLogger(__name__)

PCM_RATE = 24000
"""Hz: the rate rtd's audio has on the wire, said explicitly in every format sent."""

#: Which dialect each provider speaks unless ``[provider] dialect`` says otherwise.
PROVIDER_DEFAULTS: Mapping[str, str] = {"openai": "ga", "azure": "ga", "custom": "ga",
                                        "xai": "xai"}

_BETA_FORMATS = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
_GA_FORMATS = {beta: ga for ga, beta in _BETA_FORMATS.items()}
#: Beta server event names -> GA.
_BETA_NAMES = {
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
}
_ASSISTANT_TO_BETA = {"output_text": "text", "output_audio": "audio"}
_ASSISTANT_TO_GA = {beta: ga for ga, beta in _ASSISTANT_TO_BETA.items()}
_logged: set[str] = set()


def _once(key: str, message: str, *args: object, level: int = logging.INFO) -> None:
    if key not in _logged:
        _logged.add(key)
        logger.log(level, message, *args)


def _pcm_format(value: Any) -> Any:
    """A GA audio format with its rate said (a PCM format without one gets 24 kHz)."""
    if isinstance(value, Mapping) and value.get("type", "audio/pcm") == "audio/pcm" \
            and "rate" not in value:
        return {"type": "audio/pcm", **value, "rate": PCM_RATE}
    return value


def _with_rates(session: Mapping[str, Any]) -> dict[str, Any]:
    """The GA session with both audio formats present and explicit (transcription: input)."""
    out = dict(session)
    audio = dict(out.get("audio") or {})
    sides = ("input",) if out.get("type") == "transcription" else ("input", "output")
    for side in sides:
        part = dict(audio.get(side) or {})
        part["format"] = _pcm_format(part.get("format") or {"type": "audio/pcm"})
        audio[side] = part
    out["audio"] = audio
    return out


def _content(item: Any, table: Mapping[str, str]) -> Any:
    """An assistant message item with its content part types renamed by ``table``."""
    if not isinstance(item, Mapping) or item.get("role") != "assistant" \
            or not isinstance(item.get("content"), list):
        return item
    parts = [{**p, "type": table.get(p.get("type"), p.get("type"))}
             if isinstance(p, Mapping) else p for p in item["content"]]
    return {**item, "content": parts}


class Dialect:
    """GA, and the base of the others: each hook gets and returns one event as a dict.

    ``headers`` go with the WebSocket upgrade. `outgoing` never changes its argument;
    `incoming` may change the freshly parsed dict it gets, and returns None for an event
    that is the transport's business only (xAI's ``ping``).
    """

    name = "ga"
    headers: Mapping[str, str] = {}

    def __init__(self) -> None:
        self._out: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
            "session.update": self._session_update,
            "response.create": self._response_create,
            "conversation.item.create": self._item_create,
        }
        self._in: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {}
        self._renames: Mapping[str, str] = {}

    def outgoing(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        """A GA client event in this dialect's shape (the same object when nothing changes)."""
        convert = self._out.get(event.get("type"))  # type: ignore[arg-type]
        return event if convert is None else convert(event)

    def incoming(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """A server event of this dialect as GA; None: not for the conversation."""
        kind = event.get("type")
        renamed = self._renames.get(kind)  # type: ignore[arg-type]
        if renamed is not None:
            event["type"] = kind = renamed
        convert = self._in.get(kind)  # type: ignore[arg-type]
        return event if convert is None else convert(event)

    # -- GA: explicit rates only -------------------------------------------------------------

    def _session_update(self, event: Mapping[str, Any]) -> dict[str, Any]:
        session = event.get("session")
        if not isinstance(session, Mapping):
            return dict(event)
        return {**event, "session": _with_rates(session)}

    def _response_create(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return dict(event)

    def _item_create(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return dict(event)

    # -- ephemeral client secrets (REST) -----------------------------------------------------

    #: Where, under the REST base (``.../v1``), a POST makes an ephemeral client secret.
    secrets_path = "/realtime/client_secrets"

    def secret_request(self, session: Mapping[str, Any] | None,
                       expires_after: Mapping[str, Any] | None) -> dict[str, Any]:
        """The body of the POST for a GA session and a GA ``expires_after``."""
        body: dict[str, Any] = {}
        if expires_after is not None:
            body["expires_after"] = dict(expires_after)
        if session is not None:
            body["session"] = _with_rates(session)
        return body

    def secret_response(self, data: dict[str, Any]) -> dict[str, Any]:
        """The server's answer as GA's: ``value``, ``expires_at``, ``session``."""
        return data

    def __repr__(self) -> str:
        return f"<dialect {self.name}>"


class Beta(Dialect):
    """The beta shape (see the module's docstring)."""

    name = "beta"
    headers = {"OpenAI-Beta": "realtime=v1"}

    def __init__(self) -> None:
        super().__init__()
        self._renames = _BETA_NAMES
        self._in = {
            "session.created": self._session_in, "session.updated": self._session_in,
            "response.created": self._response_in, "response.done": self._response_in,
            "response.output_item.added": self._item_in,
            "response.output_item.done": self._item_in,
            "conversation.item.created": self._item_in,
            "conversation.item.retrieved": self._item_in,
        }

    # GA -> beta

    def _session_update(self, event: Mapping[str, Any]) -> dict[str, Any]:
        session = event.get("session")
        if not isinstance(session, Mapping):
            return dict(event)
        return {**event, "session": session_to_beta(session)}

    def _response_create(self, event: Mapping[str, Any]) -> dict[str, Any]:
        response = event.get("response")
        if not isinstance(response, Mapping):
            return dict(event)
        out = session_to_beta(response, response=True)
        if isinstance(out.get("input"), list):
            out["input"] = [_content(i, _ASSISTANT_TO_BETA) for i in out["input"]]
        return {**event, "response": out}

    def _item_create(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return {**event, "item": _content(event.get("item"), _ASSISTANT_TO_BETA)}

    secrets_path = "/realtime/sessions"

    def secret_request(self, session: Mapping[str, Any] | None,
                       expires_after: Mapping[str, Any] | None) -> dict[str, Any]:
        body = session_to_beta(session or {})
        if expires_after is not None:
            body["client_secret"] = {"expires_after": dict(expires_after)}
        return body

    def secret_response(self, data: dict[str, Any]) -> dict[str, Any]:
        session = {k: v for k, v in data.items() if k != "client_secret"}
        secret = data.get("client_secret") if isinstance(data.get("client_secret"),
                                                          Mapping) else {}
        return {"value": secret.get("value"), "expires_at": secret.get("expires_at"),
                "session": session_from_beta(session)}

    # beta -> GA

    def _session_in(self, event: dict[str, Any]) -> dict[str, Any]:
        if isinstance(event.get("session"), Mapping):
            event["session"] = session_from_beta(event["session"])
        return event

    def _response_in(self, event: dict[str, Any]) -> dict[str, Any]:
        response = event.get("response")
        if isinstance(response, Mapping):
            out = dict(response)
            modalities = out.pop("modalities", None)
            if isinstance(modalities, list):
                out["output_modalities"] = ["audio"] if "audio" in modalities else ["text"]
            if isinstance(out.get("output"), list):
                out["output"] = [_content(i, _ASSISTANT_TO_GA) for i in out["output"]]
            event["response"] = out
        return event

    def _item_in(self, event: dict[str, Any]) -> dict[str, Any]:
        event["item"] = _content(event.get("item"), _ASSISTANT_TO_GA)
        return event


def session_to_beta(session: Mapping[str, Any], *, response: bool = False) -> dict[str, Any]:
    """A GA session (or per-response override, ``response=True``) in the beta shape."""
    out = {k: v for k, v in session.items()
           if k not in ("type", "audio", "output_modalities", "max_output_tokens")}
    modalities = session.get("output_modalities")
    if isinstance(modalities, list):
        out["modalities"] = ["audio", "text"] if "audio" in modalities else ["text"]
    if "max_output_tokens" in session:
        out["max_response_output_tokens"] = session["max_output_tokens"]
    audio = session.get("audio") if isinstance(session.get("audio"), Mapping) else {}
    heard = audio.get("input") if isinstance(audio.get("input"), Mapping) else {}
    said = audio.get("output") if isinstance(audio.get("output"), Mapping) else {}
    if not response:
        fmt = _pcm_format(heard.get("format") or {"type": "audio/pcm"})
        out["input_audio_format"] = _beta_format(fmt)
        for ga, beta in (("transcription", "input_audio_transcription"),
                         ("turn_detection", "turn_detection"),
                         ("noise_reduction", "input_audio_noise_reduction")):
            if ga in heard:
                out[beta] = heard[ga]
    if said or not response:
        out["output_audio_format"] = _beta_format(
            _pcm_format(said.get("format") or {"type": "audio/pcm"}))
    for key in ("voice", "speed"):
        if key in said:
            out[key] = said[key]
    return out


#: Beta session keywords GA has no place for: accepted from callers, not sent (GA has no
#: sampling temperature).
NO_GA_EQUIVALENT = ("temperature",)


def session_from_beta(session: Mapping[str, Any], *, request: bool = False) -> dict[str, Any]:
    """A beta session in the GA shape: as a beta server reports it, or (``request=True``) as
    a caller of a beta-era API asks for it, leaving out what GA has no place for (logged
    once per keyword)."""
    flat = dict(session)
    if request:
        for key in NO_GA_EQUIVALENT:
            if flat.pop(key, None) is not None:
                _once(f"no GA {key}", "%s has no equivalent in the GA realtime session and "
                      "is not sent (it has no effect)", key, level=logging.WARNING)
    out: dict[str, Any] = {"type": "realtime"}
    modalities = flat.pop("modalities", None)
    if isinstance(modalities, list):
        out["output_modalities"] = ["audio"] if "audio" in modalities else ["text"]
    if "max_response_output_tokens" in flat:
        out["max_output_tokens"] = flat.pop("max_response_output_tokens")
    heard: dict[str, Any] = {}
    said: dict[str, Any] = {}
    if "input_audio_format" in flat:
        heard["format"] = _ga_format(flat.pop("input_audio_format"))
    for beta, ga in (("input_audio_transcription", "transcription"),
                     ("turn_detection", "turn_detection"),
                     ("input_audio_noise_reduction", "noise_reduction")):
        if beta in flat:
            heard[ga] = flat.pop(beta)
    if "output_audio_format" in flat:
        said["format"] = _ga_format(flat.pop("output_audio_format"))
    for key in ("voice", "speed"):
        if key in flat:
            said[key] = flat.pop(key)
    out.update(flat)
    if heard or said:
        out["audio"] = {"input": heard, "output": said}
    return out


def _beta_format(fmt: Any) -> Any:
    if isinstance(fmt, Mapping):
        return _BETA_FORMATS.get(fmt.get("type", "audio/pcm"), "pcm16")
    return fmt


def _ga_format(fmt: Any) -> Any:
    if isinstance(fmt, str):
        kind = _GA_FORMATS.get(fmt, "audio/pcm")
        return {"type": kind, "rate": PCM_RATE} if kind == "audio/pcm" else {"type": kind}
    return fmt


class XAI(Dialect):
    """xAI's shape (see the module's docstring)."""

    name = "xai"

    def __init__(self) -> None:
        super().__init__()
        self._in = {"ping": self._ping, "session.created": self._session_in,
                    "session.updated": self._session_in, "response.done": self._response_done}

    def _session_update(self, event: Mapping[str, Any]) -> dict[str, Any]:
        session = event.get("session")
        if not isinstance(session, Mapping):
            return dict(event)
        ga = _with_rates(session)
        audio = ga.get("audio") or {}
        heard = dict(audio.get("input") or {})
        said = dict(audio.get("output") or {})
        out = {k: v for k, v in ga.items() if k in ("instructions", "tools")}
        if "voice" in said:
            out["voice"] = said.pop("voice")
        if "turn_detection" in heard:
            out["turn_detection"] = heard.pop("turn_detection")
        out["audio"] = {"input": {"format": heard.get("format")},
                        "output": {"format": said.get("format")}}
        dropped = sorted({*ga, *(f"audio.input.{k}" for k in heard),
                          *(f"audio.output.{k}" for k in said)}
                         - {"instructions", "tools", "audio", "audio.input.format",
                            "audio.output.format"})
        if dropped:
            _once(f"xai {dropped}", "xai dialect: session fields without an xAI equivalent "
                  "left out: %s", ", ".join(dropped))
        return {**event, "session": out}

    def _response_create(self, event: Mapping[str, Any]) -> dict[str, Any]:
        response = event.get("response")
        if not isinstance(response, Mapping):
            return dict(event)
        out = {k: v for k, v in response.items() if k != "output_modalities"}
        modalities = response.get("output_modalities")
        if isinstance(modalities, list):
            out["modalities"] = ["text", "audio"] if "audio" in modalities else ["text"]
        return {**event, "response": out}

    def secret_request(self, session: Mapping[str, Any] | None,
                       expires_after: Mapping[str, Any] | None) -> dict[str, Any]:
        if session:
            _once("xai secret session", "xai dialect: a client secret carries no session "
                  "there; send the session with session.update once connected")
        seconds = (expires_after or {}).get("seconds")
        return {"expires_after": {"seconds": seconds}} if seconds is not None else {}

    def _ping(self, event: dict[str, Any]) -> None:
        return None

    def _session_in(self, event: dict[str, Any]) -> dict[str, Any]:
        session = event.get("session")
        if not isinstance(session, Mapping):
            return event
        out = {k: v for k, v in session.items() if k not in ("voice", "turn_detection")}
        audio = dict(out.get("audio") or {})
        heard = dict(audio.get("input") or {})
        said = dict(audio.get("output") or {})
        if "turn_detection" in session:
            heard["turn_detection"] = session["turn_detection"]
        if "voice" in session:
            said["voice"] = session["voice"]
        out["audio"] = {**audio, "input": heard, "output": said}
        out.setdefault("type", "realtime")
        event["session"] = out
        return event

    def _response_done(self, event: dict[str, Any]) -> dict[str, Any]:
        response = event.get("response")
        usage = event.pop("usage", None)
        if isinstance(response, dict) and usage is not None and response.get("usage") is None:
            response["usage"] = usage
        return event


DIALECTS: Mapping[str, Dialect] = {d.name: d for d in (Dialect(), Beta(), XAI())}


def get(name: str) -> Dialect:
    """The dialect called ``name``; ValueError naming the known ones otherwise."""
    found = DIALECTS.get(name)
    if found is None:
        raise ValueError(f"unknown dialect {name!r}{did_you_mean(name, DIALECTS)}; "
                         f"known: {', '.join(DIALECTS)}")
    return found


def for_provider(provider: str, dialect: str = "") -> Dialect:
    """``dialect`` if given, else the provider's own (GA for anything unknown)."""
    return get(dialect or PROVIDER_DEFAULTS.get(provider, "ga"))
