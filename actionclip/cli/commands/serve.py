"""``actionclip serve``: a REST API, a web page and a live WebSocket over one loaded model.

A thin layer over :mod:`actionclip.serve`: options to :class:`~actionclip.serve.settings.ServeSettings`,
the socket bound, the model loaded, then uvicorn until SIGTERM/Ctrl-C (graceful: requests in
flight finish, new ones get 503). docs/serve.md documents the API.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from actionclip.cli import options
from actionclip.cli.options import non_negative_float, non_negative_int, positive_float, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` sub-command."""
    p = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP: REST API, web page, webcam WebSocket",
        description="Serve one model to many clients: POST /v1/classify and /v1/timeline (multipart uploads), "
        "WebSocket /v1/watch, a web page at /, OpenAPI docs at /docs. Needs: pip install \"actionclip[serve]\".",
        epilog="example: actionclip serve --port 8000 &&\n"
        "  curl -F video=@clip.mp4 -F labels=running -F labels=walking http://127.0.0.1:8000/v1/classify",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_model(p, what="the model (default: with --index, the index's own; else the default model)")
    p.set_defaults(model=None)
    p.add_argument("--index", metavar="INDEX",
                   help="also serve this index (from 'actionclip index'): search, thumbnails, the videos, "
                        "the page's Search tab")
    options.add_frames(p)
    options.add_templates(p)
    options.add_runtime(p)
    net = p.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    net.add_argument("--port", type=non_negative_int, default=8000, help="port (default 8000; 0: any free port)")
    net.add_argument("--token", metavar="TOKEN",
                     help="require 'Authorization: Bearer TOKEN' on /v1 (default: $ACTIONCLIP_SERVE_TOKEN, if set)")
    net.add_argument("--allow-urls", action="store_true",
                     help="let clients name a server-side path or URL ('url' field) instead of uploading")
    net.add_argument("--access-log", action="store_true", help="log every request")
    lim = p.add_argument_group("limits")
    # MiB (2**20 bytes), as nginx's client_max_body_size counts; --max-upload-mb, its old name,
    # stays accepted (hidden) and always meant MiB.
    lim.add_argument("--max-upload-mib", dest="max_upload_mib", type=positive_float, default=200.0, metavar="MIB",
                     help="largest upload in MiB (2^20 bytes), checked while it streams (default 200)")
    lim.add_argument("--max-upload-mb", dest="max_upload_mib", type=positive_float, help=argparse.SUPPRESS)
    lim.add_argument("--max-duration", type=non_negative_float, default=600.0, metavar="SECONDS",
                     help="longest video accepted (default 600; 0: no limit)")
    lim.add_argument("--queue-size", type=positive_int, default=64, metavar="N",
                     help="work requests admitted at once; beyond, 503 with Retry-After (default 64)")
    lim.add_argument("--temp-dir", metavar="DIR", help="where uploads are spooled (default: the system's)")
    lim.add_argument("--drain-timeout", type=non_negative_float, default=60.0, metavar="SECONDS",
                     help="after SIGTERM, how long requests in flight may take (default 60)")
    perf = p.add_argument_group("batching")
    perf.add_argument("--batch-size", type=positive_int, metavar="B",
                      help="most views encoded in one pass (default: 4 on cpu, 32 on cuda)")
    perf.add_argument("--max-wait", type=non_negative_float, default=0.01, metavar="SECONDS",
                      help="longest a request waits for others to share its pass (default 0.01)")
    options.add_decoding(perf)
    perf.add_argument("--timelines", type=positive_int, default=1, metavar="N",
                      help="timelines computed at once (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from actionclip.serve import require

    require()  # before loading anything: a missing extra is one line at once
    from actionclip.errors import UsageError
    from actionclip.serve.admission import Admission
    from actionclip.serve.app import create_app
    from actionclip.serve.engine import Engine
    from actionclip.serve.server import bind, run_server
    from actionclip.serve.settings import ServeSettings
    from actionclip.serve.uploads import temp_dir_problem

    if args.temp_dir and not Path(args.temp_dir).is_dir():
        raise UsageError(f"--temp-dir {args.temp_dir}: no such folder")
    problem = temp_dir_problem(args.temp_dir)  # now, not as a 500 on every upload
    if problem:
        where = f"--temp-dir {args.temp_dir}" if args.temp_dir else "the system's temporary folder (choose one with --temp-dir)"
        raise UsageError(f"{where}: uploads cannot be stored there ({problem})")
    templates = options.templates_from(args)
    settings = ServeSettings(
        host=args.host, port=args.port, token=args.token, max_upload_mib=args.max_upload_mib,
        max_duration=args.max_duration, allow_urls=args.allow_urls, max_wait=args.max_wait,
        queue_size=args.queue_size, timelines=args.timelines, temp_dir=Path(args.temp_dir) if args.temp_dir else None,
        drain_timeout=args.drain_timeout,
    ).with_token_from_env()
    sock = bind(settings.host, settings.port)  # a port in use fails now, not after loading
    try:
        model, search = _model_and_index(args)
        device = str(model.device)
        settings = settings.for_device(device, batch_size=args.batch_size, workers=args.workers)
        engine = Engine(model, settings, model_name=str(model.name or args.model),
                        templates=templates)
        if search is not None:
            search = search(settings)
        admission = Admission(settings.queue_size)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host

        def ready() -> None:
            if not settings.token and not _loopback(host):
                print(f"actionclip: warning: listening on {host} without a token: anyone who reaches this port "
                      "can use the server (set ACTIONCLIP_SERVE_TOKEN)", file=sys.stderr, flush=True)
            lock = "token required" if settings.token else "no token"
            if search is not None:
                info = search.info()
                print(f"actionclip: index {args.index}: {info['videos']} videos, {info['moments']} moments",
                      file=sys.stderr, flush=True)
            print(f"actionclip: serving {engine.model_name} on http://{shown}:{port} ({device}, "
                  f"{engine.info()['dtype']}, batch {settings.batch_size}, {lock}); Ctrl-C to stop",
                  file=sys.stderr, flush=True)

        app = create_app(engine, settings, admission, on_ready=ready, search=search)
        run_server(app, sock, admission, drain_timeout=settings.drain_timeout, access_log=args.access_log)
    finally:
        sock.close()
    print("actionclip: server stopped", file=sys.stderr, flush=True)
    return 0


def _model_and_index(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model (``--model``, else the index's own, else the default) and, with ``--index``, a function
    of the final settings giving the :class:`~actionclip.serve.search.SearchService`. An index whose
    model is not ``--model`` is refused here, in one line, before the server starts."""
    from actionclip.loading.registry import DEFAULT_MODEL

    if not args.index:
        args.model = args.model or DEFAULT_MODEL
        return options.load_model(args, frames=args.frames), None
    from actionclip.collection.model_ref import check, load_recorded
    from actionclip.collection.store import Store, require_lancedb

    require_lancedb()
    meta = Store(args.index).read_meta()  # one line when INDEX is not an index
    dtype = None if args.dtype == "auto" else args.dtype
    if args.model:
        model = options.load_model(args, frames=args.frames)
        check(meta["model"], model, args.index)
    else:
        model = load_recorded(meta["model"], args.index, device=args.device, dtype=dtype)
        args.model = str(model.name or meta["model"].get("name") or meta["model"]["id"])

    def service(settings: Any) -> Any:
        from actionclip.loading.download import cache_dir
        from actionclip.serve.search import SearchService

        return SearchService(args.index, model, media_dir=cache_dir() / "serve-media",
                             max_seconds=settings.max_duration, workers=settings.workers)

    return model, service


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
