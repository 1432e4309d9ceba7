"""The emulator's REST endpoint for ephemeral secrets, seen from a plain HTTP client (urllib),
and the secrets it issues used as WebSocket keys."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
import websocket
from emulator_helpers import TIMEOUT, Client

from rtd.emulator import Emulator


def post(emu: Emulator, path: str, body: Any, key: str | None = "sk-root",
         method: str = "POST") -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(f"http://127.0.0.1:{emu.port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def emu() -> Any:
    with Emulator(api_key="sk-root", voice_engine="tones") as e:
        yield e


def test_ga_answer_shape(emu: Emulator) -> None:
    status, body = post(emu, "/v1/realtime/client_secrets", {
        "expires_after": {"anchor": "created_at", "seconds": 120},
        "session": {"type": "realtime", "instructions": "Short.", "output_modalities": ["text"],
                    "audio": {"output": {"voice": "cedar"}}}})
    assert status == 200
    assert set(body) == {"value", "expires_at", "session"}
    assert body["value"].startswith("ek_")
    session = body["session"]
    assert session["object"] == "realtime.session" and session["id"].startswith("sess_")
    assert session["model"] == "gpt-realtime-2"
    assert session["output_modalities"] == ["text"]
    assert session["instructions"] == "Short."
    assert session["audio"]["output"]["voice"] == "cedar"


def test_refusals_are_json_errors(emu: Emulator) -> None:
    assert post(emu, "/v1/realtime/client_secrets", {}, key="sk-wrong")[0] == 401
    assert post(emu, "/v1/realtime/client_secrets", {}, key=None)[0] == 401
    status, body = post(emu, "/v1/realtime/client_secrets",
                        {"session": {"type": "realtime", "voice": "x"}})
    assert status == 400 and body["error"]["param"] == "session.voice"
    assert post(emu, "/v1/realtime/nothing", {})[0] == 404
    assert post(emu, "/v1/realtime/client_secrets", None, method="PUT")[0] == 405


def test_an_issued_secret_is_a_websocket_key(emu: Emulator) -> None:
    _, body = post(emu, "/v1/realtime/client_secrets", {})
    client = Client(emu.url, [f"Authorization: Bearer {body['value']}"])
    assert client.recv()["type"] == "session.created"
    client.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(emu.url, header=["Authorization: Bearer ek_made_up"],
                                    timeout=TIMEOUT)
    assert refused.value.status_code == 401


def test_rtd_emulate_serves_secrets_and_speaks_a_dialect(run_rtd: Any) -> None:
    d = run_rtd("emulate", "--port", "0", "--voice", "tones", "--api-key", "sk-root",
                "--dialect", "beta")
    line = d.wait_for_line("listening on ws://")
    port = int(re.search(r"ws://127\.0\.0\.1:(\d+)/", line).group(1))
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/realtime/sessions", method="POST",
        data=json.dumps({"modalities": ["text"], "voice": "ash"}).encode(),
        headers={"Authorization": "Bearer sk-root", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
        body = json.loads(answer.read())
    assert body["modalities"] == ["text"] and body["voice"] == "ash"
    assert body["client_secret"]["value"].startswith("ek_")
    client = Client(f"ws://127.0.0.1:{port}/v1/realtime",
                    [f"Authorization: Bearer {body['client_secret']['value']}",
                     "OpenAI-Beta: realtime=v1"])
    first = client.recv()
    assert first["type"] == "session.created" and first["session"]["modalities"] == ["text"]
    client.close()
    assert d.stop() == 0
    assert "Traceback" not in d.output
