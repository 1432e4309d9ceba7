"""Audio round trip through an echo path: how long does a user wait on rtd's audio handling?

A PulseAudio loopback (`module-loopback`, 20 ms) carries the virtual speaker's monitor into the
virtual microphone, as a room carries a loudspeaker into a microphone. A small WebSocket peer
speaking the realtime protocol sends a 20 ms burst as one `response.output_audio.delta` and
times its return in the client's input stream: the arrival of the `input_audio_buffer.append`
that carries the burst's onset, which is when a server could first hear it. The same peer and
cables time a hand-written loop (sounddevice, 20 ms blocks, an InputStream and an OutputStream
straight to a websocket client) in the same run, as the yardstick. A capture of the speaker's
monitor in this process splits rtd's round trip into its way out (delta sent -> sound at the
speaker) and its way in (speaker -> loopback -> microphone -> append at the peer). rtd runs as
`rtd run` with `[audio] echo = "none"` (the echo is the point here). Nothing is asserted.

    python bench/latency.py [--bursts 30] [--block-ms 20 50] [--only rtd|baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

RATE = 24000
BURST_MS = 20
GAP_S = 0.35
"""Seconds between bursts (plus a random part, so bursts fall on every phase of the blocks)."""
RETURN_TIMEOUT = 1.5
WINDOW = 60
"""Samples per detection window (2.5 ms)."""
THRESHOLD = 3000.0
"""RMS above which a window counts as the burst (the burst's RMS is about 11500)."""
LOOPBACK_MS = 20
TARGET_NOTE = "<= the hand-written loop's, same run"
ISSUE_BASELINE = "the issue measured 112-130 ms (50 ms blocks), 96 ms (20 ms), hand loop 37-43 ms"


def burst() -> bytes:
    t = np.arange(RATE * BURST_MS // 1000) / RATE
    x = 0.5 * np.sin(2 * np.pi * 1000 * t)
    fade = RATE // 1000
    x[:fade] *= np.linspace(0, 1, fade)
    x[-fade:] *= np.linspace(1, 0, fade)
    return np.rint(x * 32767).astype("<i2").tobytes()


def onset(pcm: np.ndarray) -> int | None:
    """Index of the first loud window's start, or None."""
    n = len(pcm) // WINDOW
    if not n:
        return None
    x = pcm[: n * WINDOW].astype(np.float64).reshape(n, WINDOW)
    loud = np.flatnonzero(np.sqrt((x * x).mean(axis=1)) > THRESHOLD)
    return int(loud[0]) * WINDOW if len(loud) else None


class Peer:
    """A minimal realtime peer: answers the handshake, sends bursts, watches the input audio."""

    def __init__(self) -> None:
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws: Any = None
        self.ready = threading.Event()
        self._armed_at: float | None = None
        self._returns: queue.Queue[float] = queue.Queue()
        self.appends = 0
        self.append_ms: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()

    def start(self) -> Peer:
        self._thread.start()
        self._started.wait(10)
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}/v1/realtime"
            self._started.set()
            await self._stop.wait()

    async def _handle(self, ws: Any) -> None:
        await ws.send(json.dumps({
            "type": "session.created", "event_id": "ev_0",
            "session": {"type": "realtime", "id": "sess_bench", "object": "realtime.session",
                        "model": "bench", "expires_at": int(time.time()) + 3600}}))
        self._ws = ws
        try:
            async for raw in ws:
                now = time.time()
                event = json.loads(raw)
                kind = event.get("type")
                if kind == "session.update":
                    await ws.send(json.dumps({"type": "session.updated", "event_id": "ev_1",
                                              "session": event.get("session", {})}))
                    self.ready.set()
                elif kind == "input_audio_buffer.append":
                    self._heard(now, base64.b64decode(event["audio"]))
        except Exception:  # the client went away: the run is over
            pass
        finally:
            self._ws = None
            self.ready.clear()

    def _heard(self, now: float, pcm: bytes) -> None:
        self.appends += 1
        samples = np.frombuffer(pcm, "<i2")
        self.append_ms.append(len(samples) * 1000 / RATE)
        armed = self._armed_at
        if armed is not None and onset(samples) is not None:
            self._armed_at = None
            self._returns.put(now)

    def send_delta(self, n: int) -> float:
        """Send burst n as one delta (and its audio.done); the wall time it went."""
        loop, ws = self._loop, self._ws
        if loop is None or ws is None:
            raise RuntimeError("no client is connected to the peer")
        item = f"item_{n}"
        delta = {"type": "response.output_audio.delta", "event_id": f"ev_d{n}",
                 "response_id": f"resp_{n}", "item_id": item, "output_index": 0,
                 "content_index": 0, "delta": base64.b64encode(burst()).decode()}
        done = {"type": "response.output_audio.done", "event_id": f"ev_e{n}",
                "response_id": f"resp_{n}", "item_id": item, "output_index": 0,
                "content_index": 0}
        when: list[float] = []
        sent = threading.Event()

        async def send() -> None:
            when.append(time.time())
            await ws.send(json.dumps(delta))
            sent.set()
            await ws.send(json.dumps(done))

        asyncio.run_coroutine_threadsafe(send(), loop)
        sent.wait(2)
        return when[0] if when else time.time()

    def arm(self) -> None:
        """Watch the input for the next loud onset."""
        while not self._returns.empty():
            self._returns.get_nowait()
        self._armed_at = 0.0

    def take(self) -> float | None:
        """Wall time the armed onset arrived, or None."""
        try:
            return self._returns.get(timeout=RETURN_TIMEOUT)
        except queue.Empty:
            self._armed_at = None
            return None

    def round_trip(self, n: int) -> float | None:
        """Send burst n; the seconds until its onset arrives back, or None."""
        if self._ws is None:
            return None
        self.arm()
        sent = self.send_delta(n)
        got = self.take()
        return None if got is None else got - sent

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


class SpeakerTap:
    """Timestamps sound reaching the virtual speaker (its monitor), in wall-clock seconds."""

    def __init__(self) -> None:
        import sounddevice as sd

        dev = next(d["index"] for d in sd.query_devices() if d["name"] == "pulse")
        self._armed_at: float | None = None
        self.arrivals: queue.Queue[float] = queue.Queue()
        self._stream = sd.RawInputStream(device=dev, samplerate=RATE, channels=1, dtype="int16",
                                         blocksize=120, latency="low", callback=self._callback)

    def _callback(self, data: Any, frames: int, info: Any, status: Any) -> None:
        armed = self._armed_at
        if armed is None:
            return
        at = onset(np.frombuffer(bytes(data), "<i2"))
        if at is not None:
            wall = info.inputBufferAdcTime + (time.time() - info.currentTime) + at / RATE
            self._armed_at = None
            self.arrivals.put(wall - armed)

    def arm(self, at: float) -> None:
        while not self.arrivals.empty():
            self.arrivals.get_nowait()
        self._armed_at = at

    def take(self) -> float | None:
        try:
            return self.arrivals.get(timeout=RETURN_TIMEOUT)
        except queue.Empty:
            return None

    def __enter__(self) -> SpeakerTap:
        self._stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()


def measure(peer: Peer, bursts: int, tap: SpeakerTap | None) -> tuple[list[float], list[float]]:
    """Round trips and (with a tap) the way-out legs, in ms."""
    rng = random.Random(8)
    trips: list[float] = []
    outs: list[float] = []
    time.sleep(1.0)  # streams settle
    for n in range(bursts):
        if tap is not None:
            tap.arm(time.time())
        rt = peer.round_trip(n)
        out = tap.take() if tap is not None else None
        if rt is not None:
            trips.append(rt * 1000)
            if out is not None:
                outs.append(out * 1000)
        time.sleep(GAP_S + rng.random() * 0.05)
    return trips, outs


def rtd_config(tmp: Path, url: str, block_ms: int) -> Path:
    conf = tmp / f"rtd-{block_ms}.toml"
    conf.write_text(
        f'[provider]\nname = "custom"\nurl = "{url}"\n'
        '[audio]\necho = "none"\n'
        f'[audio.input]\nbackend = "sounddevice"\ndevice = "pulse"\nblock_ms = {block_ms}\n'
        '[audio.output]\nbackend = "sounddevice"\ndevice = "pulse"\n'
        f'[control]\npath = "{tmp / "control.sock"}"\n'
        '[log]\nlevel = "warning"\n')
    return conf


def run_client(cmd: list[str], env: dict[str, str], peer: Peer, bursts: int,
               tap: SpeakerTap | None, log: Path) -> tuple[list[float], list[float], float]:
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, env=env, stderr=err)
    try:
        if not peer.ready.wait(30):
            raise SystemExit(f"{' '.join(cmd[1:4])} did not connect to the peer; its stderr: "
                             f"{log.read_text()[-2000:]}")
        cpu0 = _cpu(proc.pid)
        t0 = time.monotonic()
        trips, outs = measure(peer, bursts, tap)
        cpu = (_cpu(proc.pid) - cpu0) * 60 / (time.monotonic() - t0)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return trips, outs, cpu


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(ms: list[float]) -> str:
    if not ms:
        return "no returns"
    ms = sorted(ms)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return f"median {statistics.median(ms):6.1f} ms   p90 {p90:6.1f} ms   ({len(ms)} bursts)"


def _default_block() -> int:
    """rtd's input block for a sound device by default."""
    from rtd.config import AudioInputConfig

    c = AudioInputConfig()
    return getattr(c, "block", c.block_ms)


def breakdown(block_ms: int) -> list[tuple[str, float]]:
    """rtd's own terms of the round trip: its streams opened as rtd opens them, and its
    resampler's hold-back on a 48 kHz device (these cables run at 24 kHz: no resampling)."""
    import sounddevice as sd

    from rtd.audio import sounddevice_backend as sdb
    from rtd.audio.resample import StreamResampler
    from rtd.config import AudioOutputConfig

    dev = next(d["index"] for d in sd.query_devices() if d["name"] == "pulse")
    # (getattr: the bench also measures older trees, before these settings existed)
    out_ms = getattr(AudioOutputConfig(), "block_ms", getattr(sdb, "OUTPUT_BLOCK_MS", 20))
    setting = getattr(sdb, "LATENCY", "high")
    quality = getattr(sdb, "RESAMPLE_QUALITY", "HQ")
    with sd.RawInputStream(device=dev, samplerate=RATE, channels=1, dtype="int16",
                           blocksize=RATE * block_ms // 1000, latency=setting) as s:
        in_latency = s.latency * 1000
    with sd.RawOutputStream(device=dev, samplerate=RATE, channels=1, dtype="int16",
                            blocksize=RATE * out_ms // 1000, latency=setting) as s:
        out_latency = s.latency * 1000

    def held(quality: str, a: int, b: int) -> float:
        """Mean ms of audio the resampler holds back, fed 10 ms blocks (soxr releases its
        output in lumps, so the hold-back varies from block to block)."""
        try:
            r = StreamResampler(a, b, quality=quality)
        except TypeError:  # an older tree: HQ only
            r = StreamResampler(a, b)
        n = a // 100
        got, lags = 0, []
        for i in range(1, 201):
            got += len(r.process(bytes(2 * n))) // 2
            if i > 20:
                lags.append((i * n * b / a - got) * 1000 / b)
        return statistics.mean(lags)

    return [
        (f"input block: waiting for the rest of a {block_ms} ms block", block_ms / 2),
        ("input stream: reported latency (includes the block)", in_latency),
        (f"output callback period {out_ms} ms: waiting for the next one", out_ms / 2),
        ("output stream: reported latency", out_latency),
        (f"resampler hold-back at 48 kHz, both ways ({quality}; HQ: "
         f"{held('HQ', RATE, 48000) + held('HQ', 48000, RATE):.0f} ms)",
         held(quality, RATE, 48000) + held(quality, 48000, RATE)),
    ]


def hops(peer: Peer, tmp: Path, n: int = 20) -> list[tuple[str, float]]:
    """rtd's queue hops, timed in this process with its real actors (file speaker, no mic):
    delta on the socket -> the speaker's `play()`, and `InputAudio` on the bus -> the append
    at the peer."""
    from rtd import config as cfg
    from rtd.daemon import Daemon
    from rtd.messages import InputAudio

    table = {"provider": {"name": "custom", "url": peer.url},
             "control": {"path": str(tmp / "control.sock")},
             "audio": {"echo": "none", "input": {"backend": "none"},
                       "output": {"backend": "file", "path": str(tmp / "hops.wav")}}}
    daemon = Daemon(cfg.parse(table, None, require_key=False))
    daemon.start()
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    out_ms: list[float] = []
    in_ms: list[float] = []
    try:
        if not peer.ready.wait(20) or daemon.output is None:
            return [("queue hops: rtd did not connect in process", float("nan"))]
        played: queue.Queue[float] = queue.Queue()
        backend = daemon.output
        real_play = backend.play

        def timed_play(item_id: str, pcm: bytes) -> None:
            played.put(time.time())
            real_play(item_id, pcm)

        backend.play = timed_play  # type: ignore[method-assign]
        loud = burst()
        for i in range(n):
            sent = peer.send_delta(1000 + i)
            with contextlib.suppress(queue.Empty):
                out_ms.append((played.get(timeout=2) - sent) * 1000)
            peer.arm()
            at = time.time()
            daemon.bus.publish(InputAudio(loud))
            got = peer.take()
            if got is not None:
                in_ms.append((got - at) * 1000)
            time.sleep(0.05)
    finally:
        daemon.stop()
    return [
        ("hops out: delta on the socket -> speaker play() (reader, session, bus)",
         statistics.median(out_ms) if out_ms else float("nan")),
        ("hops in: mic block on the bus -> append at the peer (session, writer)",
         statistics.median(in_ms) if in_ms else float("nan")),
    ]


# -- the hand-written loop (run as its own process: `--baseline-client URL`) ------------------


def baseline_client(url: str) -> None:
    """What one writes by hand: 20 ms sounddevice blocks, queues, a websocket client."""
    import sounddevice as sd
    import websocket

    ws = websocket.create_connection(url, timeout=10)
    ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
    out = bytearray()
    lock = threading.Lock()
    mic: queue.Queue[bytes] = queue.Queue(maxsize=100)
    dev = next(d["index"] for d in sd.query_devices() if d["name"] == "pulse")

    def play(outdata: Any, frames: int, info: Any, status: Any) -> None:
        n = len(outdata)
        with lock:
            take = bytes(out[:n])
            del out[:n]
        outdata[: len(take)] = take
        outdata[len(take):] = b"\0" * (n - len(take))

    def record(indata: Any, frames: int, info: Any, status: Any) -> None:
        mic.put_nowait(bytes(indata))

    def receive() -> None:
        while True:
            try:
                event = json.loads(ws.recv())
            except Exception:
                os._exit(0)
            if event.get("type") == "response.output_audio.delta":
                with lock:
                    out.extend(base64.b64decode(event["delta"]))

    threading.Thread(target=receive, daemon=True).start()
    block = RATE // 50
    with sd.RawOutputStream(device=dev, samplerate=RATE, channels=1, dtype="int16",
                            blocksize=block, callback=play), \
            sd.RawInputStream(device=dev, samplerate=RATE, channels=1, dtype="int16",
                              blocksize=block, callback=record):
        signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
        while True:
            pcm = mic.get()
            ws.send(json.dumps({"type": "input_audio_buffer.append",
                                "audio": base64.b64encode(pcm).decode()}))


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=30)
    parser.add_argument("--block-ms", type=int, nargs="+", default=[0],
                        help="rtd's [audio.input] block_ms to measure (0: its default)")
    parser.add_argument("--only", choices=["rtd", "baseline"])
    parser.add_argument("--baseline-client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_client:
        baseline_client(args.baseline_client)
        return

    from pulse import PulseServer, PulseUnavailable, reinit_portaudio

    cables = PulseServer()
    try:
        cables.start()
    except PulseUnavailable as exc:
        print(f"skipped: {exc}")
        return
    peer = Peer().start()
    try:
        cables.export()
        os.environ.update({"PULSE_SOURCE": "mic.monitor", "PULSE_SINK": "speaker"})
        reinit_portaudio()
        import sounddevice  # noqa: F401  (PortAudio sees `pulse` now)

        reinit_portaudio()
        cables.run("pactl", "load-module", "module-loopback", "source=speaker.monitor",
                   "sink=mic", f"latency_msec={LOOPBACK_MS}", "source_dont_move=true",
                   "sink_dont_move=true")
        env = cables.client_env(PULSE_SOURCE="mic.monitor", PULSE_SINK="speaker",
                                OPENAI_API_KEY="sk-bench")
        results: list[tuple[str, list[float], list[float], float]] = []
        with tempfile.TemporaryDirectory() as d, SpeakerTap() as tap:
            tmp = Path(d)
            if args.only != "rtd":
                cmd = [sys.executable, __file__, "--baseline-client", peer.url]
                trips, outs, cpu = run_client(cmd, env, peer, args.bursts, tap,
                                              tmp / "baseline.log")
                results.append(("hand-written loop, 20 ms blocks", trips, outs, cpu))
            if args.only != "baseline":
                for block_ms in args.block_ms:
                    block_ms = block_ms or _default_block()
                    conf = rtd_config(tmp, peer.url, block_ms)
                    cmd = [sys.executable, "-m", "rtd", "run", "--config", str(conf)]
                    trips, outs, cpu = run_client(cmd, env, peer, args.bursts, tap,
                                                  tmp / "rtd.log")
                    results.append((f"rtd, block_ms = {block_ms}", trips, outs, cpu))
            terms = breakdown(args.block_ms[-1] or _default_block())
            terms += hops(peer, tmp)
    finally:
        peer.stop()
        cables.stop()
    base = next((statistics.median(t) for n, t, _, _ in results if n.startswith("hand") and t),
                None)
    print(f"audio round trip through a {LOOPBACK_MS} ms echo path ({ISSUE_BASELINE})")
    for name, trips, outs, cpu in results:
        print(f"  {name:34s} {summary(trips)}   {cpu:5.2f} CPU-s/min")
        if outs and trips:
            out_med = statistics.median(outs)
            # the tap hears the speaker through a capture of its own: "out" includes that
            print(f"  {'':34s}   out (delta -> heard at the speaker's monitor) {out_med:5.1f} ms,"
                  f" in (the rest) {statistics.median(trips) - out_med:5.1f} ms")
        if base is not None and not name.startswith("hand") and trips:
            verdict = "met" if statistics.median(trips) <= base else "NOT met"
            print(f"  {'':34s}   target {TARGET_NOTE}: {base:.1f} ms -> {verdict}")
    print(f"where rtd's time goes (block_ms = {args.block_ms[-1] or 'default'}; averages over a "
          "burst's phase in the blocks)")
    for label, ms in terms:
        print(f"  {label:58s} {ms:6.1f} ms")


if __name__ == "__main__":
    main()
