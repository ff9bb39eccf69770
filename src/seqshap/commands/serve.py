"""``seqshap serve``: the web page and JSON API (FastAPI + uvicorn)."""

from __future__ import annotations

import contextlib
import socket
import sys

from .common import UsageError, add_background_option, add_command, add_model_option, background_for


def bind(host: str, port: int) -> socket.socket:
    """Listen on host:port ourselves, so a taken port is one clear error (and port 0 works)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart right after a stop
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.set_inheritable(True)
    return sock


def run(args) -> int:
    for flag, value in (
        ("--max-chars", args.max_chars),
        ("--max-batch", args.max_batch),
        ("--queue-limit", args.queue_limit),
        ("--background", args.background),
    ):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    import uvicorn

    from .. import load
    from ..web import create_app

    print("loading the model and the explainer background…", file=sys.stderr, flush=True)
    model = load(args.model)
    app = create_app(
        model=model,
        background_texts=background_for(args, model),
        max_chars=args.max_chars,
        max_batch=args.max_batch,
        queue_limit=args.queue_limit,
    )
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"seqshap serve: http://{shown}:{port}/  (API docs at /docs; Ctrl+C stops)", flush=True)
    if host not in ("127.0.0.1", "::1", "localhost"):
        print(
            "seqshap serve: note: listening beyond this machine; there is no authentication",
            file=sys.stderr,
            flush=True,
        )
    config = uvicorn.Config(app, log_level=args.log_level, access_log=args.log_level == "debug")
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl+C after a clean shutdown
        uvicorn.Server(config).run(sockets=[sock])
    print("seqshap serve: stopped", file=sys.stderr, flush=True)
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "serve",
        "serve a web page and JSON API that explain any review (FastAPI + uvicorn)",
        "seqshap serve --port 8000\n"
        "  seqshap serve --model runs/lstm --host 127.0.0.1 --port 8080 --max-chars 5000\n"
        "  curl -s localhost:8000/api/explain -H 'Content-Type: application/json' "
        '-d \'{"text": "a dull, lifeless film"}\'',
        run,
    )
    add_model_option(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this "
        "machine only; 0.0.0.0 opens it to the network, without authentication)",
    )
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--max-chars", type=int, default=20000, metavar="N", help="longest text accepted, in characters (default 20000)"
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=32,
        metavar="N",
        help="most texts in one /api/explain/batch request (default 32)",
    )
    p.add_argument(
        "--queue-limit",
        type=int,
        default=32,
        metavar="N",
        help="most requests running or waiting for the explainer; more get 503 (default 32)",
    )
    add_background_option(p)
    p.add_argument("--imdb", metavar="PATH", help="IMDB archive for the background of a model without background.json")
    p.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="uvicorn's log level (default info; debug also logs every request)",
    )
