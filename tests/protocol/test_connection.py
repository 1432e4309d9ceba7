"""rtd.connect: the SDK-shaped connection, against the real emulator on loopback."""

from __future__ import annotations

import socket

import pytest

import rtd
from rtd.emulator import Emulator
from rtd.exceptions import AuthenticationError, ConnectionFailed


@pytest.fixture
def emu():
    with Emulator(voice_engine="tones") as e:
        yield e


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_text_turn_round_trip(dialect):
    with Emulator(voice_engine="tones", dialect=dialect) as emu, \
            rtd.connect(model="gpt-realtime-2", provider="custom", url=emu.url,
                        dialect=dialect, websocket_connection_options={
                            "timeout": 5, "additional_headers": {"x-trace-id": "t-1"}}) as conn:
        first = conn.recv()
        assert first.type == "session.created"
        conn.send({"type": "session.update",
                   "session": {"type": "realtime", "output_modalities": ["text"]}})
        conn.send({"type": "conversation.item.create",
                   "item": {"type": "message", "role": "user",
                            "content": [{"type": "input_text", "text": "Hello"}]}})
        conn.send({"type": "response.create"})
        text, kinds = "", []
        for event in conn.listen():
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.done":
                assert event.response.status == "completed"
                break
    assert "session.updated" in kinds and text
    assert emu.headers[0]["x-trace-id"] == "t-1"
    assert [e["type"] for e in emu.received] == [
        "session.update", "conversation.item.create", "response.create"]
    assert "model=gpt-realtime-2" in conn.url


def test_send_audio_data_reaches_the_input_buffer(emu):
    pcm = (b"\x10\x00\xf0\xff") * 2400
    with rtd.connect(provider="custom", url=emu.url) as conn:
        conn.send_audio_data(pcm)
        emu.wait_for(lambda e: e["type"] == "input_audio_buffer.append", timeout=5)
    assert emu.input_audio == pcm


def test_refused_credentials_raise_authentication_error():
    with Emulator(api_key="right", voice_engine="tones") as emu:
        with pytest.raises(AuthenticationError, match=r"refused the credentials \(HTTP 401") as e:
            rtd.connect(provider="custom", url=emu.url, api_key="wrong-secret")
        assert "wrong-secret" not in str(e.value)
        with rtd.connect(provider="custom", url=emu.url, api_key="right") as conn:
            assert conn.recv().type == "session.created"


def test_unreachable_server_raises_connection_failed():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionFailed, match="connection refused"):
        rtd.connect(provider="custom", url=f"ws://127.0.0.1:{port}/v1/realtime")


def test_openai_without_a_key_says_so(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        rtd.connect()


def test_server_close_code_is_reported():
    with Emulator(voice_engine="tones", max_session_seconds=0.5) as emu:
        with rtd.connect(provider="custom", url=emu.url) as conn:
            kinds = [e.type for e in conn.listen()]
        assert kinds[0] == "session.created"
        assert conn.close_code == 1001
