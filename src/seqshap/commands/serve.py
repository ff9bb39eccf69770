"""``seqshap serve``: the web page and JSON API (FastAPI + uvicorn)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys

from .._validation import NON_NEGATIVE_NUMBER, PORT, POSITIVE, POSITIVE_NUMBER
from .common import UsageError, add_background_option, add_command, add_model_option, background_for, load_model

KEY_ENV = "SEQSHAP_API_KEY"


def bind(host: str, port: int) -> socket.socket:
    """Take host:port now, so a taken port is one clear error before the model loads (and
    port 0 works). Not listening yet: while the model loads, connections are refused rather
    than left hanging."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart right after a stop
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.set_inheritable(True)
    return sock


def is_loopback(sock: socket.socket) -> bool:
    """True when the socket is bound to this machine only (127.0.0.0/8, ::1)."""
    host = sock.getsockname()[0].split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool((mapped or addr).is_loopback)


def api_key(args) -> str | None:
    """The API key from ``--api-key-file`` or ``$SEQSHAP_API_KEY`` (``None``: none given)."""
    from ..web.security import check_key, key_file_is_private, read_key_file

    env = os.environ.get(KEY_ENV)
    if args.api_key_file and env:
        raise UsageError(f"give the API key once: --api-key-file or ${KEY_ENV}, not both")
    if (args.api_key_file or env) and args.no_auth:
        given = "--api-key-file" if args.api_key_file else f"${KEY_ENV}"
        raise UsageError(f"--no-auth contradicts the API key given ({given})")
    try:
        if args.api_key_file:
            key = read_key_file(args.api_key_file)
            if not key_file_is_private(args.api_key_file):
                print(
                    f"seqshap serve: warning: {args.api_key_file} is readable by other users (chmod 600 it)",
                    file=sys.stderr,
                    flush=True,
                )
            return key
        return check_key(env, f"${KEY_ENV}") if env is not None else None
    except ValueError as e:
        raise UsageError(str(e)) from None


def run(args) -> int:
    key = api_key(args)
    # Everything that can be checked in a second is, before ~40 s of loading.
    sock = bind(args.host, args.port)
    try:
        if key is None and not args.no_auth and not is_loopback(sock):
            raise UsageError(
                f"--host {args.host} opens the server to the network without authentication; give an API key "
                f"(--api-key-file FILE or ${KEY_ENV}), or --no-auth if something in front of it authenticates"
            )
        return serve(args, sock, key)
    finally:
        sock.close()


def serve(args, sock: socket.socket, key: str | None) -> int:
    from ..web import create_app
    from ..web.server import make_server

    print("loading the model and the explainer background…", file=sys.stderr, flush=True)
    model = load_model(args)
    app = create_app(
        model=model,
        background_texts=background_for(args, model),
        max_chars=args.max_chars,
        max_batch=args.max_batch,
        queue_limit=args.queue_limit,
        batch_wait_ms=args.batch_wait_ms,
        api_key=key,
    )
    sock.listen(128)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"seqshap serve: http://{shown}:{port}/  (API docs at /docs; Ctrl+C stops)", flush=True)
    if key is not None:
        print(
            "seqshap serve: the API key is required: Authorization: Bearer <key>; in a browser open /?token=<key> once",
            file=sys.stderr,
            flush=True,
        )
    elif not is_loopback(sock):
        print(
            "seqshap serve: note: --no-auth: listening beyond this machine without authentication",
            file=sys.stderr,
            flush=True,
        )
    server = make_server(
        app,
        log_level=args.log_level,
        access_log=args.log_level == "debug",
        header_timeout_s=args.header_timeout,
        max_connections=args.max_connections,
    )
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl+C: uvicorn re-raises it after closing
        server.run(sockets=[sock])
    print("seqshap serve: stopped", file=sys.stderr, flush=True)
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "serve",
        "serve a web page and JSON API that explain any review (FastAPI + uvicorn)",
        "seqshap serve --port 8000\n"
        "  seqshap serve --model runs/lstm --host 127.0.0.1 --port 8080 --max-chars 5000\n"
        "  seqshap serve --host 0.0.0.0 --api-key-file key.txt   # needs Authorization: Bearer <key>\n"
        "  curl -s localhost:8000/api/explain -H 'Content-Type: application/json' "
        '-d \'{"text": "a dull, lifeless film"}\'',
        run,
    )
    add_model_option(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; any other address needs "
        "an API key or --no-auth)",
    )
    p.add_argument("--port", type=PORT, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--max-chars",
        type=POSITIVE,
        default=20000,
        metavar="N",
        help="longest text accepted, in characters (default 20000)",
    )
    p.add_argument(
        "--max-batch",
        type=POSITIVE,
        default=32,
        metavar="N",
        help="most texts in one /api/explain/batch request, and in one explainer call shared by "
        "concurrent requests (default 32)",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=NON_NEGATIVE_NUMBER,
        default=50.0,
        metavar="MS",
        help="how long the next explainer call waits for more requests to share it (after the last "
        "call ended or its first request came; default 50; 0 never waits)",
    )
    p.add_argument(
        "--queue-limit",
        type=POSITIVE,
        default=32,
        metavar="N",
        help="most requests running or waiting for the explainer; more get 503 (default 32)",
    )
    p.add_argument(
        "--api-key-file",
        metavar="FILE",
        help=f"require this key (the file's one line) as 'Authorization: Bearer <key>' on every route "
        f"but /api/health; ${KEY_ENV} gives it from the environment instead",
    )
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="allow a non-loopback --host without an API key (when a proxy in front authenticates)",
    )
    p.add_argument(
        "--max-connections",
        type=POSITIVE,
        default=100,
        metavar="N",
        help="open connections (or running requests) past which new requests get 503 at once (default 100)",
    )
    p.add_argument(
        "--header-timeout",
        type=POSITIVE_NUMBER,
        default=10.0,
        metavar="S",
        help="close a connection whose request head has not all arrived after S seconds (default 10)",
    )
    add_background_option(p)
    p.add_argument("--imdb", metavar="PATH", help="IMDB archive for the background of a model without background.json")
    p.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="uvicorn's log level (default info; debug also logs every request)",
    )
