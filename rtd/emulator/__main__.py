"""`python -m rtd.emulator`: run the offline development peer without the `rtd` command."""

from __future__ import annotations

import argparse
import logging

from rtd.emulator.server import serve
from rtd.emulator.voice import ENGINES
from rtd.exceptions import RtdError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rtd.emulator",
        description="rtd emulator: a local GA Realtime WebSocket server for development and "
                    "tests (an offline peer, not the OpenAI service).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--scenario", help="scenario TOML file (see `pydoc rtd.emulator`)")
    parser.add_argument("--api-key", help="require this key from clients")
    parser.add_argument("--voice", choices=ENGINES, default="auto", help="speech engine")
    parser.add_argument("--max-session-seconds", type=float,
                        help="close each connection with 1001 after this long")
    parser.add_argument("--auth-failure", choices=["http", "close"], default="http",
                        help="refuse a wrong key with HTTP 401, or an error event and close 3000")
    parser.add_argument("--fault", action="append", default=[], metavar="TOML",
                        help="inject a fault, written like a [[fault]] table's inside")
    parser.add_argument("--dialect", choices=["ga", "beta", "xai"], default="ga",
                        help="wire shape: GA, the older beta shape, or xAI's")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every connection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        serve(args.host, args.port, args.scenario, args.api_key, args.voice,
              args.max_session_seconds, auth_failure=args.auth_failure, faults=args.fault,
              dialect=args.dialect)
    except RtdError as exc:
        parser.exit(2, f"rtd emulator: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
