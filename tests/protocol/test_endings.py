"""The endings table, row by row: what the server said -> retry, retry after, or fatal."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from rtd.exitcodes import EX_CONFIG, EX_NOPERM
from rtd.protocol.endings import MAX_DELAY, QUOTA_DELAY, RATE_LIMIT_DELAY, classify, duration

NOW = 1_800_000_000.0  # a fixed "now" (unix seconds) for HTTP dates


@pytest.mark.parametrize(("said", "action", "delay", "exit_code"), [
    # the upgrade's HTTP status
    ({"status": 401}, "fatal", None, EX_NOPERM),
    ({"status": 403}, "fatal", None, EX_NOPERM),
    ({"status": 404}, "fatal", None, EX_CONFIG),
    ({"status": 400}, "fatal", None, EX_CONFIG),
    ({"status": 401, "error_code": "invalid_api_key"}, "fatal", None, EX_NOPERM),
    ({"status": 404, "error_code": "model_not_found"}, "fatal", None, EX_CONFIG),
    ({"status": 429}, "retry_after", RATE_LIMIT_DELAY, None),
    ({"status": 429, "headers": {"Retry-After": "7"}}, "retry_after", 7.0, None),
    ({"status": 429, "headers": {"retry-after": formatdate(NOW + 30, usegmt=True)}},
     "retry_after", 30.0, None),
    ({"status": 429, "headers": {"x-ratelimit-reset-requests": "1s",
                                 "x-ratelimit-reset-tokens": "1m30s"}}, "retry_after", 90.0,
     None),
    ({"status": 429, "headers": {"x-ratelimit-reset-tokens": "20ms"}}, "retry_after", 0.02,
     None),
    ({"status": 429, "headers": {"retry-after-ms": "1500", "retry-after": "9"}},
     "retry_after", 1.5, None),
    ({"status": 429, "error_code": "insufficient_quota"}, "retry_after", QUOTA_DELAY, None),
    ({"status": 500}, "retry", None, None),
    ({"status": 502}, "retry", None, None),
    ({"status": 503}, "retry", None, None),
    ({"status": 503, "headers": {"Retry-After": "2"}}, "retry_after", 2.0, None),
    ({"status": 503, "headers": {"Retry-After": formatdate(NOW + 2, usegmt=True)}},
     "retry_after", 2.0, None),
    ({"status": 503, "headers": {"Retry-After": formatdate(NOW - 60, usegmt=True)}},
     "retry_after", 0.0, None),  # a date already past: at once
    ({"status": 503, "headers": {"Retry-After": "soon"}}, "retry", None, None),
    ({"status": 503, "headers": {"Retry-After": "99999999"}}, "retry_after", MAX_DELAY, None),
    ({"status": 503, "headers": {"x-ratelimit-reset-requests": "5s"}}, "retry", None, None),
    ({"status": 408}, "retry", None, None),
    # error events, with or without the close that follows them
    ({"error_code": "invalid_api_key"}, "fatal", None, EX_NOPERM),
    ({"error_code": "invalid_api_key", "close_code": 3000}, "fatal", None, EX_NOPERM),
    ({"error_code": "beta_api_shape_disabled", "close_code": 4000}, "fatal", None, EX_CONFIG),
    ({"error_code": "beta_api_shape_disabled"}, "fatal", None, EX_CONFIG),
    ({"error_code": "model_not_found"}, "fatal", None, EX_CONFIG),
    ({"error_code": "session_expired", "close_code": 1001}, "retry", 0.0, None),
    ({"error_code": "session_expired"}, "retry", 0.0, None),
    ({"error_code": "rate_limit_exceeded"}, "retry_after", RATE_LIMIT_DELAY, None),
    ({"error_code": "rate_limit_exceeded", "message": "Please try again in 6ms."},
     "retry_after", 0.006, None),
    ({"error_code": "rate_limit_exceeded", "message": "Please try again in 1m2s."},
     "retry_after", 62.0, None),
    ({"error_code": "insufficient_quota"}, "retry_after", QUOTA_DELAY, None),
    ({"error_code": "server_error", "close_code": 1011}, "retry", None, None),
    ({"error_code": "conversation_already_has_active_response", "close_code": 1000},
     "retry", None, None),
    # close codes alone
    ({"close_code": 3000}, "fatal", None, EX_NOPERM),
    ({"close_code": 4000}, "retry", None, None),  # a bare 4000 is not taken for the beta shape
    ({"close_code": 1001}, "retry", 0.0, None),
    ({"close_code": 1000}, "retry", None, None),
    ({"close_code": 1006}, "retry", None, None),
    ({"close_code": 1011}, "retry", None, None),
    ({"close_code": 1005}, "retry", None, None),
    ({"close_code": 2999}, "retry", None, None),
    ({"close_code": 4321}, "retry", None, None),
    # no code at all: resets, timeouts, stalls
    ({}, "retry", None, None),
])
def test_the_table(said, action, delay, exit_code):
    ending = classify(**said, cause="wss://api.example/v1/realtime", now=NOW)
    assert (ending.action, ending.exit_code) == (action, exit_code)
    if delay is None:
        assert ending.delay is None
    else:
        assert ending.delay == pytest.approx(delay)
    assert ending.fatal == (action == "fatal")
    assert ending.reason.startswith("wss://api.example/v1/realtime")


def test_reasons_say_what_happened_and_what_to_do():
    ending = classify(status=401, cause="wss://x/v1/realtime",
                      message="Incorrect API key provided.")
    assert ending.reason == ("wss://x/v1/realtime: the server refused the credentials "
                             "(HTTP 401: Incorrect API key provided.); check the API key")
    beta = classify(error_code="beta_api_shape_disabled", close_code=4000,
                    cause="wss://x closed the connection (code 4000)")
    assert "beta_api_shape_disabled" in beta.reason and "GA dialect" in beta.reason
    assert classify(cause="the connection was reset (TCP RST)").reason == \
        "the connection was reset (TCP RST)"
    assert classify().reason == "the connection ended"


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("20ms", 0.02), ("1m30s", 90.0), ("6m0s", 360.0), ("0.5s", 0.5),
    ("1h2m3.5s", 3723.5), ("7", 7.0), ("250us", 0.00025),
    ("", None), ("soon", None), ("1s2", None), ("s", None), ("-1s", None),
])
def test_rate_limit_durations(text, seconds):
    assert duration(text) == (None if seconds is None else pytest.approx(seconds))
