"""Every error rtd raises on purpose, so callers can catch `RtdError` and show one clear line.

Each message says what is wrong, where (file, `section.key`, device, event) and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping


class RtdError(Exception):
    """Base of all rtd errors; its text is meant for the user as it is."""


class ConfigError(RtdError):
    """The configuration is unusable; carries every problem found, not just the first."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        text = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{where}invalid configuration:\n{text}")


class AudioError(RtdError):
    """An audio device or file cannot be used."""


class DeviceError(AudioError):
    """A sound device is missing, busy, or does not support what rtd needs."""


class AmbiguousDeviceError(DeviceError):
    """A configured device name matches several devices: only the configuration can fix it."""


class AudioFileError(AudioError):
    """A WAV file cannot be read or written."""


class ConnectionFailed(RtdError):
    """The realtime server cannot be reached or dropped the connection; worth retrying.

    A refused upgrade carries what the server answered, so its ending can be classified
    (`rtd.protocol.endings`): the HTTP ``status``, the response ``headers`` (names lower case;
    Retry-After and rate-limit resets live there) and the ``error_code`` of its JSON body.
    """

    def __init__(self, message: str, *, status: int | None = None,
                 headers: Mapping[str, str] | None = None, error_code: str | None = None,
                 detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.headers: dict[str, str] = dict(headers or {})
        self.error_code = error_code
        #: The server's own words (a refusal's body message), at most 200 characters.
        self.detail = detail


class AuthenticationError(ConnectionFailed):
    """The server refused the credentials; retrying with the same key will not help."""


class ProtocolError(RtdError):
    """The server sent something that is not a realtime event."""


class ConnectionClosed(ConnectionFailed):
    """A realtime connection ended: read from it after its close, or dropped under a reader.

    ``code`` and ``reason`` are the close frame's (None and "": there was none, a drop).
    """

    def __init__(self, message: str, *, code: int | None = None, reason: str = "",
                 **facts: object) -> None:
        super().__init__(message, **facts)  # type: ignore[arg-type]
        self.code = code
        self.reason = reason


class APIStatusError(RtdError):
    """A REST call to the realtime server (e.g. ``sessions.create``) was refused.

    Carries the HTTP ``status``, the server's own ``message`` and its error ``code``.
    """

    def __init__(self, message: str, *, status: int, error_code: str | None = None,
                 detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.status_code = status  # the OpenAI SDK's spelling
        self.error_code = error_code
        self.message = detail
