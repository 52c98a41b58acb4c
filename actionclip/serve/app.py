"""The HTTP routes: the contract of ``actionclip serve``, each route a few lines over the engine.

``GET /healthz``, ``GET /v1/models``, ``POST /v1/classify``, ``POST /v1/timeline``,
``WebSocket /v1/watch``, the built-in class lists (``/v1/classes``), ``GET /v1/stats`` and the page at
``/`` with its assets (``/static``). docs/serve.md documents each. Uploads are parsed by
:mod:`~actionclip.serve.uploads` (not FastAPI's form parsing, which reads a whole body before any
check), so the OpenAPI description of the two forms is written out here for ``/docs``.
"""

# No "from __future__ import annotations": FastAPI reads the routes' annotations (Request, WebSocket), which
# are imported inside create_app and must be real objects, not strings.

import contextlib
import logging
from pathlib import Path
from typing import Any

from actionclip.serve.admission import Admission
from actionclip.serve.auth import check_token
from actionclip.serve.engine import Engine
from actionclip.serve.params import Fields
from actionclip.serve.problems import Problem, install_handlers, one_line, problem_response
from actionclip.serve.settings import ServeSettings
from actionclip.serve.uploads import FILE_FIELD, Upload, receive_upload, refuse_playlists

__all__ = ["create_app", "STATIC_DIR", "CLASSIFY_FIELDS", "TIMELINE_FIELDS"]

log = logging.getLogger("actionclip.serve")
STATIC_DIR = Path(__file__).with_name("static")
CLASSIFY_FIELDS = ("labels", "templates", "top_k", "clips", "crops", "url")
TIMELINE_FIELDS = ("labels", "templates", "background", "window", "stride", "threshold", "hysteresis", "smooth",
                   "min_duration", "min_gap", "score", "start", "end", "url")


def _form_schema(fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    properties = {FILE_FIELD: {"type": "string", "format": "binary", "description": "the video file"}, **fields}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": [FILE_FIELD, "labels"], "properties": properties}}}}}


_LABELS = {"type": "array", "items": {"type": "string"}, "description": "one field per action label"}
_TEMPLATES = {"type": "array", "items": {"type": "string"},
              "description": "prompt templates with '{}' (default: the model's own)"}
_URL = {"type": "string", "description": "a server-side path or URL instead of an upload (needs --allow-urls)"}
_CLASSIFY_FORM = _form_schema({
    "labels": _LABELS, "templates": _TEMPLATES, "url": _URL,
    "top_k": {"type": "integer", "minimum": 1, "description": "answer only the best k labels"},
    "clips": {"type": "integer", "minimum": 1, "default": 1, "description": "temporal clips, averaged"},
    "crops": {"type": "integer", "enum": [1, 3], "default": 1, "description": "spatial crops, averaged"},
})
_TIMELINE_FORM = _form_schema({
    "labels": _LABELS, "templates": _TEMPLATES, "url": _URL,
    "background": {"type": "array", "items": {"type": "string"}, "description": "background prompts"},
    **{name: {"type": "number", "description": text} for name, text in (
        ("window", "seconds per window (default 4)"), ("stride", "seconds between windows (default 1)"),
        ("threshold", "decision threshold in [0, 1] (default 0.5)"), ("hysteresis", "default 0.1"),
        ("smooth", "moving-average width, seconds (default 3 strides)"), ("min_duration", "seconds"),
        ("min_gap", "seconds"), ("start", "seconds"), ("end", "seconds"))},
    "score": {"type": "string", "enum": ["independent", "softmax"], "default": "independent"},
})


def _swagger_assets() -> Path | None:
    """Swagger UI's files from the ``swagger-ui-bundle-v2`` package (the serve extra), so that ``/docs``
    works offline; None without it (``/docs`` then loads Swagger UI from FastAPI's default CDN)."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    path = Path(swagger_ui_path)
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def create_app(engine: Engine, settings: ServeSettings, admission: Admission | None = None,
               on_ready: Any = None, search: Any = None) -> Any:
    """The FastAPI application serving ``engine`` (and the index of ``search``, a
    :class:`~actionclip.serve.search.SearchService`, when given); it closes the engine when the server stops."""
    from fastapi import Depends, FastAPI, Request, WebSocket
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    from actionclip import __version__
    from actionclip.choices import CROPS, SCORE_KINDS
    from actionclip.serve.watch import run_watch

    admission = admission or Admission(settings.queue_size)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any):
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            engine.close()

    docs_assets = _swagger_assets()
    app = FastAPI(title="actionclip", version=__version__, lifespan=lifespan, redoc_url=None,
                  docs_url=None if docs_assets else "/docs",
                  description="Zero-shot action recognition in video: rank actions named in words, find when "
                              "they happen, follow a webcam. Errors are {\"error\": \"<one line>\"}.")
    app.state.engine, app.state.admission = engine, admission
    if docs_assets is not None:  # Swagger UI from this machine, not from FastAPI's default CDN
        from fastapi.openapi.docs import get_swagger_ui_html

        app.mount("/docs-assets", StaticFiles(directory=docs_assets), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        async def docs() -> Any:
            return get_swagger_ui_html(openapi_url=app.openapi_url, title="actionclip API",
                                       swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                       swagger_css_url="/docs-assets/swagger-ui.css",
                                       swagger_favicon_url="/docs-assets/favicon-32x32.png")

    install_handlers(app)

    @app.middleware("http")
    async def _refuse_while_draining(request: Request, call_next: Any) -> Any:
        try:
            admission.refuse_if_draining()
        except Problem as exc:
            return problem_response(exc)
        return await call_next(request)

    async def authorised(request: Request) -> None:
        check_token(settings.token, request.headers)

    guarded = [Depends(authorised)]

    # --- health and discovery -------------------------------------------------------------------
    @app.get("/healthz", summary="200 once the model is loaded and the server answers")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": engine.model_name}

    @app.get("/v1/models", dependencies=guarded, summary="the loaded model and the registry")
    async def models() -> dict[str, Any]:
        from actionclip.loading.catalog import model_rows

        return {"model": engine.info(), "registry": await engine.pool.run(model_rows)}

    @app.get("/v1/classes", dependencies=guarded, summary="names of the built-in class lists")
    async def class_lists() -> dict[str, Any]:
        from actionclip.text.classes import BUILTIN_CLASS_LISTS

        return {"lists": list(BUILTIN_CLASS_LISTS)}

    @app.get("/v1/classes/{name}", dependencies=guarded, summary="one built-in class list")
    async def class_list(name: str) -> dict[str, Any]:
        from actionclip.text.classes import builtin_classes, builtin_key, humanize, not_a_list

        key = builtin_key(name)
        if key is None:
            raise Problem(404, f"{name!r}: {not_a_list(name)}")
        # "classes" is the label text the model is given (as classify --labels and eval give it);
        # "names" are the dataset's own spellings, in the same order.
        names = builtin_classes(key)
        return {"name": key, "classes": [humanize(n) for n in names], "names": names}

    @app.get("/v1/stats", dependencies=guarded, summary="batching, label cache and queue figures")
    async def stats() -> dict[str, Any]:
        extra = {"search": search.stats()} if search is not None else {}
        return {**engine.stats(), "admission": admission.to_dict(), **extra}

    # --- work -----------------------------------------------------------------------------------
    async def video_of(upload: Upload, fields: Fields) -> tuple[str, str]:
        """(what to open, what to call it) from an upload or, with --allow-urls, a ``url`` field."""
        url = fields.text("url")
        if url and upload.path is not None:
            raise Problem(400, f"give either a '{FILE_FIELD}' file or a 'url', not both")
        if url:
            if not settings.allow_urls:
                raise Problem(400, "this server opens no server-side path or URL: upload the file as "
                                   f"'{FILE_FIELD}' (or start the server with --allow-urls)")
            return url, url
        if upload.path is None:
            raise Problem(400, f"no video: send the file as the '{FILE_FIELD}' field (curl: -F {FILE_FIELD}=@clip.mp4)")
        name = upload.filename or "upload"
        if upload.size == 0:
            raise Problem(400, f"{name}: empty file (0 bytes)")
        await engine.pool.run(refuse_playlists, upload.path, name)
        return str(upload.path), name

    def uploads(request: Request) -> Any:
        return receive_upload(request, max_bytes=settings.max_upload_bytes, temp_dir=settings.temp_dir,
                              pool=engine.pool)

    @app.post("/v1/classify", dependencies=guarded, openapi_extra=_CLASSIFY_FORM,
              summary="rank action labels for one video (as classify --json)")
    async def classify(request: Request) -> dict[str, Any]:
        with admission.slot():
            async with uploads(request) as upload:
                fields = Fields(upload.fields, CLASSIFY_FIELDS)
                video, name = await video_of(upload, fields)
                return await engine.classify(
                    video, name, fields.texts("labels") or [], templates=fields.texts("templates"),
                    clips=fields.integer("clips", 1, 1, settings.max_views),
                    crops=int(fields.choice("crops", "1", CROPS)),
                    top_k=fields.integer("top_k", None, 1, 1_000_000))

    @app.post("/v1/timeline", dependencies=guarded, openapi_extra=_TIMELINE_FORM,
              summary="when each action happens: windows and segments (as timeline --json)")
    async def timeline(request: Request) -> dict[str, Any]:
        with admission.slot():
            async with uploads(request) as upload:
                fields = Fields(upload.fields, TIMELINE_FIELDS)
                video, name = await video_of(upload, fields)
                numbers = {name_: fields.number(name_, None) for name_ in
                           ("hysteresis", "smooth", "min_duration", "min_gap", "start")}
                return await engine.timeline(
                    video, name, fields.texts("labels") or [], templates=fields.texts("templates"),
                    background=fields.texts("background"),
                    window=fields.number("window", 4.0, open_low=True),
                    stride=fields.number("stride", 1.0, open_low=True),
                    threshold=fields.number("threshold", 0.5, 0.0, 1.0),
                    score=fields.choice("score", SCORE_KINDS[0], SCORE_KINDS),
                    end=fields.number("end", None, open_low=True),
                    **{k: v for k, v in numbers.items() if v is not None})

    @app.websocket("/v1/watch")
    async def watch(websocket: WebSocket) -> None:
        try:
            check_token(settings.token, websocket.headers, websocket.query_params)
            admission.refuse_if_draining()
        except Problem as exc:
            log.info("watch refused: %s", exc.message)
            await websocket.close(code=1008, reason=one_line(exc.message)[:120])
            return
        await websocket.accept()
        await run_watch(websocket, engine)

    # --- previews, and the index (serve --index): actionclip.serve.search_routes -------------------
    from actionclip.serve.search_routes import add_preview_route, add_search_routes

    hooks = dict(engine=engine, settings=settings, admission=admission, guarded=guarded, uploads=uploads)
    add_preview_route(app, **hooks)
    add_search_routes(app, search, **hooks)

    # --- the page ---------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def page() -> Any:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
